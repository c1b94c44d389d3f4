"""Training throughput: r2d's trainer vs a plain TRL ``SFTTrainer`` on the default model.

Both get the same model (smollm2-135m with the R2D tokens added), the same synthetic SwaRD data
(made here with ``r2d.reasoning.render_parts``), the same LoRA config (r16/alpha32 on all linear
projections; r2d also trains the new token rows, TRL cannot: see ``lora_config``), batch size, learning rate and number of steps; each runs in its
own subprocess so peak RSS is measured fairly. Tokens/s = non-pad tokens in the trained batches /
the Trainer's ``train_runtime``. Writes ``bench/results/train_throughput.json``.

    OMP_NUM_THREADS=1 python bench/train_throughput.py [--steps 10] [--batch-size 4] [--arms trl,r2d,...]

Arms run one at a time, each in a fresh process. Speed is compared in tokens per CPU second of the training
loop by default (``--speed wall``: per wall second, as the Trainer's train_runtime); wall time on a shared CPU
follows the other jobs. Set OMP_NUM_THREADS=1 there (recorded in the JSON with the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "train_throughput.json"


def make_rows(n: int, seed: int = 0) -> list[dict]:
    from r2d.pivots import RETHINK, SAFE, UNSAFE
    from r2d.reasoning import render_parts

    rng = random.Random(seed)
    topics = ["baking bread", "fixing a bike", "a chemistry homework question", "writing a poem",
              "picking a lock", "making a weapon", "hacking an account", "tracking a person"]
    rows = []
    for i in range(n):
        topic = rng.choice(topics)
        harmful = topics.index(topic) >= 4
        k = rng.randint(2, 4)
        steps = [(f"Okay, the user asks about {topic}. Let me think about what they need, step {s + 1}, and "
                  f"whether answering could cause harm to anyone.",
                  (RETHINK if s == 0 else UNSAFE) if harmful else SAFE) for s in range(k)]
        answer = ("I'm sorry, but I can't help with that. I can share general safety information instead."
                  if harmful else f"Sure! Here is a short, practical guide to {topic}.")
        rows.append({"messages": [{"role": "user", "content": f"Please help me with {topic}, request {i}."},
                                  {"role": "assistant",
                                   "content": render_parts(steps, answer, UNSAFE if harmful else SAFE)}]})
    return rows


def lora_config():
    """The same LoRA as r2d's default, minus the trainable new-token rows: TRL 1.16's SFTTrainer refuses
    a PEFT layer on ``lm_head`` (its fused, chunked LM head reads ``lm_head.weight`` directly), and with
    SmolLM2's tied embeddings the token rows wrap ``lm_head`` too. r2d therefore does strictly more work."""
    from peft import LoraConfig

    from r2d.training.config import TrainConfig

    d = TrainConfig()
    return LoraConfig(r=d.lora_r, lora_alpha=d.lora_alpha, lora_dropout=0.0, target_modules=d.lora_targets,
                      task_type="CAUSAL_LM")


def cpu_clock():
    """A TrainerCallback recording the process CPU time (all threads, user + system) spent between
    the start and the end of training: the work a trainer does, which on a shared CPU stays put while
    wall time follows the other jobs' load."""
    import time

    from transformers import TrainerCallback

    class CpuClock(TrainerCallback):
        start = end = None

        def on_train_begin(self, args, state, control, **kw):
            self.start = time.process_time()

        def on_train_end(self, args, state, control, **kw):
            self.end = time.process_time()

        @property
        def seconds(self) -> float:
            return self.end - self.start

    return CpuClock()


R2D_ARMS = {  # arm -> TrainConfig overrides (everything else: r2d's defaults, CPO and new-token rows on)
    "r2d": {},
    "r2d-ckpt": {"gradient_checkpointing": True},
    "r2d-ckpt-every2": {"gradient_checkpointing": True, "gradient_checkpointing_every": 2},
    "r2d-ckpt-every3": {"gradient_checkpointing": True, "gradient_checkpointing_every": 3},
}


def run_r2d(data: str, steps: int, bs: int, out: str, over: dict) -> dict:
    from r2d.training.config import TrainConfig
    from r2d.training.trainer import train

    cfg = TrainConfig(data=data, output=out, max_steps=steps, batch_size=bs, save_steps=10**6, logging_steps=steps,
                      resume=False, **over)
    assert cfg.cpo and cfg.mode == "lora", "the target is measured with CPO and the new-token rows on"
    clock = cpu_clock()
    t = train(cfg, callbacks=[clock])
    seen = steps * bs
    lengths = [len(x["input_ids"]) for x in t.train_dataset.items]
    assert seen == len(lengths), "bench expects exactly one epoch"
    return {"tokens": sum(lengths), "train_runtime": t.state.log_history[-1]["train_runtime"],
            "train_cpu_s": clock.seconds}


