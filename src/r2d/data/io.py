"""Reading and writing JSONL, loading SwaRD data from a file or a Hub id, and converters from other
formats (the paper's ``instruction``/``input``/``output`` rows, plain prompt/response pairs)."""

from __future__ import annotations

from pathlib import Path

from r2d.data.schema import row_problems
from r2d.pivots import neutralize
from r2d.store import JsonlStore
from r2d.store import iter_lines as iter_jsonl
from r2d.store import read_strict as read_jsonl

__all__ = ["append_jsonl", "write_jsonl", "iter_jsonl", "read_jsonl", "load_sward", "to_chat"]


def append_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Append and flush (long jobs write as they go); a torn tail is repaired first (r2d.store)."""
    JsonlStore(path).append(rows)


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    JsonlStore(path).write(rows)


# --- converters --------------------------------------------------------------------------------

def from_instruction_io(row: dict, where: str = "") -> dict:
    """The paper's released format (HF ``chuhac/R2D-R1``): instruction / input / output."""
    for k in ("instruction", "output"):
        if not isinstance(row.get(k), str):
            raise ValueError(f"{where}: missing field {k!r} (expected instruction/input/output)")
    prompt = row["instruction"] + (("\n\n" + row["input"]) if row.get("input") else "")
    return {"messages": [{"role": "user", "content": neutralize(prompt)},
                         {"role": "assistant", "content": row["output"].strip()}],
            "source": row.get("source", "r2d-r1")}


def from_prompt_response(row: dict, where: str = "", prompt_key: str = "prompt",
                         response_key: str = "response") -> dict:
    for k in (prompt_key, response_key):
        if not isinstance(row.get(k), str):
            raise ValueError(f"{where}: missing field {k!r}")
    return {"messages": [{"role": "user", "content": neutralize(row[prompt_key])},
                         {"role": "assistant", "content": row[response_key].strip()}],
            **{k: row[k] for k in ("id", "label", "source") if k in row}}


def to_chat(row: dict, where: str = "") -> dict:
    """Any supported row shape -> a SwaRD chat row."""
    if "messages" in row:
        return row
    if "instruction" in row and "output" in row:
        return from_instruction_io(row, where)
    if "prompt" in row and ("response" in row or "completion" in row):
        return from_prompt_response(row, where, response_key="response" if "response" in row else "completion")
    raise ValueError(f"{where}: unrecognised row: expected 'messages', instruction/input/output or prompt/response")


def load_sward(source: str, split: str = "train", validate: bool = True) -> list[dict]:
    """Load SwaRD chat rows from a local .jsonl/.json/.parquet file or a Hub dataset id (via
    ``datasets``), converting other formats. With ``validate``, a bad row raises naming its line."""
    p = Path(source)
    if p.suffix == ".jsonl" and p.is_file():
        raw = [(n, r) for n, r in iter_jsonl(p)]
    else:
        import datasets

        if p.is_file():
            kind = {".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(p.suffix)
            if kind is None:
                raise ValueError(f"{p}: unsupported data file type {p.suffix!r} (jsonl, json, parquet, csv)")
            ds = datasets.load_dataset(kind, data_files=str(p), split=split)
        elif p.exists():
            raise ValueError(f"{p}: is a directory, expected a data file")
        elif "/" in source and not source.startswith((".", "/")):
            ds = datasets.load_dataset(source, split=split)
        else:
            raise FileNotFoundError(f"data file not found: {source}")
        raw = [(i + 1, r) for i, r in enumerate(ds)]
    rows = []
    for n, r in raw:
        if isinstance(r, Exception):
            raise ValueError(f"{source}:{n}: invalid JSON: {r}")
        row = to_chat(r, f"{source}:{n}")
        if validate:
            probs = row_problems(row)
            if probs:
                raise ValueError(f"{source}:{n}: {probs[0]} (run `r2d data validate {source}` for all problems)")
        rows.append(row)
    if not rows:
        raise ValueError(f"{source}: no rows")
    return rows
