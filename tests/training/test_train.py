"""End-to-end training on a tiny random model (seconds each)."""

import json

import pytest
import torch
from transformers import TrainerCallback

from r2d.training.config import TrainConfig
from r2d.training.trainer import pivot_accuracy, train
from tests.training.helpers import synthetic_rows, write_rows


@pytest.fixture
def job(tmp_path):
    from r2d.testing import save_tiny

    model = save_tiny(tmp_path / "tiny")
    data = write_rows(tmp_path / "train.jsonl", synthetic_rows(16))

    def make(out="out", **kw):
        base = dict(model=model, data=str(data), output=str(tmp_path / out), max_steps=30, learning_rate=1e-2,
                    lora_r=4, lora_alpha=8, logging_steps=10, save_steps=10, batch_size=4, report_to="none",
                    dtype="float32")  # fp32 on a GPU too: the round-trip checks compare logits at 1e-5
        return TrainConfig(**{**base, **kw})

    return make


def _on(batch, device):
    return {k: v.to(device) for k, v in batch.items()}


def _acc(trainer):
    tok = trainer.processing_class
    return pivot_accuracy(trainer.model, trainer.train_dataset, trainer.pivots, pad_id=tok.pad_token_id)


@pytest.mark.parametrize("cpo", [True, False])
def test_pivot_accuracy_rises(job, cpo):
    from r2d.pivots import pivot_ids

    cfg = job(cpo=cpo)
    start = {}

    class Measure(TrainerCallback):  # accuracy of the untrained model on the same data
        def on_train_begin(self, args, state, control, model=None, processing_class=None,
                           train_dataloader=None, **kw):
            tok = processing_class
            start["acc"] = pivot_accuracy(model, train_dataloader.dataset, pivot_ids(tok).pivots,
                                          pad_id=tok.pad_token_id)

    trainer = train(cfg, callbacks=[Measure()])
    after = _acc(trainer)
    assert after >= start["acc"] + 0.3 and after >= 0.8, (start["acc"], after)
    logs = [h for h in trainer.state.log_history if "pivot_acc" in h]
    assert logs and all("cpo_loss" in h and "ce_loss" in h for h in logs)
    meta = json.loads(open(cfg.output + "/r2d_train_meta.json").read())
    assert meta["data"]["sha256"] and meta["git_commit"] and meta["n_examples"] == 16


def test_adapter_round_trip(job, tmp_path):
    from safetensors import safe_open

    from r2d.models import load_model

    cfg = job(max_steps=10)
    trainer = train(cfg)
    model = trainer.model.eval()
    from r2d.pivots import template_opens_think

    loaded, tok = load_model(cfg.output, dtype="float32", device=None)
    assert len(tok) == len(trainer.processing_class)
    assert template_opens_think(tok)  # think_in_prompt (default): the saved template opens <think> as in training
    batch = _on(trainer.data_collator([trainer.train_dataset[i] for i in range(3)]), model.device)
    batch.pop("labels")
    with torch.no_grad():
        a, b = model(**batch).logits, loaded.to(model.device)(**batch).logits
    assert torch.allclose(a, b, atol=1e-5)
    out = tmp_path / "out"
    with safe_open(out / "adapter_model.safetensors", "pt") as f:
        assert not any(k.endswith("embed_tokens.weight") or k.endswith("lm_head.weight") for k in f.keys())
    full = (tmp_path / "tiny" / "model.safetensors").stat().st_size
    assert (out / "r2d_new_tokens.safetensors").stat().st_size < full / 20
    assert (out / "adapter_model.safetensors").stat().st_size < full


@pytest.mark.parametrize("mode", ["rows", "full"])
def test_other_modes_train_and_load(job, mode):
    from r2d.models import load_model

    from r2d.pivots import template_opens_think

    cfg = job(mode=mode, max_steps=30, learning_rate=1e-2 if mode == "rows" else 3e-3, think_in_prompt=False)
    trainer = train(cfg)
    loaded, tok = load_model(cfg.output, dtype="float32", device=None)
    assert not template_opens_think(tok)  # --think-in-prompt false keeps the model's own template
    model = trainer.model.eval()
    batch = _on(trainer.data_collator([trainer.train_dataset[i] for i in range(2)]), model.device)
    batch.pop("labels")
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, loaded.to(model.device)(**batch).logits, atol=1e-5)
    if mode == "rows":  # only the 5 new rows moved
        n_train = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        assert n_train == 5 * loaded.config.hidden_size


