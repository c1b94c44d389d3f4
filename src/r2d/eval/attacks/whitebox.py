"""White-box access to an ``hf`` backend: its model/tokenizer and the loss of a target reply."""

from __future__ import annotations

from typing import Any

from r2d.backends.base import Backend, Chat


def answer_target(tok: Any, target: str) -> str:
    """The reply string a white-box attack scores, so its loss falls on the answer the judge reads.
    A template that opens ``<think>`` (R2D models): ``</think>`` closes the reasoning, then the target;
    a tokenizer that holds think tokens but leaves opening them to the model: an empty think block, then
    the target; any other model: the target itself."""
    from r2d.pivots import THINK_CLOSE, THINK_OPEN, template_opens_think, token_id

    if getattr(tok, "chat_template", None) and template_opens_think(tok):
        return f"{THINK_CLOSE}\n\n{target}"
    if token_id(tok, THINK_OPEN) is not None and token_id(tok, THINK_CLOSE) is not None:
        return f"{THINK_OPEN}\n{THINK_CLOSE}\n\n{target}"
    return target


def model_and_tokenizer(backend: Any) -> tuple[Any, Any]:
    model, tok = getattr(backend, "model", None), getattr(backend, "tokenizer", None)
    if model is None or tok is None or not hasattr(model, "get_input_embeddings"):
        raise ValueError(f"white-box attack needs an hf backend (with .model and .tokenizer), got "
                         f"{getattr(backend, 'name', type(backend).__name__)!r}")
    return model, tok


def target_losses(backend: Backend, chats: list[Chat], targets: list[str], batch_size: int = 8) -> list[float]:
    """Mean per-token negative log-likelihood of ``targets[i]`` as the reply to ``chats[i]``.
    Uses the backend's ``loglik`` when it has one, else computes it from the model."""
    _, tok = model_and_tokenizer(backend)
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in targets]
    if hasattr(backend, "loglik"):
        sums = backend.loglik(chats, targets, batch_size=batch_size)
    else:
        sums = _loglik(backend, chats, targets, batch_size)
    return [-s / max(n, 1) for s, n in zip(sums, lengths)]


def _loglik(backend: Any, chats: list[Chat], targets: list[str], batch_size: int) -> list[float]:
    import torch

    from r2d.backends.base import render_prompt

    model, tok = model_and_tokenizer(backend)
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    pairs = [(tok(render_prompt(tok, c), add_special_tokens=False)["input_ids"],
              tok(t, add_special_tokens=False)["input_ids"]) for c, t in zip(chats, targets)]
    out = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        width = max(len(p) + len(t) for p, t in chunk)
        ids = torch.tensor([p + t + [pad] * (width - len(p) - len(t)) for p, t in chunk], device=device)
        mask = (torch.arange(width, device=device)[None] < torch.tensor([len(p) + len(t) for p, t in chunk],
                                                                         device=device)[:, None]).long()
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
        for row, (p, t) in enumerate(chunk):
            pos = torch.arange(len(p) - 1, len(p) + len(t) - 1, device=device)
            out.append(float(logp[row, pos, torch.tensor(t, device=device)].sum()))
    return out
