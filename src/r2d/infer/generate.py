"""Batch generation from a prompts JSONL to an outputs JSONL, resumable.

Input rows: ``{"id": ..., "prompt": "..."}`` or ``{"id": ..., "messages": [{"role", "content"}, ...]}``
(optional ``system``). Output: one JSON object per input row, appended as each batch finishes and
flushed, so a killed run rerun with the same command writes every row exactly once.
A provenance file ``<output>.provenance.json`` records model, backend, policy, settings and hashes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from r2d.backends.base import Chat, Completion, GenParams
from r2d.pivots import neutralize
from r2d.reasoning import parse
from r2d.store import JsonlStore


@dataclass
class PromptRow:
    id: str
    chat: Chat
    prompt: str
    line: int
    extra: dict[str, Any] = field(default_factory=dict)


def read_prompts(path: str | Path, system: str | None = None, trust_assistant: bool = False) -> list[PromptRow]:
    """Read and validate the input; a bad row raises ``ValueError("FILE:LINE: ...")``. Assistant turns in
    the input come from the client, so they are neutralised like user turns (no forged pivot or think
    token in a "prior" reply) unless ``trust_assistant``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} not found")
    rows: list[PromptRow] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: a row must be a JSON object")
            if "id" not in obj or obj["id"] in (None, ""):
                raise ValueError(f"{where}: missing field 'id'")
            rid = str(obj["id"])
            if rid in seen:
                raise ValueError(f"{where}: duplicate id {rid!r}")
            seen.add(rid)
            if isinstance(obj.get("messages"), list) and obj["messages"]:
                chat = obj["messages"]
                for k, m in enumerate(chat):
                    if not isinstance(m, dict) or not isinstance(m.get("role"), str) \
                            or not isinstance(m.get("content"), str):
                        raise ValueError(f"{where}: messages[{k}] needs string 'role' and 'content'")
                if not trust_assistant:
                    chat = [{**m, "content": neutralize(m["content"])} if m["role"] == "assistant" else m
                            for m in chat]
                prompt = next((m["content"] for m in reversed(chat) if m["role"] == "user"), "")
            elif isinstance(obj.get("prompt"), str) and obj["prompt"].strip():
                prompt = obj["prompt"]
                chat = [{"role": "user", "content": prompt}]
            else:
                raise ValueError(f"{where}: needs a non-empty string 'prompt' or a list 'messages'")
            sys_msg = obj.get("system", system)
            if sys_msg and chat[0]["role"] != "system":
                chat = [{"role": "system", "content": str(sys_msg)}] + chat
            extra = {k: v for k, v in obj.items() if k not in ("id", "prompt", "messages", "system")}
            rows.append(PromptRow(rid, chat, prompt, n, extra))
    return rows


def done_rows(path: str | Path, run_fingerprint: str | None, store: JsonlStore | None = None) -> dict[str, dict]:
    """The last row per id already in ``path`` (through ``r2d.store``: a torn tail is cut off, an
    unreadable line skipped with a warning and the rows after it kept). A row made by another run
    (its ``run_fingerprint`` differs: other model, weights, policy or settings) is a one-line error:
    never silently reused, never mixed into the same file."""
    store = store or JsonlStore(path)
    store.repair()
    rows = store.latest("id")
    if run_fingerprint is not None:
        other = next((r for r in rows.values() if r.get("run_fingerprint") != run_fingerprint), None)
        if other is not None:
            raise ValueError(f"{path}: holds rows from another run (model {other.get('model')!r}, policy "
                             f"{other.get('policy')!r}, or other settings); write to a new --output or pass --overwrite")
    return rows


def output_row(row: PromptRow, c: Completion, raw: Completion | None = None) -> dict[str, Any]:
    """One output record. ``completion`` is the model's full text, ``response`` what the policy shows."""
    model_text = c.meta.get("raw_text", c.full_text)
    p = parse(model_text)
    return {
        "id": row.id, "prompt": row.prompt, "messages": row.chat,
        "completion": model_text if c.error is None else None,
        "response": c.text if c.error is None else None,
        "answer": p.answer if c.error is None else None,
        "steps": [[s.text, s.pivot] for s in p.steps] if c.error is None else [],
        "pivots": p.pivots if c.error is None else [],
        "well_formed": p.well_formed if c.error is None else False,
        "error": c.error, "finish_reason": c.finish_reason,
        "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
        "latency_s": round(c.latency_s, 4),
        "pivot_probs": c.meta.get("pivot_probs"),
        "policy_refused": c.meta.get("policy_refused"),
        "reasoning_words": len(p.reasoning.split()) if c.error is None else None,
        "answer_words": len(p.answer.split()) if c.error is None else None,
        **({"r2d_n": c.meta["r2d_n"]} if "r2d_n" in c.meta else {}),
        **({"input": row.extra} if row.extra else {}),
    }


def chunks(items: list, size: int) -> Iterator[list]:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"batch size must be a positive integer, got {size!r}")
    for i in range(0, len(items), size):
        yield items[i:i + size]


def run_generate(backend: Any, rows: list[PromptRow], output: str | Path, params: GenParams,
                 policy: Any, run_info: dict[str, Any], chunk_size: int | None = None,
                 progress: bool = True) -> dict[str, int]:
    """Generate every row not yet in ``output``, appending as each chunk finishes."""
    from tqdm.auto import tqdm

    from r2d.infer.policies import generate_with_policy

    output = Path(output)
    if output.is_dir():
        raise ValueError(f"output {output} is a directory; give a JSONL file path")
    size = chunk_size or params.batch_size
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"batch size must be a positive integer, got {size!r}")
    run_fp = run_info.get("run_fingerprint")
    store = JsonlStore(output)
    done = done_rows(output, run_fp, store)
    bad_lines = bool(store.last_read.bad_lines)
    ids = {r.id for r in rows}
    todo = [r for r in rows if r.id not in done or done[r.id].get("error")]  # failed rows are retried
    stats = {"total": len(rows), "skipped": len(rows) - len(todo), "written": 0, "errors": 0,
             "retried": sum(1 for r in todo if r.id in done)}
    bar = tqdm(total=len(todo), desc="rows", unit="row", disable=not progress or not todo)
    for chunk in chunks(todo, size):
        comps = generate_with_policy(backend, [r.chat for r in chunk], params, policy)
        recs = [{**output_row(r, c), **run_info} for r, c in zip(chunk, comps)]
        store.append(recs)
        stats["written"] += len(recs)
        stats["errors"] += sum(c.error is not None for c in comps)
        bar.update(len(chunk))
    bar.close()
    if stats["retried"] or bad_lines:
        # retries were appended: leave one row per id, in input order (rows for ids no longer in the input kept)
        latest = store.latest("id")
        order = [r.id for r in rows if r.id in latest] + [i for i in latest if i not in ids]
        store.write([latest[i] for i in order])
    return stats
