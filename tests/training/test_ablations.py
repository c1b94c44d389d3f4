"""The ablations are what they say (issue 16): ``--no-cpo`` trains with exactly the SwaRD loss,
``--strip-pivots`` targets hold no pivot id, ``--no-reasoning`` targets hold no think tag and no
pivot, and a no-reasoning model is saved and served without an opened ``<think>``."""

import argparse
import json

import pytest
import torch
import torch.nn.functional as F

from r2d.config import add_dataclass_args, build_config
from r2d.training.config import TrainConfig
from r2d.training.trainer import R2DTrainer, train, training_args, wrap_model
from tests.training.helpers import synthetic_rows, write_rows


def _cfg(*flags: str, **kw) -> TrainConfig:
    """A TrainConfig as ``r2d train`` builds it from command-line flags."""
    p = argparse.ArgumentParser()
    add_dataclass_args(p, TrainConfig)
    return build_config(TrainConfig, None, p.parse_args(list(flags)), **kw)


@pytest.fixture
def tiny(tmp_path):
    from r2d.testing import save_tiny

    return save_tiny(tmp_path / "tiny")


def test_flags_set_the_ablations():
    assert _cfg().cpo and _cfg().cpo_reduction == "per_class"
    assert not _cfg("--no-cpo").cpo
    assert _cfg("--cpo-reduction", "pooled").cpo_reduction == "pooled"
    assert _cfg("--strip-pivots").strip_pivots
    nr = _cfg("--no-reasoning")
    assert nr.no_reasoning and not nr.cpo and not nr.think_in_prompt  # implied: nothing to contrast or open
    with pytest.raises(ValueError, match="cpo_reduction"):
        _cfg("--cpo-reduction", "mean")


def _sward_loss(model, batch) -> torch.Tensor:
    """SwaRD = token-mean cross-entropy over the assistant tokens, from full logits (paper Eq. 2, the
    official code's CE), written out independently of the trainer."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=-100)


def test_no_cpo_loss_equals_the_sward_loss(tmp_path, tiny):
    from r2d.models import load_model
    from r2d.pivots import pivot_ids
    from r2d.training.collate import PadCollator, SwardDataset
    from r2d.training.losses import pivot_stats

    model, tok = load_model(tiny, dtype="float32", device=None, expand=True)  # training adds the R2D rows
    ds = SwardDataset(synthetic_rows(4), tok, 256)
    batch = PadCollator(tok.pad_token_id)([ds[i] for i in range(4)])
    pivots = pivot_ids(tok).pivots
    losses = {}
    for flags in ([], ["--no-cpo"]):
        cfg = _cfg(*flags, mode="full", output=str(tmp_path / "out"), report_to="none")
        m = wrap_model(model, cfg, list(pivot_ids(tok).all)).eval()
        trainer = R2DTrainer(model=m, args=training_args(cfg), processing_class=tok, pivots=pivots, cpo=cfg.cpo,
                             cpo_reduction=cfg.cpo_reduction)
        b = {k: v.to(m.device) for k, v in batch.items()}
        with torch.no_grad():
            losses[bool(flags)] = trainer.compute_loss(m, b)
            sward = _sward_loss(m, b)
            cpo = pivot_stats(m(input_ids=b["input_ids"]).logits, b["labels"], pivots).cpo
    assert cpo.item() > 0.1  # the batch has a real CPO term, so dropping it is visible
    assert torch.allclose(losses[True], sward, rtol=0, atol=1e-6), (losses[True].item(), sward.item())
    assert torch.allclose(losses[False], sward + cpo, rtol=0, atol=1e-5)


def _targets(trainer) -> set[int]:
    return {t for item in trainer.train_dataset.items for t in item["labels"] if t != -100}


@pytest.mark.parametrize("flag", ["--strip-pivots", "--no-reasoning"])
def test_ablation_targets(tmp_path, tiny, flag):
    """Train one step through ``train()`` with the flag; its dataset's targets are checked by id."""
    from r2d.pivots import pivot_ids

    data = write_rows(tmp_path / "train.jsonl", synthetic_rows(8))
    cfg = _cfg(flag, model=tiny, data=str(data), output=str(tmp_path / "out"), max_steps=1, lora_r=4, lora_alpha=8,
               save_steps=0, report_to="none", dtype="float32")
    trainer = train(cfg)
    ids = pivot_ids(trainer.processing_class)
    targets = _targets(trainer)
    assert targets and not targets & set(ids.pivots)  # no pivot id is ever a target
    think = {ids.think_open, ids.think_close}
    if flag == "--no-reasoning":
        assert not targets & think
        inputs = {t for item in trainer.train_dataset.items for t in item["input_ids"]}
        assert not inputs & (think | set(ids.pivots))  # nor in the prompt (the template opens nothing)
    else:
        assert ids.think_close in targets  # the reasoning is kept, only its pivots are gone
    meta = json.loads((tmp_path / "out" / "r2d_train_meta.json").read_text())
    assert meta["reasoning"] is (flag != "--no-reasoning")


def test_no_reasoning_model_is_served_without_an_opened_think(tmp_path, tiny):
    from r2d.backends.base import GenParams
    from r2d.backends.hf import HFBackend
    from r2d.pivots import template_opens_think
    from r2d.training.collate import answer_only
    from r2d.models import is_reasoning_model

    rows = synthetic_rows(8)
    data = write_rows(tmp_path / "train.jsonl", rows)
    outs = {}
    for name, flags in (("r2d", []), ("plain", ["--no-reasoning"])):
        cfg = _cfg(*flags, model=tiny, data=str(data), output=str(tmp_path / name), max_steps=2, lora_r=4,
                   lora_alpha=8, save_steps=0, report_to="none", dtype="float32")
        train(cfg)
        outs[name] = tmp_path / name
    assert is_reasoning_model(outs["r2d"]) is True and is_reasoning_model(outs["plain"]) is False
    assert is_reasoning_model(tiny) is None  # not an r2d training output
    be = HFBackend(str(outs["plain"]), device=None, dtype="float32", progress=False)
    assert not template_opens_think(be.tokenizer)
    assert HFBackend(str(outs["r2d"]), device=None, dtype="float32", progress=False).render(
        [{"role": "user", "content": "hi"}]).rstrip().endswith("<think>")
    (c,) = be.generate([[{"role": "user", "content": "hi"}]], GenParams(max_new_tokens=6, batch_size=1))
    assert c.error is None and not c.text.startswith("<think>")  # nothing was put back in front
    # the target text itself: the answer, pivot-free
    assert answer_only(rows[1]["messages"][-1]["content"]) == "I'm sorry, but I can't help with that. !"
    with pytest.raises(ValueError, match="never closes"):
        answer_only("<think> step [SAFE]")
