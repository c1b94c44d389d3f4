"""``r2d data build``: seeds -> teacher -> steps with pivots -> judge re-tagging -> filter, dedupe,
decontaminate -> ``train.jsonl`` + ``rejected.jsonl`` + ``card.md`` (+ a ``datasets`` copy in ``hf/``).

Order of work, so that no teacher call is spent on a row that would be thrown away: the whole seed
mixture is first deduplicated and decontaminated (prompt-only, deterministic in seed order), then
the remaining seeds go to the teacher in chunks of ``chunk_size`` (concurrency is inside the
teacher; a teacher with ``prefetch`` gets the next chunk while the current one's stragglers finish,
under one shared concurrency limit), each chunk's replies are cached on disk, split, re-tagged with one judge call, validated,
and appended to the outputs. Resuming: every seed id already in train.jsonl or rejected.jsonl is
skipped (rows rejected for a retryable reason are retried when ``retry_errors``), so after a kill
and a re-run each seed appears exactly once across the two files.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from r2d import registry
from r2d.data.cache import TeacherCache, cache_key
from r2d.data.io import append_jsonl, write_jsonl
from r2d.data.schema import row_problems
from r2d.data.seeds import Seed, mix_seeds
from r2d.data.tagging import Dropped, judge_split, split_reply
from r2d.data.teachers.base import TeacherReply
from r2d.store import JsonlStore, claim_run_dir

DEFAULT_MIX = {"alpaca": 0.3, "self-instruct": 0.15, "advbench": 0.25, "jailbreak": 0.3}


@dataclass
class BuildConfig:
    output: str = field(default="", metadata={"help": "output directory"})
    seeds: dict = field(default_factory=lambda: dict(DEFAULT_MIX),
                        metadata={"help": "seed set -> weight or {weight, **kwargs}"})
    size: int | None = field(default=None, metadata={"help": "rows to draw from the mixture (default: all)"})
    limit: int | None = field(default=None, metadata={"help": "keep only the first N seeds of the mixture"})
    seed: int = 0
    edgy_first: bool = True
    teacher: str = field(default="template", metadata={"help": "teacher name (template, openai, hf)"})
    teacher_kwargs: dict = field(default_factory=dict)
    judge: str = field(default="pivot", metadata={"help": "judge re-tagging each step (any r2d judge)"})
    judge_kwargs: dict = field(default_factory=dict)
    max_prompt_words: int | None = field(default=None, metadata={"help": "reject seeds with longer prompts (budget)"})
    dedup_threshold: float = 0.8
    decontam_n: int = 8
    decontam_threshold: float = 0.5
    decontam_benchmarks: list[str] | None = None
    decontam_exclude: list[str] = field(default_factory=lambda: ["advbench"])
    chunk_size: int = 256
    cache_dir: str | None = field(default=None, metadata={"help": "teacher cache (default OUTPUT/cache)"})
    retry_errors: bool = True
    hf_dataset: bool = True
    progress: bool = True
    overwrite: bool = field(default=False, metadata={"help": "empty the output directory first (it holds a "
                                                             "build with other settings, or other files)"})


@dataclass
class BuildResult:
    accepted: int = 0
    rejected: int = 0
    teacher_calls: int = 0
    cache_hits: int = 0
    seconds: float = 0.0
    skipped_done: int = 0
    stages: dict[str, int] = field(default_factory=dict)


def _reject(seed: Seed, stage: str, reason: str, retryable: bool = False, **extra: Any) -> dict:
    return {"id": seed.id, "label": seed.label, "origin": seed.origin, "stage": stage, "reason": reason,
            "retryable": retryable, "prompt": seed.prompt, **extra}


def _train_row(seed: Seed, text: str, teacher: str, extra: dict) -> dict:
    return {"id": seed.id, "messages": [{"role": "user", "content": seed.prompt},
                                        {"role": "assistant", "content": text}],
            "label": seed.label, "source": seed.meta.get("source") or seed.origin.split(":")[0],
            "meta": {"origin": seed.origin, "category": seed.category, "teacher": teacher, **extra,
                     **{k: v for k, v in seed.meta.items() if k in ("template_id", "wrappers", "edgy")}}}


RUN_FILE = "build_run.json"
# fields that do not change a row already written: where and how fast it runs, how much is drawn, and the
# teacher/judge kwargs (their output-relevant part is the teacher's cache_params and the judge's params)
NOT_ROW_FIELDS = ("output", "size", "limit", "chunk_size", "cache_dir", "retry_errors", "hf_dataset", "progress",
                  "overwrite", "teacher_kwargs", "judge_kwargs")


_TRANSPORT = ("api_key", "base_url", "concurrency", "timeout", "max_retries", "retries", "rps", "backoff")


def _run_fields(cfg: BuildConfig, teacher: Any) -> dict:
    """What a resumed build must share with the rows already in its output (teacher, judge, seeds, filters);
    endpoint/transport settings of the teacher and judge are left out."""
    return {**{k: v for k, v in asdict(cfg).items() if k not in NOT_ROW_FIELDS},
            "teacher_params": teacher.cache_params(),
            "judge_params": {k: v for k, v in cfg.judge_kwargs.items() if k not in _TRANSPORT}}


def _load_done(out: Path, retry_errors: bool) -> set[str]:
    """Seed ids already written (torn tail and unreadable lines handled by ``r2d.store``); retryable
    rejections are dropped from rejected.jsonl when ``retry_errors``."""
    done: set[str] = set()
    for name in ("train.jsonl", "rejected.jsonl"):
        store = JsonlStore(out / name)
        store.repair()
        rows = [r for r in store.rows() if "id" in r]
        if name == "rejected.jsonl" and retry_errors and any(r.get("retryable") for r in rows):
            rows = [r for r in rows if not r.get("retryable")]
            store.write(rows)
        done |= {r["id"] for r in rows}
    return done


def filter_seeds(seeds: list[Seed], cfg: BuildConfig) -> tuple[list[Seed], list[dict], dict]:
    """Dedup + decontamination on prompts; returns (kept, rejected rows, decontam summary)."""
    from r2d.data.decontam import Decontaminator, eval_prompts
    from r2d.data.dedup import Deduplicator

    prompts = eval_prompts(cfg.decontam_benchmarks, cfg.decontam_exclude)
    dec = Decontaminator(prompts, cfg.decontam_n, cfg.decontam_threshold)
    dd: dict[str, Deduplicator] = {}  # per label: a goal asked directly and wrapped are different examples
    kept, rejected = [], []
    removed: dict[str, int] = {b: 0 for b in prompts}
    for s in seeds:
        if cfg.max_prompt_words and len(s.prompt.split()) > cfg.max_prompt_words:
            rejected.append(_reject(s, "length", f"prompt has {len(s.prompt.split())} words > max_prompt_words "
                                                 f"{cfg.max_prompt_words}"))
            continue
        m = dec.check(s.prompt)
        if m:
            removed[m.benchmark] += 1
            rejected.append(_reject(s, "decontam", f"overlaps {m.benchmark} item ({m.measure} containment {m.score:.2f})",
                                    match=m.to_dict()))
            continue
        d = dd.setdefault(s.label, Deduplicator(cfg.dedup_threshold)).check(s.id, s.dedup_text)
        if d:
            rejected.append(_reject(s, "dedup", f"{d[0]} duplicate of {d[1]} (jaccard {d[2]})", duplicate_of=d[1]))
            continue
        kept.append(s)
    summary = {"method": dec.method(), "benchmarks": dec.benchmarks, "excluded": list(cfg.decontam_exclude), "removed": removed}
    return kept, rejected, summary


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="sward build", unit="row", file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int) -> None:
        if self.bar:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar:
            self.bar.close()


def build(cfg: BuildConfig, teacher: Any = None, judge: Any = None) -> BuildResult:
    """Run (or resume) a build into ``cfg.output``. ``teacher``/``judge`` objects may be injected (tests)."""
    return asyncio.run(abuild(cfg, teacher, judge))


async def abuild(cfg: BuildConfig, teacher: Any = None, judge: Any = None) -> BuildResult:
    if not cfg.output:
        raise ValueError("data build: --output DIR is required")
    out = Path(cfg.output)
    t0 = time.perf_counter()
    res = BuildResult()
    # --limit without --size draws a small mixture at the configured ratios
    seeds = mix_seeds(cfg.seeds, cfg.size or cfg.limit, cfg.seed, cfg.edgy_first)
    if cfg.limit is not None:
        seeds = seeds[: cfg.limit]
    if not seeds:
        raise ValueError("data build: the seed mixture is empty")
    teacher = teacher or registry.create("teacher", cfg.teacher, **cfg.teacher_kwargs)
    judge = judge or registry.create("judge", cfg.judge, **cfg.judge_kwargs)
    claim_run_dir(out, _run_fields(cfg, teacher), RUN_FILE, "r2d data build", overwrite=cfg.overwrite)
    done = _load_done(out, cfg.retry_errors)
    kept, pre_rejected, decontam = filter_seeds(seeds, cfg)
    new_rej = [r for r in pre_rejected if r["id"] not in done]
    append_jsonl(out / "rejected.jsonl", new_rej)
    todo = [s for s in kept if s.id not in done]
    res.skipped_done = len(seeds) - len(todo) - len(new_rej)
    cache = TeacherCache(Path(cfg.cache_dir) if cfg.cache_dir else out / "cache" / "teacher.sqlite")
    params = teacher.cache_params()
    prog = _Progress(len(todo), cfg.progress)
    calls_before = getattr(teacher, "calls", 0)
    chunks = [todo[i:i + cfg.chunk_size] for i in range(0, len(todo), cfg.chunk_size)]
    depth = 2 if getattr(teacher, "prefetch", False) else 1  # overlap the next chunk with this one's stragglers
    pending: deque = deque()

    def start(chunk: list[Seed]) -> tuple:
        keys = [cache_key(params, _cache_text(s)) for s in chunk]
        hits = cache.get_many(keys)
        res.cache_hits += sum(k in hits for k in keys)
        miss = [(s, k) for s, k in zip(chunk, keys) if k not in hits]
        task = asyncio.ensure_future(teacher.agenerate([s for s, _ in miss])) if miss else None
        return chunk, keys, hits, miss, task

    try:
        nxt = 0
        while nxt < len(chunks) or pending:
            while nxt < len(chunks) and len(pending) < depth:
                pending.append(start(chunks[nxt]))
                nxt += 1
            chunk, keys, hits, miss, task = pending.popleft()
            replies = await task if task else []
            cache.put_many({k: r.to_dict() for (_, k), r in zip(miss, replies) if r.error is None})
            got = {k: TeacherReply(**hits[k]) for k in hits} | {k: r for (_, k), r in zip(miss, replies)}
            # in a thread, so the next chunk's requests keep flowing while a slow judge runs
            rows, rejects = await asyncio.to_thread(_tag_chunk, chunk, [got[k] for k in keys], judge, teacher.name)
            append_jsonl(out / "train.jsonl", rows)
            append_jsonl(out / "rejected.jsonl", rejects)
            prog.update(len(chunk))
    finally:
        for *_, task in pending:
            if task:
                task.cancel()
        prog.close()
        cache.close()
    res.teacher_calls = getattr(teacher, "calls", 0) - calls_before
    _finish(cfg, out, teacher, judge, decontam, res)
    res.seconds = round(time.perf_counter() - t0, 2)
    return res


def _cache_text(seed: Seed) -> str:
    """What, besides the teacher's parameters, decides a reply: the prompt, and a carried trace (dataset teacher)."""
    if "trace" not in seed.meta:
        return seed.prompt
    import hashlib

    return f"{seed.prompt}\x00trace:{hashlib.sha256(seed.meta['trace'].encode()).hexdigest()}"


