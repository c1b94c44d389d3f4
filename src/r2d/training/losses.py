"""The CPO term and pivot accuracy, from the 3 pivot logit columns gathered at pivot positions only
(no second float copy of the full [batch, seq, vocab] logits), and the chunked LM-head loss the
trainer uses so that full logits are never materialised at all.

CPO (paper Eq. 4): at every position whose target is a pivot t+, ``-log sigmoid(z[t+] - z[t-])``
with t- the opposite pivot ([SAFE] <-> [UNSAFE]); z are logits, and z_a - z_b = log p_a - log p_b.
With ``rethink=True`` a [RETHINK] target is contrasted against both others
(``-log sigmoid(z[R] - max(z[S], z[U]))``: the stronger rival is pushed down).
Otherwise [RETHINK] positions get cross-entropy only, as in the paper's code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


@dataclass
class PivotStats:
    cpo: torch.Tensor  # scalar, mean over contrasted positions (0 when there are none)
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


def cpo_loss(z: torch.Tensor, cls: torch.Tensor, rethink: bool = False) -> tuple[torch.Tensor, int]:
    """Mean ``-log sigmoid(z[t+] - z[t-])`` over contrasted positions (and how many there were)."""
    margins = []
    su = cls < 2
    if su.any():
        pos = z[su].gather(1, cls[su, None]).squeeze(1)
        neg = z[su].gather(1, (1 - cls[su])[:, None]).squeeze(1)
        margins.append(pos - neg)
    if rethink and (cls == 2).any():
        zr = z[cls == 2]
        margins.append(zr[:, 2] - zr[:, :2].max(-1).values)
    if not margins:
        return z.sum() * 0.0, 0
    m = torch.cat(margins)
    return -F.logsigmoid(m).mean(), int(m.numel())


def pivot_stats(logits: torch.Tensor, labels: torch.Tensor, pivots: tuple[int, int, int],
                rethink: bool = False) -> PivotStats:
    """CPO and accuracy from full [batch, seq, vocab] logits and unshifted labels."""
    return stats_from_columns(*gather_pivot_logits(logits, labels, pivots), rethink)


def stats_from_columns(z: torch.Tensor, cls: torch.Tensor, rethink: bool = False) -> PivotStats:
    """CPO and accuracy from the pivot columns z [n, 3] at pivot positions and their classes [n]."""
    loss, n = cpo_loss(z, cls, rethink)
    correct = int((z.detach().argmax(-1) == cls).sum()) if len(cls) else 0
    return PivotStats(loss, n, int(len(cls)), correct)
