"""Read an ``r2d eval`` run directory (results.json, samples.jsonl, judgments.jsonl) for reporting.

The reader is tolerant of missing optional keys and extra keys, because the report must work on runs
from older and newer runners; it is strict about what it cannot do without (results.json with a
``cells`` list) and names the file/line/field when something is malformed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HARMFUL_SUBSETS = ("harmful", "unsafe")
BENIGN_SUBSETS = ("benign", "safe")
ARM_FIELDS = ("model", "defense", "policy")


@dataclass(frozen=True)
class Arm:
    """One system under test in one run: a model with a defense and an inference policy."""

    run: str  # the run's display name (its directory name)
    model: str
    defense: str = "none"
    policy: str = "raw"


@dataclass
class Run:
    path: Path
    name: str
    provenance: dict[str, Any]
    cells: list[dict[str, Any]]
    samples: list[dict[str, Any]] = field(default_factory=list)
    judgments: list[dict[str, Any]] = field(default_factory=list)
    overlap: dict[str, Any] | None = None
    general_ability: dict[str, Any] | None = None
    pivot_score: dict[str, Any] | None = None  # results.json "pivot_score" (r2d.eval.pivot_score)
    notes: list[str] = field(default_factory=list)
    samples_missing: int = 0  # grid cases results.json says have no sample yet (an unfinished run)

    def arm_of(self, row: dict) -> Arm:
        return Arm(self.name, str(row.get("model", "?")), str(row.get("defense") or "none"),
                   str(row.get("policy") or "raw"))

    def arms(self) -> list[Arm]:
        """Arms in the order they first appear in the cells (then samples)."""
        seen: dict[Arm, None] = {}
        for row in self.cells + self.samples:
            seen.setdefault(self.arm_of(row), None)
        return list(seen)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    if not path.is_file():
        return rows
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{i}: expected a JSON object per line")
            rows.append(row)
    return rows


def _flatten_key(row: dict) -> dict:
    """judgments.jsonl may carry its join key as ``key: {...}`` or ``key: [model, defense, policy, case_id]``."""
    key = row.get("key")
    if isinstance(key, dict):
        return {**key, **{k: v for k, v in row.items() if k != "key"}}
    if isinstance(key, (list, tuple)) and len(key) == 4:
        return {**dict(zip((*ARM_FIELDS, "case_id"), key)), **{k: v for k, v in row.items() if k != "key"}}
    return row


def _join_on_key(judgments: list[dict], samples: list[dict]) -> list[dict]:
    """Judgements keyed by an opaque sample ``key`` string get the sample's arm/case fields copied in."""
    by_key = {s["key"]: s for s in samples if isinstance(s.get("key"), str)}
    out = []
    for j in judgments:
        s = by_key.get(j.get("key")) if isinstance(j.get("key"), str) else None
        if s is None and isinstance(j.get("key"), str) and "model" not in j:
            continue  # a judgement of a sample not in this report (stale or missing)
        if s is not None:
            j = {**{k: s.get(k) for k in (*ARM_FIELDS, "case_id", "benchmark", "subset", "attack", "variant")},
                 **{k: v for k, v in j.items() if v is not None}}
        out.append(j)
    return out


def _last_per_key(rows: list[dict], fields: tuple[str, ...]) -> list[dict]:
    """The runner appends retries: keep the last row per key (rows without the key are all kept)."""
    out: dict = {}
    for i, r in enumerate(rows):
        k = r.get(fields[0])
        key = (i,) if not isinstance(k, str) else tuple(str(r.get(f)) for f in fields)
        out.pop(key, None)
        out[key] = r
    return list(out.values())


_GROUP = (*ARM_FIELDS, "benchmark", "subset", "attack")


def _in_cells(samples: list[dict], cells: list[dict]) -> list[dict]:
    """Samples of the groups results.json reports (samples.jsonl may hold rows of an earlier config)."""
    groups = {tuple(str(c.get(k)) for k in _GROUP) for c in cells}
    if not cells or not all(all(k in c for k in _GROUP) for c in cells):
        return samples
    return [s for s in samples if tuple(str(s.get(k)) for k in _GROUP) in groups]


def is_harmful(row: dict) -> bool | None:
    """Harmful prompt? The row's ``harmful`` flag if recorded, else by subset (None: neither)."""
    if isinstance(row.get("harmful"), bool):
        return row["harmful"]
    subset = row.get("subset")
    return True if subset in HARMFUL_SUBSETS else False if subset in BENIGN_SUBSETS else None


def load_run(path: str | Path, name: str | None = None) -> Run:
    """Load a run directory; raise FileNotFoundError/ValueError with a one-line message if unusable."""
    path = Path(path)
    results = path / "results.json"
    if not path.is_dir():
        raise FileNotFoundError(f"no such run directory: {path}")
    if not results.is_file():
        raise FileNotFoundError(f"{results} not found (is {path} an `r2d eval` output directory?)")
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{results}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError(f"{results}: field 'cells' missing or not a list")
    for i, c in enumerate(data["cells"]):
        if not isinstance(c, dict) or "model" not in c:
            raise ValueError(f"{results}: cells[{i}] has no field 'model'")
    notes = data.get("notes") or []
    samples = _in_cells(_last_per_key(_read_jsonl(path / "samples.jsonl"), ("key",)), data["cells"])
    judgments = _last_per_key(_read_jsonl(path / "judgments.jsonl"), ("key", "judge"))
    judgments = _join_on_key([_flatten_key(r) for r in judgments], samples)
    return Run(
        path=path,
        name=name or path.resolve().name,
        provenance=data.get("provenance") or {},
        cells=data["cells"],
        samples=samples,
        judgments=judgments,
        overlap=data.get("overlap"),
        general_ability=data.get("general_ability"), pivot_score=data.get("pivot_score"),
        notes=[str(n) for n in notes] if isinstance(notes, list) else [str(notes)],
        samples_missing=int(data.get("samples_missing") or 0),
    )
