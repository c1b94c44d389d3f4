"""Logits processors for pivot-aware decoding with transformers ``generate``.

- ``PivotRecorder`` keeps, at every decoding step, the logits of the three pivots and the
  log-normaliser of the whole vocabulary, so that afterwards each generated pivot can be given its
  probabilities (the model acting as its own safety guard, ``Completion.meta["pivot_probs"]``).
- ``PivotThresholdProcessor`` forces ``[UNSAFE]`` at a pivot position when the model's own
  probability of ``[UNSAFE]`` is at least ``tau``.

Both renormalise over the three pivots: ``p(x) = softmax(logits[[SAFE],[UNSAFE],[RETHINK]])[x]``,
i.e. the probability of ``x`` *given that the next token is a pivot*. That is the quantity the
pivot decision is about, and it does not shrink when the model spreads mass on other tokens.
The recorder also reports ``mass``, the full-vocabulary probability of the three pivots together.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from r2d.pivots import PIVOTS, PivotIds


class PivotRecorder(LogitsProcessor):
    """Records pivot logits per step; read them back with ``probs_for(row, step)``. Does not change scores."""

    def __init__(self, ids: PivotIds) -> None:
        self.ids = ids
        self.pivot_logits: list[torch.Tensor] = []  # per step: (batch, 3)
        self.lse: list[torch.Tensor] = []  # per step: (batch,)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        idx = torch.tensor(self.ids.pivots, device=scores.device)
        s = scores.float()
        self.pivot_logits.append(s[:, idx].detach().cpu())
        self.lse.append(torch.logsumexp(s, dim=-1).detach().cpu())
        return scores

    def probs_for(self, row: int, step: int) -> dict[str, float] | None:
        """Pivot probabilities for ``row`` at generation ``step`` (None if that step was not recorded)."""
        if step >= len(self.pivot_logits):
            return None
        logits = self.pivot_logits[step][row]
        p = torch.softmax(logits, -1).tolist()
        mass = float(torch.exp(torch.logsumexp(logits, -1) - self.lse[step][row]))
        return {**dict(zip(PIVOTS, (round(x, 6) for x in p))), "mass": round(mass, 6)}


class PivotThresholdProcessor(LogitsProcessor):
    """At every pivot position (the argmax of the incoming scores is one of the three pivots), force
    ``[UNSAFE]`` if P([UNSAFE]) renormalised over the three pivots is >= ``tau``. ``tau > 1`` never
    forces; ``tau <= 0`` forces every pivot to ``[UNSAFE]``. ``forced`` counts interventions."""

    def __init__(self, ids: PivotIds, tau: float) -> None:
        self.ids = ids
        self.tau = float(tau)
        self.forced = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        idx = torch.tensor(self.ids.pivots, device=scores.device)
        at_pivot = torch.isin(scores.argmax(-1), idx)
        if not bool(at_pivot.any()):
            return scores
        p_unsafe = torch.softmax(scores[:, idx].float(), -1)[:, 1]
        force = at_pivot & (p_unsafe >= self.tau)
        if not bool(force.any()):
            return scores
        self.forced += int(force.sum())
        forced_row = torch.full_like(scores[0], float("-inf"))
        forced_row[self.ids.unsafe] = 0.0
        return torch.where(force[:, None], forced_row[None, :], scores)
