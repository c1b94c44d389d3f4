"""The LM head with trainable new-token rows, computed without the merged weight matrix.

PEFT's ``TrainableTokensWrapper`` applies the head as ``linear(h, W')`` where ``W'`` is a fresh copy of
the whole [vocab, hidden] weight with the trained rows written in: per call a vocab x hidden copy, and in
the backward a vocab x hidden weight gradient (a matmul as large as the logits themselves) of which only
the few trained rows are kept. ``token_rows_head`` gives the same logits as the frozen base projection
with the trained rows' columns overwritten by ``h @ delta.T``: no copy, and the backward only computes
the gradient of ``h`` and of the rows. r2d's chunked loss calls the head once per chunk, so this is most
of what the new-token rows cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _plain(t: torch.Tensor) -> bool:
    """A whole local tensor: not an FSDP2 shard (DTensor) nor a ZeRO-3 partition (ds_id)."""
    from torch.distributed.tensor import DTensor

    return not isinstance(t, DTensor) and not hasattr(t, "ds_id")


def token_rows_head(head):
    """A callable equal to ``head`` for r2d's loss (logits of hidden states [n, hidden]); ``head`` itself
    unless it is a PEFT token-rows wrapper around a frozen ``Linear`` with one active adapter and whole
    local parameters (sharded parameters are gathered by the module's own forward: kept as is)."""
    from peft.utils.other import TrainableTokensWrapper

    if not isinstance(head, TrainableTokensWrapper):
        return head
    layer = head.token_adapter
    names = list(layer.active_adapters)
    base = layer.base_layer
    if (layer.merged or layer.disable_adapters or len(names) != 1 or type(base) is not torch.nn.Linear
            or base.weight.requires_grad):
        return head
    delta = layer.trainable_tokens_delta[names[0]]
    if not (_plain(base.weight) and _plain(delta)):
        return head
    idx = torch.tensor(layer.token_indices[names[0]], device=base.weight.device)
    bias = None if base.bias is None else base.bias[idx]

    def logits(h: torch.Tensor) -> torch.Tensor:
        out = F.linear(h, base.weight, base.bias)  # frozen: no weight gradient
        return out.index_copy_(-1, idx, F.linear(h, delta.to(out.dtype), bias))

    return logits
