"""The CPO term and pivot accuracy, from the 3 pivot logit columns gathered at pivot positions only
(no second float copy of the full [batch, seq, vocab] logits), and the chunked LM-head loss the
trainer uses so that full logits are never materialised at all.

CPO (paper Eq. 4): at every position whose target is a pivot t+, ``-log sigmoid(z[t+] - z[t-])``
with t- the opposite pivot ([SAFE] <-> [UNSAFE]); z are logits, and z_a - z_b = log p_a - log p_b.
Reduction over a batch (``reduction``):

- ``per_class`` (default; the official code, ``r2d_train/train.py::compute_loss_func``): the mean over
  the [SAFE] positions plus the mean over the [UNSAFE] positions, each class weighted 1 whatever its
  count; a class with no position in the batch adds 0.
- ``pooled``: one mean over all contrasted positions (r2d before issue 11; the rarer class, usually
  [UNSAFE], then carries only its share of the positions).

[RETHINK] positions get cross-entropy only, as in the official code. With ``rethink=True`` (an r2d
extension, off by default) a [RETHINK] target is also contrasted against both others
(``-log sigmoid(z[R] - max(z[S], z[U]))``: the stronger rival is pushed down), as a third class
under ``per_class``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


@dataclass
class PivotStats:
    cpo: torch.Tensor  # scalar CPO term under the chosen reduction (0 when nothing is contrasted)
    n_contrasted: int
    n_pivots: int  # positions whose target is any pivot
    n_correct: int  # argmax over the 3 pivot columns equals the target


def pivot_targets(targets: torch.Tensor, pivots: tuple[int, int, int]):
    """(mask of positions whose target is a pivot, their class in 0..2 for SAFE/UNSAFE/RETHINK)."""
    piv = torch.tensor(pivots, device=targets.device)
    hit = (targets.unsqueeze(-1) == piv).any(-1)
    return hit, (targets[hit].unsqueeze(-1) == piv).float().argmax(-1)


def gather_pivot_logits(logits: torch.Tensor, labels: torch.Tensor, pivots: tuple[int, int, int]):
    """(z [n, 3] for SAFE/UNSAFE/RETHINK columns, target class [n] in 0..2) at every position
    whose *next* token is a pivot (logits at t predict labels at t+1)."""
    hit, cls = pivot_targets(labels[:, 1:], pivots)
    piv = torch.tensor(pivots, device=labels.device)
    b, t = hit.nonzero(as_tuple=True)
    z = logits[b[:, None], t[:, None], piv[None, :]].float()  # [n, 3]: only these cells are copied
    return z, cls


def head_ce_and_pivot_columns(hidden: torch.Tensor, targets: torch.Tensor, pivots: tuple[int, int, int],
                              head=None, rows: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed cross-entropy of ``targets`` [n], the 3 pivot logit columns [n, 3]) for n positions,
    from their final hidden states [n, hidden] projected by ``head`` (``hidden`` are logits already
    when ``head`` is None). ``rows`` positions at a time, each chunk under activation checkpointing:
    only one chunk's fp32 [rows, vocab] logits exist at once, in the forward and again in the backward."""
    piv = torch.tensor(pivots, device=hidden.device)

    def chunk(h: torch.Tensor, t: torch.Tensor):
        logits = (h if head is None else head(h)).float()
        return F.cross_entropy(logits, t, reduction="sum"), logits[:, piv]

    use_ckpt = head is not None and torch.is_grad_enabled()
    ce, cols = hidden.sum() * 0.0, []  # stays in the graph when there are no positions
    for h, t in zip(hidden.split(rows), targets.split(rows)):
        c, z = checkpoint(chunk, h, t, use_reentrant=False) if use_ckpt else chunk(h, t)
        ce, cols = ce + c, cols + [z]
    return ce, torch.cat(cols) if cols else hidden.new_zeros(0, 3)


REDUCTIONS = ("per_class", "pooled")


def cpo_margins(z: torch.Tensor, cls: torch.Tensor, rethink: bool = False) -> list[torch.Tensor]:
    """Per class ([SAFE], [UNSAFE], then [RETHINK] if ``rethink``) the margins z[t+] - z[t-] at its
    positions (possibly empty)."""
    out = [z[cls == 0, 0] - z[cls == 0, 1], z[cls == 1, 1] - z[cls == 1, 0]]
    if rethink:
        zr = z[cls == 2]
        out.append(zr[:, 2] - zr[:, :2].max(-1).values)
    return out


def cpo_loss(z: torch.Tensor, cls: torch.Tensor, rethink: bool = False,
             reduction: str = "per_class", counts: list[int] | None = None) -> tuple[torch.Tensor, int]:
    """The CPO term over pivot columns ``z`` [n, 3] with classes ``cls`` [n] (and how many positions
    were contrasted); ``reduction`` per_class or pooled (module docstring). ``counts``: the number of
    positions per class ([SAFE], [UNSAFE][, [RETHINK]]) to divide the sums by; by default this batch's
    own (plain means). Data-parallel training passes the counts over all processes' batches, so
    that the processes' terms add up to the one-process term of the global batch."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"cpo_reduction: expected per_class or pooled, got {reduction!r}")
    margins = cpo_margins(z, cls, rethink)
    n = sum(int(m.numel()) for m in margins)
    if not n:
        return z.sum() * 0.0, 0
    counts = [int(m.numel()) for m in margins] if counts is None else [int(c) for c in counts]
    sums = [-F.logsigmoid(m).sum() for m in margins]
    if reduction == "pooled":
        return sum(sums) / sum(counts), n
    return sum(s / c for s, c, m in zip(sums, counts, margins) if m.numel()), n


def pivot_stats(logits: torch.Tensor, labels: torch.Tensor, pivots: tuple[int, int, int],
                rethink: bool = False, reduction: str = "per_class") -> PivotStats:
    """CPO and accuracy from full [batch, seq, vocab] logits and unshifted labels."""
    return stats_from_columns(*gather_pivot_logits(logits, labels, pivots), rethink, reduction)


def stats_from_columns(z: torch.Tensor, cls: torch.Tensor, rethink: bool = False,
                       reduction: str = "per_class") -> PivotStats:
    """CPO and accuracy from the pivot columns z [n, 3] at pivot positions and their classes [n]."""
    loss, n = cpo_loss(z, cls, rethink, reduction)
    correct = int((z.detach().argmax(-1) == cls).sum()) if len(cls) else 0
    return PivotStats(loss, n, int(len(cls)), correct)
