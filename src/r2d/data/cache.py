"""A disk cache of teacher replies keyed by sha256(teacher params, prompt): a re-run makes no new
teacher calls and a killed run loses at most the replies of the chunk in flight. SQLite (stdlib),
one row per reply; only successful replies are stored (failures are retried on a re-run)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path


def cache_key(params: dict, prompt: str) -> str:
    blob = json.dumps({"params": params, "prompt": prompt}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class TeacherCache:
    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.db = sqlite3.connect(str(path))
        self.db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
        self.db.commit()

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            q = f"SELECT key, reply FROM replies WHERE key IN ({','.join('?' * len(part))})"
            out |= {k: json.loads(v) for k, v in self.db.execute(q, part)}
        return out

    def put_many(self, items: dict[str, dict]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO replies VALUES (?, ?)",
                            [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()])
        self.db.commit()

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self.db.close()