# Per-row provenance a teacher may set in ``TeacherReply.meta`` (a mixed teacher names what wrote each row).
_ROW_META = ("reasoning_source",)


def _tag_chunk(chunk: list[Seed], replies: list[TeacherReply], judge: Any, teacher: str) -> tuple[list, list]:
    rows, rejects, items, owners = [], [], [], []
    for s, r in zip(chunk, replies):
        if r.error:
            rejects.append(_reject(s, "teacher", r.error, r.retryable))
            continue
        try:
            sp = split_reply(r.text, r.meta.get("finish_reason"))
        except Dropped as e:
            rejects.append(_reject(s, "parse", str(e), teacher_reply=r.text))
            continue
        items.append((s, s.prompt, sp))
        owners.append(r)
    for (s, _, sp), r, tagged in zip(items, owners, judge_split(judge, items) if items else []):
        if isinstance(tagged, Exception):
            retry = str(tagged).startswith("judge error")
            rejects.append(_reject(s, "judge", str(tagged), retry, teacher_reply=r.text))
            continue
        row = _train_row(s, tagged, r.meta.get("teacher", teacher),
                         {"repairs": sp.repairs, "pivots_from": sp.pivots_from,
                          **{k: r.meta[k] for k in _ROW_META if k in r.meta}})
        probs = row_problems(row)
        if probs:
            rejects.append(_reject(s, "validate", probs[0], teacher_reply=r.text))
            continue
        rows.append(row)
    return rows, rejects


