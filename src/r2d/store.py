"""One resumable JSONL store for every stage (data build, generate, eval, report).

Contract:
- Rows are appended as one ``json + "\\n"`` write each and flushed (fsync per batch), so a kill leaves
  at most one torn line: the bytes after the last newline.
- The torn tail is handled the same way by every reader: it is ignored (it may end inside a UTF-8
  character; that is tolerated only there). ``repair()`` (called before appending) cuts it off the file.
- A complete line that is not a JSON object (a corrupt or foreign line in the middle) is skipped with
  a one-line warning naming file and line; reading carries on past it, nothing after it is lost.
- ``latest(key)`` is the last row per key (retries are appended, never rewritten in place).
- ``fingerprint(obj)``: a short stable hash of everything that changes a stage's output, stored in
  its rows so a resumed run never reuses a row made under other settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


def fingerprint(obj: Any) -> str:
    """sha256 (16 hex digits) of the canonical JSON of ``obj``."""
    blob = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class ReadReport:
    rows: int = 0
    torn_tail: bool = False
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


class JsonlStore:
    def __init__(self, path: str | Path, warn: bool = True) -> None:
        self.path = Path(path)
        self.warn = warn
        self.last_read = ReadReport()

    # --- reading -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        return self.rows()

    def rows(self) -> Iterator[dict]:
        """Every complete, readable JSON object row in file order (see the module contract)."""
        rep = self.last_read = ReadReport()
        if not self.path.is_file():
            return
        with open(self.path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        if lines and lines[-1] != b"":
            rep.torn_tail = True
        for n, raw in enumerate(lines[:-1], 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                self._bad(n, "not valid UTF-8")
                continue
            except json.JSONDecodeError as e:
                self._bad(n, f"not valid JSON ({e.msg})")
                continue
            if not isinstance(row, dict):
                self._bad(n, "not a JSON object")
                continue
            rep.rows += 1
            yield row

    def _bad(self, n: int, why: str) -> None:
        self.last_read.bad_lines.append((n, why))
        if self.warn:
            print(f"r2d: {self.path}:{n}: skipping an unreadable row: {why}", file=sys.stderr)

    def read(self) -> list[dict]:
        return list(self.rows())

    def latest(self, key: Callable[[dict], Any] | str | tuple[str, ...]) -> dict[Any, dict]:
        """The last row per key; rows lacking a key field are skipped."""
        if isinstance(key, str):
            fields: tuple[str, ...] = (key,)
        elif isinstance(key, tuple):
            fields = key
        else:
            fields = ()
        out: dict[Any, dict] = {}
        for row in self.rows():
            if fields:
                if any(f not in row for f in fields):
                    continue
                k = row[fields[0]] if len(fields) == 1 else tuple(row[f] for f in fields)
            else:
                k = key(row)  # type: ignore[operator]
            out.pop(k, None)  # keep the order of last occurrence
            out[k] = row
        return out

    # --- writing -----------------------------------------------------------------------------
    def repair(self) -> int:
        """Cut a torn tail (bytes after the last newline) off the file; returns the bytes removed."""
        if not self.path.is_file():
            return 0
        size = self.path.stat().st_size
        if size == 0:
            return 0
        with open(self.path, "rb+") as f:
            # find the last newline, scanning back in blocks
            pos, keep = size, 0
            while pos > 0:
                step = min(65536, pos)
                f.seek(pos - step)
                block = f.read(step)
                i = block.rfind(b"\n")
                if i >= 0:
                    keep = pos - step + i + 1
                    break
                pos -= step
            if keep < size:
                f.truncate(keep)
        return size - keep

    def append(self, rows: Iterable[dict]) -> None:
        """Append rows (repairing a torn tail first), flushed and fsynced."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repair()
        with open(self.path, "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write(self, rows: Iterable[dict]) -> None:
        """Replace the file atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        tmp.replace(self.path)


def read_strict(path: str | Path) -> list[dict]:
    """User-supplied JSONL (input data): every non-blank line must be a JSON object, else
    ``ValueError("FILE:LINE: ...")``. No torn-tail tolerance: input files are not written by a run."""
    rows = []
    for n, row in iter_lines(path):
        if isinstance(row, Exception):
            raise ValueError(f"{path}:{n}: invalid JSON: {row}")
        rows.append(row)
    return rows


def iter_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value or the error) for every non-blank line of a user file."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield n, json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                yield n, e


def claim_run_dir(out: str | Path, run: dict, marker: str, who: str, overwrite: bool = False,
                  resume: bool = True, main_process: bool = True) -> None:
    """Claim directory ``out`` for a run described by ``run`` (everything that changes its output).

    A missing or empty directory is claimed (``marker`` is written with ``run`` and its fingerprint);
    one whose marker holds the same fingerprint is resumed (unless ``resume`` is False); anything else
    (another run, files ``who`` did not write) is a one-line error naming the differing fields, unless
    ``overwrite``, which empties the directory first."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} is a file, not a directory")
    rec = {"fingerprint": fingerprint(run), "run": run}
    entries = list(out.iterdir()) if out.is_dir() else []
    if entries and overwrite:
        if main_process:
            shutil.rmtree(out)
        entries = []
    if entries:
        path = out / marker
        if not path.is_file():
            raise ValueError(f"output directory {out} is not empty and was not written by {who}; "
                             f"choose another output or pass --overwrite")
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("fingerprint") != rec["fingerprint"]:
            before = old.get("run") or {}
            diff = sorted(str(k) for k in set(before) | set(run) if before.get(k) != run.get(k))
            raise ValueError(f"output directory {out} holds a run of {who} with other settings "
                             f"({', '.join(diff) or 'other'}); choose another output or pass --overwrite")
        if not resume:
            raise ValueError(f"output directory {out} already holds this run; pass --resume to continue it "
                             f"or --overwrite to start afresh")
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / marker).write_text(json.dumps(rec, indent=2, default=str) + "\n", encoding="utf-8")
