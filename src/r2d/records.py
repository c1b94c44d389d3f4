"""The run-record schema: what ``r2d eval`` writes to samples.jsonl / judgments.jsonl and the report reads.

- A **sample** row is one generation of one test case under one system (model x defense x policy): the
  fields in ``SAMPLE_FIELDS`` are required (``key`` is the opaque join key, ``fingerprint`` the hash of
  everything that made it; see ``r2d.store.fingerprint``), more are written (completion, answer, steps,
  tokens, ...) and readers must tolerate extra fields.
- A **judgment** row is one verdict of one judge on one sample: ``{"key", "judge", "verdict",
  "fingerprint"}``, joined to its sample on ``key`` only; ``verdict`` is ``Verdict.to_dict()``.
- ``HARMFUL_SUBSETS`` / ``BENIGN_SUBSETS``: the subset names that mean a harmful / benign request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

HARMFUL_SUBSETS = ("harmful", "unsafe")
BENIGN_SUBSETS = ("benign", "safe")
ARM_FIELDS = ("model", "defense", "policy")
SAMPLE_FIELDS = ("key", *ARM_FIELDS, "benchmark", "subset", "attack", "case_id")


def is_harmful(row: dict) -> bool | None:
    """Harmful prompt? The row's ``harmful`` flag if recorded, else by subset (None: neither)."""
    if isinstance(row.get("harmful"), bool):
        return row["harmful"]
    subset = row.get("subset")
    return True if subset in HARMFUL_SUBSETS else False if subset in BENIGN_SUBSETS else None


def check_sample(row: dict, where: str) -> dict:
    """The row itself, or ValueError naming the first missing field."""
    for f in SAMPLE_FIELDS:
        if f not in row:
            raise ValueError(f"{where}: sample row has no field {f!r}")
    if not isinstance(row["key"], str):
        raise ValueError(f"{where}: sample field 'key' must be a string")
    return row


@dataclass
class Judgment:
    key: str
    judge: str
    verdict: dict[str, Any]
    fingerprint: str | None = None

    @classmethod
    def from_dict(cls, row: dict, where: str) -> "Judgment":
        if not isinstance(row.get("key"), str) or not isinstance(row.get("judge"), str):
            raise ValueError(f"{where}: judgment row needs string 'key' and 'judge'")
        if not isinstance(row.get("verdict"), dict):
            raise ValueError(f"{where}: judgment row needs a 'verdict' object")
        return cls(row["key"], row["judge"], row["verdict"], row.get("fingerprint"))

    def to_dict(self) -> dict:
        return asdict(self)