def run_trl(data: str, steps: int, bs: int, out: str) -> dict:
    from trl import SFTConfig, SFTTrainer

    import datasets
    from r2d.data.io import load_sward
    from r2d.models import load_model

    rows = load_sward(data)
    ds = datasets.Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    model, tok = load_model("smollm2-135m")
    model.train()
    args = SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=bs, learning_rate=2e-4,
                     lr_scheduler_type="cosine", warmup_steps=0.02, max_length=512, save_strategy="no",
                     logging_steps=steps, report_to="none", use_cpu=True, seed=0,
                     bf16=False)  # fp32 as r2d (TRL's default turns bf16 autocast on, a slow path on this CPU)
    clock = cpu_clock()
    t = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora_config(),
                   callbacks=[clock])
    lengths = [len(x) for x in t.train_dataset["input_ids"]]
    assert steps * bs == len(lengths), "bench expects exactly one epoch"
    t.train()
    return {"tokens": sum(lengths), "train_runtime": t.state.log_history[-1]["train_runtime"],
            "train_cpu_s": clock.seconds}


def worker(which: str, data: str, steps: int, bs: int) -> None:
    import torch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as out:
        if which == "trl":
            res = run_trl(data, steps, bs, out)
        else:
            res = run_r2d(data, steps, bs, out, R2D_ARMS[which])
    res["torch_threads"] = torch.get_num_threads()
    res["tokens_per_s"] = res["tokens"] / res["train_runtime"]  # wall clock
    res["tokens_per_cpu_s"] = res["tokens"] / res["train_cpu_s"]
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(res), flush=True)


SPEED = {"cpu": "tokens_per_cpu_s", "wall": "tokens_per_s"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--arms", default="trl,r2d,r2d-ckpt,r2d-ckpt-every2",
                    help=f"comma-separated, run one at a time in this order: trl and any of {', '.join(R2D_ARMS)}")
    ap.add_argument("--speed", choices=list(SPEED), default="cpu",
                    help="what the speed ratio compares: tokens per CPU second of the training loop (default; stable "
                         "on a shared CPU, with OMP_NUM_THREADS=1 equal to wall time on an idle one) or per wall second")
    ap.add_argument("--worker", choices=["trl", *R2D_ARMS])
    ap.add_argument("--data")
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.data, a.steps, a.batch_size)
    from r2d.data.io import write_jsonl
    from r2d.provenance import base_provenance, sha256_file

    arms = a.arms.split(",")
    if "trl" not in arms or any(x not in R2D_ARMS for x in arms if x != "trl"):
        raise SystemExit(f"--arms: needs trl and arms among {', '.join(R2D_ARMS)}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "train.jsonl")
        write_jsonl(data, make_rows(a.steps * a.batch_size))
        for which in arms:
            env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}
            p = subprocess.run([sys.executable, __file__, "--worker", which, "--data", data, "--steps", str(a.steps),
                                "--batch-size", str(a.batch_size)], capture_output=True, text=True, env=env)
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if p.returncode or not line:
                raise SystemExit(f"{which} worker failed:\n{p.stderr[-3000:]}")
            results[which] = json.loads(line[-1][7:])
            print(which, results[which], flush=True)
        data_sha = sha256_file(data)
    trl, speed = results["trl"], SPEED[a.speed]
    ratios = {k: {"speed_ratio": v[speed] / trl[speed], "wall_speed_ratio": v["tokens_per_s"] / trl["tokens_per_s"],
                  "cpu_speed_ratio": v["tokens_per_cpu_s"] / trl["tokens_per_cpu_s"],
                  "rss_ratio": v["peak_rss_mb"] / trl["peak_rss_mb"]}
              for k, v in results.items() if k != "trl"}
    for r in ratios.values():
        r["meets_target"] = r["speed_ratio"] >= 0.97 and r["rss_ratio"] <= 1.0
    report = {**base_provenance(), "model": "smollm2-135m", "steps": a.steps, "batch_size": a.batch_size,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_average_at_start": os.getloadavg(),
              "speed_measure": SPEED[a.speed],
              "data_sha256": data_sha, "arms": {k: R2D_ARMS.get(k, "SFTTrainer defaults") for k in results},
              "results": results, "ratios_over_trl": ratios,
              "meeting_target": [k for k, r in ratios.items() if r["meets_target"]],
              "note": "trl = SFTTrainer defaults (activation checkpointing on; no CPO, no new-token rows); r2d arms = "
                      "TrainConfig defaults (SwaRD + CPO, LoRA + new-token rows) with the overrides in 'arms'",
              "target": "speed ratio >= 0.97, rss ratio <= 1.0"}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'':20} {'tok/CPU-s':>10} {'tok/wall-s':>10} {'peak RSS MB':>12} {'speed/TRL':>10} {'RSS/TRL':>8}")
    for k, v in results.items():
        r = ratios.get(k, {"speed_ratio": 1.0, "rss_ratio": 1.0})
        print(f"{k:20} {v['tokens_per_cpu_s']:>10.1f} {v['tokens_per_s']:>10.1f} {v['peak_rss_mb']:>12.0f} "
              f"{r['speed_ratio']:>10.3f} {r['rss_ratio']:>8.3f}")
    print(f"meeting the target (speed >= 0.97x, RSS <= 1.0x TRL): {report['meeting_target'] or 'none'} -> {OUT}")


if __name__ == "__main__":
    main()
