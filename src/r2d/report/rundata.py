"""Read an ``r2d eval`` run directory (results.json, samples.jsonl, judgments.jsonl) for reporting.

Rows follow the one schema in ``r2d.records`` and are read through the one store (``r2d.store``): a torn
last line left by a killed run is ignored and noted, as every reader does. The reader tolerates extra
and missing optional keys; it is strict about what it cannot do without (results.json with a ``cells``
list, the sample and judgment join fields) and names the file/row/field when something is malformed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2d.records import ARM_FIELDS, HARMFUL_SUBSETS, Judgment, check_sample, is_harmful
from r2d.store import JsonlStore

__all__ = ["Arm", "Run", "load_run", "is_harmful", "HARMFUL_SUBSETS"]



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
    original_cells: list[dict[str, Any]] = field(default_factory=list)  # JBB behaviours whose source is Original

    def arm_of(self, row: dict) -> Arm:
        return Arm(self.name, str(row.get("model", "?")), str(row.get("defense") or "none"),
                   str(row.get("policy") or "raw"))

    def arms(self) -> list[Arm]:
        """Arms in the order they first appear in the cells (then samples)."""
        seen: dict[Arm, None] = {}
        for row in self.cells + self.samples:
            seen.setdefault(self.arm_of(row), None)
        return list(seen)


def _read(path: Path, notes: list[str]) -> list[dict]:
    """Rows of a run file through the one store (a torn tail from a killed run is ignored, an unreadable
    line skipped); what was left out becomes a note in the report."""
    store = JsonlStore(path, warn=False)
    rows = store.read()
    rep = store.last_read
    if rep.torn_tail:
        notes.append(f"{path.name}: the last line was torn (the run was stopped mid-write); it is ignored.")
    for n, why in rep.bad_lines:
        notes.append(f"{path.name}:{n}: skipped an unreadable line ({why}).")
    return rows


_GROUP = (*ARM_FIELDS, "benchmark", "subset", "attack")


def _join(samples: list[dict], judgments: list[dict], path: Path, cells: list[dict] | None = None) -> list[dict]:
    """Judgements (the last per key and judge) with their sample's arm and case fields copied in;
    a judgement of a sample not in this report (stale or missing), or by a judge that results.json has no
    cell for in that sample's group (a judge of an earlier config), is dropped, so the paired comparisons
    read the same judgements as the cells."""
    by_key = {s["key"]: s for s in samples}
    judged = {(*(str(c.get(k)) for k in _GROUP), str(c.get("judge"))) for c in cells or []
              if all(k in c for k in (*_GROUP, "judge"))}
    last = {}
    for i, row in enumerate(judgments):
        j = Judgment.from_dict(row, f"{path / 'judgments.jsonl'}: row {i + 1}")
        last.pop((j.key, j.judge), None)
        last[(j.key, j.judge)] = row
    out = []
    for (key, judge), row in last.items():
        s = by_key.get(key)
        if s is not None and (not judged or (*(str(s.get(k)) for k in _GROUP), str(judge)) in judged):
            out.append({**{k: s.get(k) for k in (*ARM_FIELDS, "case_id", "benchmark", "subset", "attack", "variant",
                                                 "behavior_id")}, **row})
    return out


def _in_cells(samples: list[dict], cells: list[dict]) -> list[dict]:
    """Samples of the groups results.json reports (samples.jsonl may hold rows of an earlier config)."""
    groups = {tuple(str(c.get(k)) for k in _GROUP) for c in cells}
    if not cells or not all(all(k in c for k in _GROUP) for c in cells):
        return samples
    return [s for s in samples if tuple(str(s.get(k)) for k in _GROUP) in groups]


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
    notes = [str(n) for n in notes] if isinstance(notes, list) else [str(notes)]
    rows = _read(path / "samples.jsonl", notes)
    latest = {check_sample(r, f"{path / 'samples.jsonl'}: row {i + 1}")["key"]: r for i, r in enumerate(rows)}
    samples = _in_cells(list(latest.values()), data["cells"])
    judgments = _join(samples, _read(path / "judgments.jsonl", notes), path, data["cells"])
    return Run(
        path=path,
        name=name or path.resolve().name,
        provenance=data.get("provenance") or {},
        cells=data["cells"],
        samples=samples,
        judgments=judgments,
        overlap=data.get("overlap"),
        general_ability=data.get("general_ability"), pivot_score=data.get("pivot_score"),
        notes=notes,
        samples_missing=int(data.get("samples_missing") or 0),
        original_cells=[c for c in data.get("cells_jbb_original") or [] if isinstance(c, dict)],
    )
