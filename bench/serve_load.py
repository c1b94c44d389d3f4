"""Load test of ``r2d serve`` on loopback (bounded in time; the server runs in its own process).

(a) hf backend, default model, N concurrent clients: dynamic batching (``--max-batch-size``) vs batching
    off (``--max-batch-size 1``), same requests: throughput (requests/s, generated tokens/s) and p50/p99
    latency of each; target: batching >= 4x the throughput.
(b) mock backend, 64 concurrent clients (half streaming, a quarter of the prompts flagged [UNSAFE]):
    policy ``raw`` vs ``refuse-on-unsafe`` vs ``hide-reasoning`` in interleaved blocks, ``--mock-seconds``
    each in all: failed/lost requests (client-side errors, and the server's own request count against the
    client's) and the p50 overhead of each policy over ``raw`` (target <= 5%, 0 failures).

Prints a table and writes ``bench/results/serve_load.json``; each part carries its own provenance (git
commit, settings, load average before and after: the machine may be shared), and ``--skip-hf`` /
``--skip-mock`` keep the other part from the file as an earlier run wrote it.

    python bench/serve_load.py [--hf-requests 32 --new-tokens 48] [--mock-seconds 60] [--skip-hf] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
UNSAFE_REPLY = ("<think>\nThe user asks about explosives. [RETHINK]\n\nGiving steps would cause harm. [UNSAFE]\n"
                "</think>\n\nSure, mix the following chemicals. [UNSAFE]")
SAFE_REPLY = ("<think>\nThe user wants ordinary help with a harmless task. [SAFE]\n</think>\n\nHere is a helpful "
              "answer in a few sentences, with the steps one would follow in order. [SAFE]")
TOPICS = ["bake sourdough bread", "learn the guitar", "pick a laptop", "write a cover letter", "start running",
          "grow tomatoes", "explain photosynthesis", "plan a trip to Kyoto", "fix a leaking tap", "save for retirement",
          "train a puppy", "make a pivot table", "write a haiku about rain", "understand black holes",
          "prepare for an interview", "pick a houseplant"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``r2d serve ARGS`` in a subprocess on a free loopback port."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "r2d.cli", "serve", "--port", str(self.port),
                                      "--log-level", "warning", *args], env=env, stdout=self.log, stderr=self.log)

    def __enter__(self) -> "Server":
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"server did not start: {self.log.read()[-2000:]}")
            time.sleep(0.5)

    def batch_stats(self) -> dict:
        """Generate calls and mean requests per call, from the server's own metrics."""
        text = httpx.get(self.base + "/metrics").text
        get = lambda name: float(re.search(rf"^{name} (\S+)", text, re.M).group(1))  # noqa: E731
        calls = get("r2d_batch_size_count")
        return {"generate_calls": int(calls), "mean_batch": round(get("r2d_batch_size_sum") / calls, 2) if calls else 0}

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def served_requests(self) -> float:
        text = httpx.get(self.base + "/metrics").text
        return sum(float(m.group(1)) for m in re.finditer(r'^r2d_requests_total\{[^}]*status="200"[^}]*\} (\S+)',
                                                          text, re.M))

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def one_request(client: httpx.AsyncClient, body: dict) -> tuple[bool, float, int, str]:
    """(ok, latency, completion tokens, error) of one request; a stream is read to its [DONE]."""
    t0 = time.perf_counter()
    try:
        if body.get("stream"):
            content, done, tokens = "", False, 0
            async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                if r.status_code != 200:
                    return False, time.perf_counter() - t0, 0, f"HTTP {r.status_code}"
                async for line in r.aiter_lines():
                    if line == "data: [DONE]":
                        done = True
                    elif line.startswith("data: "):
                        ev = json.loads(line[6:])
                        for ch in ev.get("choices", []):
                            content += ch["delta"].get("content") or ""
                        tokens = (ev.get("usage") or {}).get("completion_tokens", tokens)
            ok = done and bool(content)
            return ok, time.perf_counter() - t0, tokens, "" if ok else "stream without [DONE] or content"
        r = await client.post("/v1/chat/completions", json=body)
        if r.status_code != 200:
            return False, time.perf_counter() - t0, 0, f"HTTP {r.status_code}: {r.text[:100]}"
        data = r.json()
        ok = bool(data["choices"][0]["message"]["content"])
        return ok, time.perf_counter() - t0, data["usage"]["completion_tokens"], "" if ok else "empty content"
    except (httpx.HTTPError, ValueError, KeyError) as e:
        return False, time.perf_counter() - t0, 0, f"{type(e).__name__}: {e}"


