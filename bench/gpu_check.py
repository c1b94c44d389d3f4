"""GPU path check: r2d training (LoRA and full) and batched HF generation on CUDA with ``dtype: auto``.

The GGUF default model cannot travel to a GPU box without the hub, so this builds a randomly initialised
model with SmolLM2-135M's exact shape (30 layers, hidden 576, 9/3 heads, MLP 1536, vocab 49152, tied
embeddings); throughput depends on the shape, not the weights. It checks that ``auto`` picks bf16 on
CUDA, that training runs with CPO and saves, that the trained adapter loads back on the GPU, and
measures tokens/s and peak GPU memory. Writes ``bench/results/gpu_check.json`` (and ``$OUT`` if set).

    python bench/gpu_check.py [--steps 30] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "bench" / "results" / "gpu_check.json"


def smollm2_shaped(path: Path) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from r2d.testing import byte_tokenizer

    tok = byte_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                      tie_word_embeddings=True, rope_theta=100000.0, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def train_once(model_dir: str, data: Path, out: Path, mode: str, steps: int, batch: int) -> dict:
    import torch

    from r2d.training.config import TrainConfig
    from r2d.training.trainer import train

    torch.cuda.reset_peak_memory_stats()
    cfg = TrainConfig(model=model_dir, data=str(data), output=str(out), mode=mode, max_steps=steps,
                      batch_size=batch, max_seq_len=512, save_steps=0, logging_steps=10, learning_rate=2e-4,
                      group_by_length=False)
    t0 = time.perf_counter()
    trainer = train(cfg)
    wall = time.perf_counter() - t0
    ds = trainer.train_dataset
    seen = steps * batch
    mean_len = ds.n_tokens / len(ds)
    rt = trainer.state.log_history[-1].get("train_runtime", wall)
    logs = [h for h in trainer.state.log_history if "cpo_loss" in h]
    return {"mode": mode, "steps": steps, "batch_size": batch, "bf16": bool(trainer.args.bf16),
            "device": str(trainer.args.device), "train_runtime_s": round(rt, 2), "wall_s": round(wall, 2),
            "tokens_per_s_approx": round(seen * mean_len / rt, 1),
            "peak_gpu_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "first_log": logs[0] if logs else None, "last_log": logs[-1] if logs else None}


def generate(model_dir: str, n: int, batch: int, new_tokens: int) -> dict:
    import torch

    from r2d.backends.base import GenParams
    from r2d.backends.hf import HFBackend

    be = HFBackend(model_dir, progress=False)
    chats = [[{"role": "user", "content": f"Question {i}: how do I bake bread?"}] for i in range(n)]
    params = GenParams(max_new_tokens=new_tokens, batch_size=batch)
    be.generate(chats[:batch], params)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    outs = be.generate(chats, params)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    toks = sum(o.completion_tokens or 0 for o in outs)
    return {"device": str(be.device), "dtype": str(next(be.model.parameters()).dtype), "prompts": n,
            "batch_size": batch, "max_new_tokens": new_tokens, "errors": sum(o.error is not None for o in outs),
            "tokens": toks, "seconds": round(dt, 2), "tok_per_s": round(toks / dt, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    a = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible", file=sys.stderr)
        return 1
    from r2d.provenance import base_provenance
    from train_throughput import make_rows

    res: dict = {"provenance": base_provenance(), "gpu": torch.cuda.get_device_name(0),
                 "torch": torch.__version__, "model": "random init, SmolLM2-135M shape"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = smollm2_shaped(tmp / "base")
        data = tmp / "train.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(max(64, a.steps * a.batch_size))))
        res["train"] = [train_once(model_dir, data, tmp / f"out-{m}", m, a.steps, a.batch_size)
                        for m in ("lora", "full")]
        res["generate_base_bs32"] = generate(model_dir, 128, 32, 64)
        res["generate_lora_adapter_bs32"] = generate(str(tmp / "out-lora"), 128, 32, 64)
        res["generate_base_bs1"] = generate(model_dir, 4, 1, 64)
    text = json.dumps(res, indent=2, default=str) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(text)
    print(f"{'what':40} {'value':>30}")
    for t in res["train"]:
        print(f"{'train ' + t['mode'] + ' tok/s (bf16=' + str(t['bf16']) + ')':40} {t['tokens_per_s_approx']:>30}")
        print(f"{'train ' + t['mode'] + ' peak GPU MB':40} {t['peak_gpu_mem_mb']:>30}")
    for k in ("generate_base_bs32", "generate_lora_adapter_bs32", "generate_base_bs1"):
        g = res[k]
        print(f"{k + ' tok/s (' + g['dtype'] + ')':40} {g['tok_per_s']:>30}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
