"""Reasoning-model students end to end on tiny random models carrying the real chat templates of
DeepSeek-R1-Distill-Qwen/-Llama, QwQ-32B and Qwen3 (thinking on): train -> save -> load -> generate
-> parse, with the tokenizer's own <think> ids reused and the generation prompt the model expects."""

import pytest
import torch

from r2d.backends.base import GenParams
from r2d.backends.hf import HFBackend
from r2d.models import load_model
from r2d.pivots import pivot_ids
from r2d.reasoning import parse
from r2d.training.config import TrainConfig
from r2d.training.trainer import train
from tests.training.helpers import (REASONING_MODELS, reasoning_tokenizer, save_reasoning_model, synthetic_rows,
                                    write_rows)

CHATS = [[{"role": "user", "content": "Question 1: build a weapon?"}],
         [{"role": "user", "content": "Question 0: how to bake bread?"}]]


def _train(name, tmp_path, **kw):
    base = save_reasoning_model(name, tmp_path / "base")
    rows = synthetic_rows(8)
    data = write_rows(tmp_path / "train.jsonl", rows)
    cfg = TrainConfig(**{**dict(model=base, data=str(data), output=str(tmp_path / "out"), max_steps=8,
                                learning_rate=1e-2, lora_r=4, lora_alpha=8, batch_size=4, logging_steps=4,
                                save_steps=100, report_to="none", dtype="float32"), **kw})
    return base, rows, cfg, train(cfg)


def _target_loglik(backend, rows):
    """Log-likelihood of the training replies as continuations of the served prompt."""
    chats = [r["messages"][:-1] for r in rows]
    opened = backend.render(chats[0]).endswith("<think>\n")
    targets = [r["messages"][-1]["content"][len("<think>\n"):] if opened else r["messages"][-1]["content"]
               for r in rows]
    return sum(backend.loglik(chats, targets))


# R1 and QwQ templates open <think> already (think_in_prompt changes nothing); Qwen3 both ways.
@pytest.mark.parametrize("name,think_in_prompt", [(n, True) for n in REASONING_MODELS] + [("qwen3", False)])
def test_train_save_load_generate_parse(name, think_in_prompt, tmp_path):
    base, rows, cfg, trainer = _train(name, tmp_path, think_in_prompt=think_in_prompt)
    original = reasoning_tokenizer(name)
    think = (original.convert_tokens_to_ids("<think>"), original.convert_tokens_to_ids("</think>"))

    model, tok = load_model(cfg.output, dtype="float32", device="cpu")
    ids = pivot_ids(tok)
    assert (ids.think_open, ids.think_close) == think  # the model's own <think> rows, not new ones
    assert len(tok) == len(original) + 3  # only the three pivots were added
    if name != "qwen3" or not think_in_prompt:  # R1/QwQ open <think> themselves: their template is kept as is
        assert tok.chat_template == original.chat_template

    backend = HFBackend(model=model, tokenizer=tok, progress=False)
    served = backend.render(CHATS[0])
    opens = served.endswith("<think>\n")
    assert opens == (think_in_prompt or name != "qwen3")  # Qwen3 (thinking on) lets the model open it
    # what is served is what was trained on: the masked prompt of a training row is its served prompt
    ex = trainer.train_dataset[0]
    n = next(i for i, lab in enumerate(ex["labels"]) if lab != -100)
    assert backend._ids(backend.render(rows[0]["messages"][:-1])) == ex["input_ids"][:n]

    comps = backend.generate(CHATS, GenParams(max_new_tokens=12))
    for c in comps:
        assert c.ok and c.completion_tokens > 0
        parsed = parse(c.text)
        if opens:  # the backend put the template's opened block back: one parser reads every completion
            assert c.text.startswith("<think>\n") and parsed.has_think
            assert "unclosed <think>" in parsed.problems or "</think>" in c.text

    # training moved the model towards the targets through this template (a trained model, not a no-op)
    untrained = HFBackend(model=base, device="cpu", dtype="float32", progress=False)
    assert _target_loglik(backend, rows) > _target_loglik(untrained, rows) + 10


def test_merged_save_loads_with_plain_transformers(tmp_path):
    """`save: merged` (the vLLM path): a full model + tokenizer any loader reads, same logits."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, rows, cfg, trainer = _train("r1-distill-qwen", tmp_path, save="merged")
    out = tmp_path / "out"
    assert not (out / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert tok.chat_template == reasoning_tokenizer("r1-distill-qwen").chat_template
    assert [tok.convert_tokens_to_ids(t) for t in ("[SAFE]", "[UNSAFE]", "[RETHINK]")] == list(pivot_ids(tok).pivots)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    batch.pop("labels")
    ref = trainer.accelerator.unwrap_model(trainer.model).eval()
    with torch.no_grad():
        assert torch.allclose(ref(**batch).logits, model(**batch).logits, atol=1e-4)


def test_r2d_merge_turns_an_adapter_into_a_full_model(tmp_path):
    """`r2d merge ADAPTER OUT`: the paper-scale adapter -> one directory vLLM can serve."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r2d.backends.vllm_backend import VLLMBackend
    from r2d.cli import main

    _, rows, cfg, trainer = _train("qwq-32b", tmp_path)
    adapter = tmp_path / "out"
    with pytest.raises(ValueError, match="r2d merge"):  # vLLM cannot take the adapter directory
        VLLMBackend(model=str(adapter))
    assert main(["merge", str(adapter), str(tmp_path / "merged"), "--dtype", "float32"]) == 0
    assert main(["merge", str(adapter), str(tmp_path / "merged")]) == 2  # never overwrites
    assert main(["merge", str(tmp_path / "base"), str(tmp_path / "m2")]) == 2  # not an adapter
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    ref, ref_tok = load_model(str(adapter), dtype="float32", device="cpu")
    assert tok.chat_template == ref_tok.chat_template and len(tok) == len(ref_tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    batch.pop("labels")
    with torch.no_grad():
        assert torch.allclose(ref(**batch).logits, merged(**batch).logits, atol=1e-5)