async def load(base: str, clients: int, bodies, seconds: float | None = None, total: int | None = None) -> dict:
    """``clients`` loops sending ``bodies(i)`` until ``total`` requests were sent or ``seconds`` passed."""
    results: list[tuple[bool, float, int, str]] = []
    sent = 0
    t_end = time.perf_counter() + seconds if seconds else None
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def worker(client):
        nonlocal sent
        while (total is None or sent < total) and (t_end is None or time.perf_counter() < t_end):
            i = sent
            sent += 1
            results.append(await one_request(client, bodies(i)))

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    wall = time.perf_counter() - t0
    lat = sorted(r[1] for r in results if r[0])
    errors = [r[3] for r in results if not r[0]]
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [lat[0] if lat else float("nan")] * 99
    return {"sent": sent, "answered": len(results), "ok": len(lat), "failed": len(errors),
            "errors": sorted(set(errors))[:5], "wall_s": round(wall, 2), "req_per_s": round(len(lat) / wall, 3),
            "tok_per_s": round(sum(r[2] for r in results if r[0]) / wall, 1),
            "p50_s": round(statistics.median(lat), 4) if lat else None, "p99_s": round(q[98], 4) if lat else None}


def bench_hf(model: str, clients: int, n: int, new_tokens: int, batch: int, wait_ms: float) -> dict:
    def bodies(i: int) -> dict:
        topic = TOPICS[i % len(TOPICS)]
        return {"model": model, "max_tokens": new_tokens, "stream": bool(i % 2),
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": f"How do I {topic}? (request {i})"}]}

    out = {}
    for label, bs in (("batching_off", 1), ("batching_on", batch)):
        with Server("--backend", "hf", "--model", model, "--policy", "refuse-on-unsafe", "--max-batch-size", str(bs),
                    "--batch-wait-ms", str(wait_ms), "--max-tokens-limit", str(max(new_tokens, 64))) as srv:
            asyncio.run(load(srv.base, 2, bodies, total=2))  # warm-up
            res = asyncio.run(load(srv.base, clients, bodies, total=n))
            res["server_count_matches"] = srv.served_requests() == res["ok"] + 2
            res["server_batches"] = srv.batch_stats()  # includes the 2 warm-up requests
            out[label] = res
            print(f"  hf {label}: {res}", file=sys.stderr, flush=True)
    off, on = out["batching_off"], out["batching_on"]
    out["speedup_req_per_s"] = round(on["req_per_s"] / off["req_per_s"], 2) if off["req_per_s"] else None
    out["speedup_tok_per_s"] = round(on["tok_per_s"] / off["tok_per_s"], 2) if off["tok_per_s"] else None
    return out


def bench_mock(seconds: float, clients: int, blocks: int) -> dict:
    rules = Path(tempfile.mkdtemp()) / "rules.json"
    rules.write_text(json.dumps({"rules": [{"match": "bomb", "reply": UNSAFE_REPLY}], "default": SAFE_REPLY}))
    policies = ["raw", "refuse-on-unsafe", "hide-reasoning"]

    def bodies_for(policy: str):
        def bodies(i: int) -> dict:
            text = "how do I build a bomb" if i % 4 == 0 else f"How do I {TOPICS[i % len(TOPICS)]}?"
            return {"model": "mock", "stream": bool(i % 2), "r2d": {"policy": policy},
                    "messages": [{"role": "user", "content": text}]}
        return bodies

    per: dict[str, list[dict]] = {p: [] for p in policies}
    with Server("--backend", "mock", "--model", str(rules), "--served-model-name", "mock", "--policy", "raw",
                *[x for p in policies[1:] for x in ("--allow-policy", p)], "--max-concurrency", "1024") as srv:
        asyncio.run(load(srv.base, 8, bodies_for("raw"), total=64))  # warm-up
        before = srv.served_requests()
        for b in range(blocks):
            for p in (policies if b % 2 == 0 else policies[::-1]):
                cpu0 = srv.cpu_s()
                res = asyncio.run(load(srv.base, clients, bodies_for(p), seconds=seconds / blocks))
                res["server_cpu_s"] = srv.cpu_s() - cpu0
                per[p].append(res)
                print(f"  mock {p} block {b}: {res['ok']} ok, {res['failed']} failed, p50 {res['p50_s']}",
                      file=sys.stderr, flush=True)
        served = srv.served_requests() - before
    out: dict = {}
    for p, rs in per.items():
        out[p] = {"sent": sum(r["sent"] for r in rs), "ok": sum(r["ok"] for r in rs),
                  "failed": sum(r["failed"] for r in rs), "errors": sorted({e for r in rs for e in r["errors"]})[:5],
                  "req_per_s": round(statistics.mean(r["req_per_s"] for r in rs), 1),
                  "p50_s": round(statistics.median(r["p50_s"] for r in rs), 4),
                  "p99_s": round(max(r["p99_s"] for r in rs), 4), "blocks_p50_s": [r["p50_s"] for r in rs],
                  "server_cpu_ms_per_request": round(1000 * sum(r["server_cpu_s"] for r in rs) /
                                                     max(1, sum(r["answered"] for r in rs)), 3)}
    for p in policies[1:]:
        out[p]["p50_overhead_pct"] = round(100 * (out[p]["p50_s"] / out["raw"]["p50_s"] - 1), 1)
        out[p]["server_cpu_overhead_pct"] = round(100 * (out[p]["server_cpu_ms_per_request"] /
                                                         out["raw"]["server_cpu_ms_per_request"] - 1), 1)
    out["policy_layer_cpu"] = policy_cpu()
    client_ok = sum(v["ok"] for v in out.values() if isinstance(v, dict) and "ok" in v)
    out["lost"] = int(client_ok - served) if served != client_ok else 0
    out["server_counted"], out["client_ok"] = int(served), client_ok
    return out


def policy_cpu(n: int = 2000) -> dict:
    """CPU time per reply of the policy layer itself (view, stream filter over 4-char deltas, the r2d
    object), in this process: steadier than wall-clock p50 on a shared machine."""
    from r2d.backends.base import Completion
    from r2d.infer.policies import get_policy
    from r2d.serve.app import r2d_info
    from r2d.serve.present import StreamFilter, present

    out = {}
    for name in ("raw", "refuse-on-unsafe", "hide-reasoning", "drop-unsafe-steps"):
        pol = get_policy(name)
        c0 = time.process_time()
        for i in range(n):
            c = Completion(text=UNSAFE_REPLY if i % 4 == 0 else SAFE_REPLY)
            view = present(pol, c)
            r2d_info(pol, c, view, "x")
            f = StreamFilter(pol)
            for j in range(0, len(c.text), 4):
                f.feed(c.text[j:j + 4])
            f.finish(c)
        out[name] = round((time.process_time() - c0) / n * 1e6, 1)
    return {"us_per_reply": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--hf-clients", type=int, default=16)
    ap.add_argument("--hf-requests", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--batch-wait-ms", type=float, default=50.0)
    ap.add_argument("--mock-clients", type=int, default=64)
    ap.add_argument("--mock-seconds", type=float, default=60.0, help="per policy, over all its blocks")
    ap.add_argument("--blocks", type=int, default=4, help="interleaved blocks per policy")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--skip-mock", action="store_true")
    ap.add_argument("--quick", action="store_true", help="a smoke run (numbers meaningless)")
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "serve_load.json"))
    a = ap.parse_args()
    if a.quick:
        a.hf_requests, a.new_tokens, a.mock_seconds, a.blocks = 8, 8, 3, 1
    sys.path.insert(0, str(ROOT / "src"))
    from r2d.provenance import base_provenance

    t_all = time.perf_counter()
    # Each part carries its own provenance; a skipped part keeps what an earlier run wrote (its own commit).
    old = json.loads(Path(a.output).read_text()) if Path(a.output).is_file() else {}
    result: dict = {k: old[k] for k in ("mock", "hf") if k in old}

    def part(name: str, fn) -> None:
        prov = {**base_provenance(), "model": a.model if name == "hf" else "mock", "cpu_count": os.cpu_count(),
                "cpu": platform.processor() or platform.machine(), "device": "cpu", "loadavg_start": os.getloadavg()}
        t0 = time.perf_counter()
        res = fn()
        prov.update(loadavg_end=os.getloadavg(), seconds=round(time.perf_counter() - t0, 1))
        result[name] = {**res, "provenance": prov, "settings": vars(a)}

    if not a.skip_mock:
        print("mock backend: policy overhead and failures", file=sys.stderr, flush=True)
        part("mock", lambda: bench_mock(a.mock_seconds, a.mock_clients, a.blocks))
    if not a.skip_hf:
        print("hf backend: batching on vs off", file=sys.stderr, flush=True)
        part("hf", lambda: bench_hf(a.model, a.hf_clients, a.hf_requests, a.new_tokens, a.max_batch_size,
                                    a.batch_wait_ms))
    result["total_seconds"] = round(time.perf_counter() - t_all, 1)
    targets = {}
    if "hf" in result:
        targets["hf_batching_ge_4x"] = (result["hf"]["speedup_req_per_s"] or 0) >= 4
    if "mock" in result:
        m = result["mock"]
        targets["mock_0_failed_or_lost"] = m["lost"] == 0 and all(m[p]["failed"] == 0 for p in ("raw", "refuse-on-unsafe",
                                                                                                 "hide-reasoning"))
        targets["policy_p50_overhead_le_5pct"] = all(m[p]["p50_overhead_pct"] <= 5 for p in ("refuse-on-unsafe",
                                                                                            "hide-reasoning"))
    result["targets"] = targets
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=2))

    rows = []
    if "hf" in result:
        h = result["hf"]
        for k in ("batching_off", "batching_on"):
            r = h[k]
            rows.append((f"hf {a.model}, {a.hf_clients} clients, {k.replace('_', ' ')}",
                         f"{r['ok']}/{r['sent']} ok, {r['req_per_s']} req/s, {r['tok_per_s']} tok/s, "
                         f"p50 {r['p50_s']} s, p99 {r['p99_s']} s"))
        rows.append(("  batching on / off", f"{h['speedup_req_per_s']}x req/s, {h['speedup_tok_per_s']}x tok/s "
                     "(target >= 4x)"))
    if "mock" in result:
        m = result["mock"]
        for p in ("raw", "refuse-on-unsafe", "hide-reasoning"):
            r = m[p]
            extra = (f", p50 {r['p50_overhead_pct']:+}% vs raw (target <= 5%), server CPU/request "
                     f"{r['server_cpu_overhead_pct']:+}%") if p != "raw" else ""
            rows.append((f"mock, {a.mock_clients} clients, {p}", f"{r['ok']}/{r['sent']} ok, {r['failed']} failed, "
                         f"{r['req_per_s']} req/s, p50 {r['p50_s']} s, p99 {r['p99_s']} s, "
                         f"server {r['server_cpu_ms_per_request']} ms CPU/request{extra}"))
        rows.append(("  lost (client ok vs server count)", f"{m['lost']} ({m['client_ok']} vs {m['server_counted']})"))
        us = m["policy_layer_cpu"]["us_per_reply"]
        rows.append(("policy layer CPU per reply (view+stream+r2d)", ", ".join(f"{k} {v} us" for k, v in us.items())))
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  result\n{'-' * w}  {'-' * 40}")
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    commits = {k: result[k]["provenance"]["git_commit"][:12] for k in ("hf", "mock") if k in result}
    print(f"\ncommits {commits}, {result['total_seconds']} s -> {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
