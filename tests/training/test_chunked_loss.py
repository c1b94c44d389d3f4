"""R2DTrainer's chunked LM-head loss equals the plain full-logits computation (value and gradients)."""

import pytest
import torch

from r2d.training.config import TrainConfig
from r2d.training.losses import pivot_stats
from r2d.training.trainer import R2DTrainer, training_args, wrap_model
from tests.training.helpers import synthetic_rows


def _reference_loss(model, batch, pivots, rethink):
    """The previous computation: the model's own CE over full [batch, seq, vocab] logits + CPO."""
    out = model(**batch)
    return out.loss + pivot_stats(out.logits, batch["labels"], pivots, rethink).cpo


@pytest.mark.parametrize("mode,rows,head_last,tie", [("lora", 7, True, True), ("rows", 256, True, True),
                                                     ("full", 5, True, True), ("lora", 7, False, True),
                                                     ("lora", 7, True, False), ("rows", 9, True, False)])
def test_chunked_loss_equals_full_logits(tmp_path, mode, rows, head_last, tie):
    from r2d.models import load_model
    from r2d.pivots import pivot_ids
    from r2d.testing import save_tiny
    from r2d.training.collate import PadCollator, SwardDataset

    model, tok = load_model(save_tiny(tmp_path / "tiny", tie=tie), dtype="float32", device=None, expand=True)
    cfg = TrainConfig(mode=mode, lora_r=4, lora_alpha=8, output=str(tmp_path / "out"), report_to="none")
    model = wrap_model(model, cfg, list(pivot_ids(tok).all)).train()
    torch.manual_seed(1)
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():  # move LoRA B and the token deltas off their zero init: every gradient is non-trivial
        for p in params:
            p.add_(0.05 * torch.randn_like(p))
    ds = SwardDataset(synthetic_rows(4), tok, 256)
    batch = PadCollator(tok.pad_token_id)([ds[i] for i in range(4)])
    pivots = pivot_ids(tok).pivots
    trainer = R2DTrainer(model=model, args=training_args(cfg), processing_class=tok, pivots=pivots,
                         cpo_rethink=True)
    trainer.head_rows = rows  # several chunks, the last one partial
    trainer._head_is_last_op = head_last  # False: the path for models that scale logits after the head
    batch = {k: v.to(model.device) for k, v in batch.items()}  # the Trainer put the model on the GPU, if any

    torch.manual_seed(0)
    ref = _reference_loss(model, batch, pivots, rethink=True)
    ref_grads = torch.autograd.grad(ref, params)
    torch.manual_seed(0)
    new = trainer.compute_loss(model, batch)
    new_grads = torch.autograd.grad(new, params)
    assert trainer._acc["piv"] > 0  # the batch has pivot positions (CPO is really compared)
    assert torch.allclose(new, ref, rtol=1e-5, atol=1e-6), (new.item(), ref.item())
    for g, r in zip(new_grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-4, atol=1e-6)
