"""Searched attack prompts kept in the run directory, so a resumed evaluation does not search again.

An optimising attack (GCG, AutoDAN) spends minutes per behaviour searching against a model. Its results go
to ``searches.jsonl`` beside ``samples.jsonl``: one row per search, keyed by a fingerprint of everything that
changes the search's output:

- the search target: the model's identity (weights digest, or the pinned alias; its config, adapter, tokenizer
  and chat-template files, which set the model and the loss target), its backend and backend options; for a transfer attack, the transfer
  model's identity instead;
- the attack's name, its search version and every search parameter (steps, widths, implementation, seed);
- the behaviour's request and target strings.

A row is reused only under the same key; anything else is searched again (and appended: the last row per key
wins, as in every ``r2d.store`` file). An attack whose target cannot be identified (a backend object handed in
by a notebook for a transfer search) is never cached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r2d.store import JsonlStore, fingerprint

FILE = "searches.jsonl"


def model_identity(model: str | None) -> dict:
    """What identifies a model for a search: a pinned alias by name, a local directory by its weights digest
    (``r2d.provenance.model_fingerprint``) plus the sha256 of its small files: configs (an adapter's too), tokenizer,
    chat template (they set the loss target)."""
    from r2d.models import ALIASES
    from r2d.provenance import model_fingerprint, sha256_file

    if model in ALIASES:
        return {"alias": model}
    out = model_fingerprint(model)
    path = Path(str(model)).expanduser() if model else None
    if path is not None and path.is_dir():  # configs (adapter, new rows), tokenizer, chat template, vocab files
        files = sorted({p for pat in ("*.json", "*.jinja", "*.model", "*.txt") for p in path.glob(pat) if p.is_file()})
        out["files"] = {p.name: sha256_file(p) for p in files}
    return out


def transfer_identity(transfer: Any) -> dict | None:
    """The identity of a transfer target given as ``"backend:model"``; None for a backend object."""
    if not isinstance(transfer, str):
        return None
    name, _, model = transfer.partition(":")
    return {"transfer": transfer, "backend": name, "weights": model_identity(model or None)}


class SearchCache:
    """``get(key)`` / ``put(key, result)`` for one search target (``target``: its identity, see module doc)."""

    def __init__(self, path: str | Path, target: dict | None) -> None:
        self.store = JsonlStore(path)
        self.target = target
        self._rows: dict[str, dict] | None = None
        self._counts = {"reused": 0, "searched": 0}  # shared with ``for_target`` views: the caller reads one total

    @property
    def reused(self) -> int:
        return self._counts["reused"]

    @property
    def searched(self) -> int:
        return self._counts["searched"]

    def for_target(self, target: dict | None) -> "SearchCache":
        """The same file for another search target (a transfer attack's model); its searches count in this
        cache's ``searched`` / ``reused``."""
        other = SearchCache(self.store.path, target)
        other._rows = self.rows()
        other._counts = self._counts
        return other

    def key(self, search: dict) -> str | None:
        if self.target is None:
            return None
        return fingerprint({"target": self.target, "search": search})

    def rows(self) -> dict[str, dict]:
        if self._rows is None:
            self._rows = self.store.latest("key") if self.store.path.is_file() else {}
        return self._rows

    def get(self, search: dict) -> dict | None:
        """The stored result of this search, or None."""
        k = self.key(search)
        row = self.rows().get(k) if k is not None else None
        if row is not None:
            self._counts["reused"] += 1
            return row["result"]
        return None

    def put(self, search: dict, result: dict, **info: Any) -> None:
        """Record one finished search (written at once: a run killed mid-attack keeps what it found)."""
        self._counts["searched"] += 1
        k = self.key(search)
        if k is None:
            return
        row = {"key": k, **info, "target": self.target, "search": search, "result": result}
        self.store.append([row])
        self.rows()[k] = row