class _Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == 15:
            raise KeyboardInterrupt


def test_resume_after_kill(job):
    ref = train(job(out="ref", max_steps=20, save_steps=5))
    cfg = job(out="killed", max_steps=20, save_steps=5)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[_Kill()])
    resumed = train(cfg)
    meta = json.loads(open(cfg.output + "/r2d_train_meta.json").read())
    assert meta["resumed_from"].endswith("checkpoint-10")  # killed at 15, before its save
    assert resumed.state.global_step == 20
    for (n, p), (_, q) in zip(ref.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.allclose(p, q, atol=1e-5), n


def test_strip_pivots_run_has_no_pivots(job):
    trainer = train(job(strip_pivots=True, max_steps=2))
    piv = set(trainer.pivots)
    assert not any(piv & set(x["input_ids"]) for x in trainer.train_dataset.items)
    assert not [h for h in trainer.state.log_history if h.get("pivot_acc")]


def test_cli_flags_override_yaml(tmp_path, job):
    import argparse

    from r2d.config import build_config
    from r2d.training.cli import register

    cfg_file = tmp_path / "t.yaml"
    cfg_file.write_text("model: base-from-yaml\ndata: a.jsonl\noutput: o\nmax_steps: 100\nlora_r: 8\ncpo: true\n")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--config", str(cfg_file), "--model", "m2", "--data", "d.jsonl",
                              "--output", "out2", "--max-steps", "7", "--no-cpo", "--strip-pivots"])
    cfg = build_config(TrainConfig, args.config, args)
    assert (cfg.model, cfg.data, cfg.output, cfg.max_steps, cfg.cpo, cfg.strip_pivots) == \
        ("m2", "d.jsonl", "out2", 7, False, True)
    assert cfg.lora_r == 8  # from the file, not overridden


def test_cli_end_to_end_and_errors(job, tmp_path, capsys):
    import yaml

    from r2d.cli import main

    cfg = job(max_steps=2)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": cfg.model, "max_steps": 50, "lora_r": 2}))
    rc = main(["train", "--config", str(tmp_path / "c.yaml"), "--data", cfg.data, "--output", cfg.output,
               "--max-steps", "2"])
    assert rc == 0
    saved = yaml.safe_load(open(cfg.output + "/r2d_train_config.yaml"))
    assert saved["max_steps"] == 2 and saved["lora_r"] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert main(["train", "--model", cfg.model, "--data", str(bad), "--output", str(tmp_path / "x")]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


def test_partial_gradient_checkpointing_checkpoints_every_nth_layer_and_changes_no_number(tmp_path, job):
    """gradient_checkpointing_every: 2 recomputes layers 0 and 2 of 4 (1 and 3 keep their activations);
    the trained weights equal a run without checkpointing (it trades memory for time, nothing else)."""
    from r2d.testing import save_tiny

    model = save_tiny(tmp_path / "tiny4", layers=4)
    runs = {}
    for name, kw in {"plain": {}, "half": {"gradient_checkpointing": True, "gradient_checkpointing_every": 2}}.items():
        t = train(job(out=name, model=model, max_steps=2, **kw))
        layers = t.accelerator.unwrap_model(t.model).get_base_model().model.layers
        runs[name] = ([bool(getattr(layer, "gradient_checkpointing", False)) for layer in layers],
                      {n: p.detach().clone() for n, p in t.model.named_parameters() if p.requires_grad})
    assert runs["half"][0] == [True, False, True, False]
    assert runs["plain"][0] == [False] * 4
    for n, p in runs["plain"][1].items():
        assert torch.allclose(p, runs["half"][1][n], atol=1e-6), n


def test_gradient_checkpointing_every_must_be_positive():
    with pytest.raises(ValueError, match="gradient_checkpointing_every"):
        TrainConfig(gradient_checkpointing_every=0)
