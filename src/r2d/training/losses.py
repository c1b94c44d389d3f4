"""The CPO term and pivot accuracy, from the 3 pivot logit columns gathered at pivot positions only
(no second float copy of the full [batch, seq, vocab] logits).

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


@dataclass
class PivotStats:
    cpo: torch.Tensor  # scalar, mean over contrasted positions (0 when there are none)
    n_contrasted: int
    n_pivots: int  # positions whose target is any pivot
    n_correct: int  # argmax over the 3 pivot columns equals the target


def gather_pivot_logits(logits: torch.Tensor, labels: torch.Tensor, pivots: tuple[int, int, int]):
    """(z [n, 3] for SAFE/UNSAFE/RETHINK columns, target class [n] in 0..2) at every position
    whose *next* token is a pivot (logits at t predict labels at t+1)."""
    tgt = labels[:, 1:]
    piv = torch.tensor(pivots, device=labels.device)
    hit = (tgt.unsqueeze(-1) == piv).any(-1)
    b, t = hit.nonzero(as_tuple=True)
    z = logits[b[:, None], t[:, None], piv[None, :]].float()  # [n, 3]: only these cells are copied
    cls = (tgt[b, t].unsqueeze(-1) == piv).float().argmax(-1)
    return z, cls


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
    z, cls = gather_pivot_logits(logits, labels, pivots)
    loss, n = cpo_loss(z, cls, rethink)
    correct = int((z.detach().argmax(-1) == cls).sum()) if len(cls) else 0
    return PivotStats(loss, n, int(len(cls)), correct)