def _finish(cfg: BuildConfig, out: Path, teacher: Any, judge: Any, decontam: dict, res: BuildResult) -> None:
    """Provenance, dataset card and the ``datasets`` copy, from the files as they now stand."""
    from r2d.config import config_dict
    from r2d.data.card import render_card
    from r2d.provenance import base_provenance, sha256_file

    train = JsonlStore(out / "train.jsonl").read()
    rejected = JsonlStore(out / "rejected.jsonl").read()
    res.accepted, res.rejected = len(train), len(rejected)
    for r in rejected:
        res.stages[r["stage"]] = res.stages.get(r["stage"], 0) + 1
    jp = judge.params() if hasattr(judge, "params") else {}
    prov = base_provenance() | {
        "config": config_dict(cfg), "teacher": teacher.provenance(), "judge": {"name": getattr(judge, "name", cfg.judge),
                                                                          "params": jp},
        "decontamination": decontam, "data_files": _data_hashes(),
        "outputs": {n: sha256_file(out / n) for n in ("train.jsonl", "rejected.jsonl") if (out / n).is_file()},
        "last_run": {"teacher_calls": res.teacher_calls, "cache_hits": res.cache_hits},
    }
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, default=str))
    (out / "card.md").write_text(render_card(train, rejected, prov, title=f"SwaRD dataset: {out.name}"))
    if cfg.hf_dataset and train:
        import datasets

        flat = [{**r, "meta": json.dumps(r.get("meta", {}), ensure_ascii=False)} for r in train]
        datasets.Dataset.from_list(flat).save_to_disk(str(out / "hf"))


def _data_hashes() -> dict[str, str]:
    from r2d.paths import data_dir
    from r2d.provenance import sha256_file

    rels = ["benign/alpaca_data_1k.json", "benign/self_instruct_seed_tasks.jsonl", "advbench/harmful_behaviors.csv",
            "templates/harmbench_human_jailbreaks.json", "star1/STAR-1.json"]
    return {r: sha256_file(data_dir() / r) for r in rels if (data_dir() / r).is_file()}
