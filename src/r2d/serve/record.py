"""``--log-jsonl``: one JSON line per chat request (answered or not) with its verdict, for later analysis.

Fields: ``time``, ``request_id``, ``status``, ``policy``, ``stream``, ``latency_s``, ``error`` and, for
answered requests, ``verdict``, ``pivots``, ``policy_changed``, ``refused``, ``finish_reason``,
token counts; with ``log_messages`` also ``messages`` (as the backend got them, guarded), the model's
``raw_text`` and the ``content`` the client got. Lines are flushed as written.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any


class JsonlRecorder:
    def __init__(self, path: str | None, log_messages: bool = True) -> None:
        self.path = Path(path) if path else None
        self.log_messages = log_messages
        self._lock = threading.Lock()
        self._fh = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        if self._fh is None:
            return
        if not self.log_messages:
            row = {k: v for k, v in row.items() if k not in ("messages", "raw_text", "content", "reasoning_content")}
        line = json.dumps({"time": round(time.time(), 3), **row}, ensure_ascii=False)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
