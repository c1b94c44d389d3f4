"""Synthesis throughput: the ``openai`` teacher against a local mock server (300 ms per request) at
concurrency 1, 8 and 64, plus the offline ``template`` build of the quickstart dataset.

    python bench/synthesis_throughput.py [--n 512] [--subset1 32]

Concurrency 1 is measured on ``--subset1`` examples and extrapolated linearly to ``--n`` (said so in
the output). The mock server runs in its own process. Each measurement is a fresh ``r2d data build`` (fresh cache) over the first ``n`` Alpaca
seeds; "teacher s" is the span from the first ``teacher.agenerate`` call's start to the last one's end, "build s" the whole build (seed
loading, dedup/decontamination, tagging, card). Speed-up = per-row teacher time at concurrency 1 /
per-row teacher time at concurrency c; ideal = c. Writes bench/results/synthesis_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("R2D_DATA_DIR", str(ROOT.parent / "shared" / "data"))


class Timed:
    """Wraps a teacher; ``seconds`` = from the first ``agenerate`` start to the last one's end (calls overlap
    when the engine prefetches the next chunk)."""

    def __init__(self, inner):
        self.inner, self.first, self.last = inner, None, 0.0
        self.name = inner.name

    def __getattr__(self, k):
        return getattr(self.inner, k)

    @property
    def seconds(self) -> float:
        return self.last - self.first if self.first is not None else 0.0

    async def agenerate(self, seeds):
        t0 = time.perf_counter()
        self.first = t0 if self.first is None else self.first
        try:
            return await self.inner.agenerate(seeds)
        finally:
            self.last = max(self.last, time.perf_counter())


def _serve(latency: float, q) -> None:
    from r2d.backends.mock_server import MockOpenAIServer, teacher_reply

    srv = MockOpenAIServer(delay_s=latency, split_reasoning=True, reply=teacher_reply)
    q.put(srv.url)
    srv.httpd.serve_forever()


@contextmanager
def server_process(latency: float):
    """The mock server in its own process, so its threads do not share the client's GIL."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(latency, q), daemon=True)
    proc.start()
    try:
        yield q.get(timeout=60)
    finally:
        proc.terminate()
        proc.join()


def run_openai(n: int, concurrency: int, latency: float) -> dict:
    from r2d.data.build import BuildConfig, build
    from r2d.data.teachers.openai_teacher import OpenAITeacher

    with server_process(latency) as url, tempfile.TemporaryDirectory() as d:
        teacher = Timed(OpenAITeacher(model="mock-r1", base_url=url, concurrency=concurrency, retries=0))
        cfg = BuildConfig(output=d, seeds={"alpaca": 1.0}, size=n, teacher="openai", hf_dataset=False,
                          progress=False, chunk_size=max(256, 4 * concurrency), dedup_threshold=1.01)
        t0, c0 = time.perf_counter(), time.process_time()
        res = build(cfg, teacher=teacher)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    calls = res.teacher_calls
    return {"concurrency": concurrency, "examples": calls, "accepted": res.accepted, "teacher_s": round(teacher.seconds, 2),
            "build_s": round(wall, 2), "rows_per_s": round(calls / teacher.seconds, 2),
            "ideal_teacher_s": round(calls * latency / concurrency, 2), "client_cpu_s": round(cpu, 2)}


def run_template(config: Path) -> dict:
    from r2d.config import build_config
    from r2d.data.build import BuildConfig, build

    with tempfile.TemporaryDirectory() as d:
        cfg = build_config(BuildConfig, config, output=d, progress=False)
        cfg.teacher_kwargs = {**cfg.teacher_kwargs, "answers": "source"}  # excluding self-distilled answers
        t0 = time.perf_counter()
        res = build(cfg)
        return {"config": str(config.relative_to(ROOT)), "answers": "source", "seconds": round(time.perf_counter() - t0, 2),
                "accepted": res.accepted, "rejected": res.rejected, "stages": res.stages}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--subset1", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.3)
    args = ap.parse_args()
    from r2d.provenance import base_provenance

    rows = []
    r1 = run_openai(args.subset1, 1, args.latency)
    per_row_1 = r1["teacher_s"] / r1["examples"]
    r1 |= {"measured_on": r1["examples"], "extrapolated_teacher_s": round(per_row_1 * args.n, 2)}
    rows.append(r1)
    for c in (8, 64):
        rows.append(run_openai(args.n, c, args.latency))
    for r in rows:
        r["speedup"] = round(per_row_1 / (r["teacher_s"] / r["examples"]), 2)
        r["speedup_vs_ideal"] = round(r["speedup"] / r["concurrency"], 3)
    # Diagnostics: the client/server ceiling at zero latency, and c=64 at a longer (1 s) latency.
    diag = [run_openai(args.n, 64, 0.0), run_openai(args.n, 64, 1.0)]
    for r in diag:
        r["x_ideal_vs_latency"] = round(r["ideal_teacher_s"] / r["teacher_s"], 3) if r["ideal_teacher_s"] else None
    tmpl = run_template(ROOT / "configs" / "quickstart" / "data.yaml")
    out = {"provenance": base_provenance() | {"cpu_count": os.cpu_count(),
                                              "load_avg_at_start": os.getloadavg()},
           "latency_s": args.latency, "n": args.n, "openai_mock": rows, "diagnostics_c64": diag,
           "template_quickstart": tmpl,
           "note": f"concurrency 1 measured on {args.subset1} examples and extrapolated to {args.n}"}
    dest = ROOT / "bench" / "results" / "synthesis_throughput.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(f"| concurrency | examples | teacher s | build s | rows/s | ideal teacher s | speed-up | x ideal |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ex = f"{r['examples']} (extrap. {args.n}: {r['extrapolated_teacher_s']} s)" if r["concurrency"] == 1 else r["examples"]
        print(f"| {r['concurrency']} | {ex} | {r['teacher_s']} | {r['build_s']} | {r['rows_per_s']} | "
              f"{r['ideal_teacher_s']} | {r['speedup']} | {r['speedup_vs_ideal']} |")
    for r in diag:
        print(f"diagnostic c=64, latency {r['ideal_teacher_s'] * 64 / r['examples']:.1f}s: teacher {r['teacher_s']} s "
              f"(ideal {r['ideal_teacher_s']} s), {r['rows_per_s']} rows/s, client CPU {r['client_cpu_s']} s")
    print(f"\ntemplate build of {tmpl['config']} (answers=source): {tmpl['seconds']} s, "
          f"{tmpl['accepted']} accepted, {tmpl['rejected']} rejected {tmpl['stages']}")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
