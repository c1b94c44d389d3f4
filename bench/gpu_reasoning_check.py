"""GPU check of the reasoning-model path: a random-weight model with the real shape of
DeepSeek-R1-Distill-Qwen-7B (Qwen2: hidden 3584, MLP 18944, 28/4 heads, vocab 152064 rows, untied;
fewer layers by default) carrying the real R1-distill chat template and a tokenizer that already holds
``<think>``, run through train (LoRA + CPO, ``dtype: auto`` -> bf16 on CUDA) -> adapter save -> load ->
generate -> parse -> ``r2d merge`` -> reload with plain transformers. The weights are random, so only
the mechanics and the costs are measured, not the quality. Writes ``bench/results/gpu_reasoning_check.json``
(and ``$OUT/gpu_reasoning_check.json`` if ``$OUT`` is set).

    python bench/gpu_reasoning_check.py [--layers 4] [--steps 10]
    python bench/gpu_reasoning_check.py --tiny        # the same pipeline on CPU in seconds (a dry run)
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
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "gpu_reasoning_check.json"
TEMPLATE = ROOT / "tests" / "fixtures" / "chat_templates" / "deepseek-r1-distill.jinja"
# deepseek-ai/DeepSeek-R1-Distill-Qwen-7B config.json (Qwen2ForCausalLM)
R1_QWEN_7B = dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                  vocab_size=152064, rope_theta=10000.0, max_position_embeddings=131072, tie_word_embeddings=False)
TINY = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, vocab_size=1024,
            rope_theta=10000.0, max_position_embeddings=4096, tie_word_embeddings=False)


def build(path: Path, shape: dict, layers: int) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from r2d.testing import reasoning_tokenizer

    tok = reasoning_tokenizer(TEMPLATE.read_text(encoding="utf-8"), "deepseek")
    cfg = AutoConfig.for_model("qwen2", num_hidden_layers=layers, pad_token_id=tok.pad_token_id,
                               eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, **shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    n = sum(p.numel() for p in model.parameters())
    return {"params": n, "layers": layers, **shape, "tokenizer_len": len(tok),
            "think_ids": [tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>")]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--tiny", action="store_true", help="tiny shape, CPU allowed (checks the script itself)")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r2d.backends.base import GenParams
    from r2d.backends.hf import HFBackend
    from r2d.cli import main as r2d_main
    from r2d.models import load_model
    from r2d.pivots import pivot_ids
    from r2d.provenance import base_provenance
    from r2d.reasoning import parse
    from r2d.training.config import TrainConfig
    from r2d.training.trainer import train
    from tests.training.helpers import synthetic_rows, write_rows

    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print("gpu_reasoning_check: no CUDA device (use --tiny for a CPU dry run)")
        return 2
    device = "cuda" if cuda else "cpu"
    res: dict = {"provenance": base_provenance(), "device": torch.cuda.get_device_name(0) if cuda else "cpu",
                 "template": str(TEMPLATE.relative_to(ROOT)), "shape": "tiny" if args.tiny else "R1-Distill-Qwen-7B"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        res["model"] = build(tmp / "base", TINY if args.tiny else R1_QWEN_7B, 2 if args.tiny else args.layers)
        res["build_s"] = round(time.perf_counter() - t0, 1)
        data = write_rows(tmp / "train.jsonl", synthetic_rows(32))
        cfg = TrainConfig(model=str(tmp / "base"), data=str(data), output=str(tmp / "out"), max_steps=args.steps,
                          batch_size=args.batch_size, lora_r=64, lora_alpha=64, learning_rate=2e-4,
                          max_seq_len=512, save_steps=10_000, logging_steps=max(1, args.steps // 2), report_to="none")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        trainer = train(cfg)
        res["train"] = {"steps": args.steps, "batch_size": args.batch_size, "wall_s": round(time.perf_counter() - t0, 1),
                        "bf16": bool(trainer.args.bf16), "loss": [h["loss"] for h in trainer.state.log_history if "loss" in h],
                        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
        del trainer
        model, tok = load_model(str(tmp / "out"), device=device)  # dtype auto: bf16 on CUDA
        ids = pivot_ids(tok)
        res["tokens"] = {"pivots": list(ids.pivots), "think": [ids.think_open, ids.think_close],
                         "think_reused": [ids.think_open, ids.think_close] == res["model"]["think_ids"],
                         "embedding_rows": model.get_input_embeddings().weight.shape[0], "tokenizer_len": len(tok),
                         "dtype": str(model.dtype)}
        backend = HFBackend(model=model, tokenizer=tok, progress=False)
        chats = [[{"role": "user", "content": f"Question {i}: how to bake bread?"}] for i in range(16)]
        t0 = time.perf_counter()
        comps = backend.generate(chats, GenParams(max_new_tokens=64, batch_size=16))
        wall = time.perf_counter() - t0
        res["generate"] = {"n": len(comps), "errors": sum(not c.ok for c in comps),
                           "tokens_per_s": round(sum(c.completion_tokens or 0 for c in comps) / wall, 1),
                           "start_with_think": sum(c.text.startswith("<think>\n") for c in comps),
                           "parsed_has_think": sum(parse(c.text).has_think for c in comps),
                           "example": comps[0].text[:200]}
        batch = {"input_ids": torch.tensor([tok(backend.render(chats[0]), add_special_tokens=False)["input_ids"]])}
        with torch.no_grad():
            ref = model(input_ids=batch["input_ids"].to(device)).logits.float().cpu()
        del model, backend
        rc = r2d_main(["merge", str(tmp / "out"), str(tmp / "merged"), "--dtype", "bfloat16"])
        merged = AutoModelForCausalLM.from_pretrained(tmp / "merged", dtype=torch.bfloat16).to(device).eval()
        mtok = AutoTokenizer.from_pretrained(tmp / "merged")
        with torch.no_grad():
            got = merged(input_ids=batch["input_ids"].to(device)).logits.float().cpu()
        res["merge"] = {"rc": rc, "template_kept": mtok.chat_template == tok.chat_template,
                        "max_abs_logit_diff_vs_adapter": round((got - ref).abs().max().item(), 4),
                        "same_argmax_share": round((got.argmax(-1) == ref.argmax(-1)).float().mean().item(), 4)}
    text = json.dumps(res, indent=2)
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    out = OUT.with_name("gpu_reasoning_check_tiny.json") if args.tiny else OUT
    out.write_text(text + "\n")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], out.name).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
