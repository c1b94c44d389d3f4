"""The pivot vocabulary: the strings, adding them to a tokenizer/model, ids by string, and
neutralising user text so it can never tokenize to a pivot id.

Ids are always looked up by string (``tokenizer.convert_tokens_to_ids``) and verified to encode to
a single token, never inferred from vocabulary positions (the official code's ``V-8`` breaks for
tokenizers that already contain ``<think>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SAFE, UNSAFE, RETHINK = "[SAFE]", "[UNSAFE]", "[RETHINK]"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
PIVOTS: tuple[str, ...] = (SAFE, UNSAFE, RETHINK)
R2D_TOKENS: tuple[str, ...] = (SAFE, UNSAFE, RETHINK, THINK_OPEN, THINK_CLOSE)
# The "opposite" pivot for CPO (paper: [SAFE] <-> [UNSAFE]).
OPPOSITE = {SAFE: UNSAFE, UNSAFE: SAFE}

# Words whose embeddings initialise each new row: the token starts near its meaning.
_INIT_WORDS = {
    SAFE: "safe harmless fine",
    UNSAFE: "unsafe harmful dangerous",
    RETHINK: "rethink careful reconsider",
    THINK_OPEN: "think reasoning begin",
    THINK_CLOSE: "end reasoning answer",
}


@dataclass(frozen=True)
class PivotIds:
    safe: int
    unsafe: int
    rethink: int
    think_open: int
    think_close: int

    @property
    def pivots(self) -> tuple[int, int, int]:
        return (self.safe, self.unsafe, self.rethink)

    @property
    def all(self) -> tuple[int, ...]:
        return (self.safe, self.unsafe, self.rethink, self.think_open, self.think_close)

    def by_string(self) -> dict[str, int]:
        return dict(zip(R2D_TOKENS, self.all))


def token_id(tokenizer, token: str) -> int | None:
    """The single id ``token`` encodes to, or None if the tokenizer does not hold it as one token."""
    tid = tokenizer.convert_tokens_to_ids(token)
    unk = getattr(tokenizer, "unk_token_id", None)
    if tid is None or (unk is not None and tid == unk and token != tokenizer.unk_token):
        return None
    ids = tokenizer.encode(token, add_special_tokens=False)
    return tid if ids == [tid] else None


def pivot_ids(tokenizer) -> PivotIds:
    """Look up the five R2D token ids by string; raise if any is missing (call expand_tokenizer)."""
    found = {t: token_id(tokenizer, t) for t in R2D_TOKENS}
    missing = [t for t, i in found.items() if i is None]
    if missing:
        raise ValueError(
            f"tokenizer lacks R2D tokens {missing}; run r2d.pivots.expand_tokenizer(tokenizer, model) first"
        )
    return PivotIds(*(found[t] for t in R2D_TOKENS))


def expand_tokenizer(tokenizer, model=None, init: str = "describe") -> list[str]:
    """Add the R2D tokens the tokenizer does not already hold, resize ``model``'s embeddings, and
    initialise the new rows. Tokens already present (e.g. ``<think>`` in R1-distill or Qwen3
    tokenizers) are reused. Returns the list of tokens actually added.

    init: "describe" (mean embedding of a few describing words, the default), "mean" (mean of all
    rows) or "default" (whatever ``resize_token_embeddings`` does).
    """
    from tokenizers import AddedToken

    new = [t for t in R2D_TOKENS if token_id(tokenizer, t) is None]
    if new:
        # Non-special added tokens: they survive decode(skip_special_tokens=True) and are matched
        # verbatim (no normalisation, no stripping of the surrounding spaces).
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False, lstrip=False, rstrip=False) for t in new])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model is not None:
        old_rows = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > old_rows:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=(init != "default"))
        if new and init != "default":
            _init_rows(tokenizer, model, new, init)
        model.config.vocab_size = model.get_input_embeddings().weight.shape[0]
    return new


def _init_rows(tokenizer, model, new: list[str], init: str) -> None:
    import torch

    matrices = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != matrices[0].data_ptr():
        matrices.append(out.weight)
    n_old = len(tokenizer) - len(new)
    with torch.no_grad():
        for w in matrices:
            base = w[:n_old].mean(0)
            for tok in new:
                row = tokenizer.convert_tokens_to_ids(tok)
                vec = base
                if init == "describe":
                    ids = [i for i in tokenizer.encode(" " + _INIT_WORDS[tok], add_special_tokens=False) if i < n_old]
                    if ids:
                        vec = w[ids].mean(0)
                w[row] = vec.to(w.dtype)


# --- the chat template opens the think block -------------------------------------------------
_PROBE = [{"role": "user", "content": "Hello"}]


def _generation_prompt(tokenizer) -> str:
    return tokenizer.apply_chat_template(_PROBE, tokenize=False, add_generation_prompt=True)


def template_opens_think(tokenizer) -> bool:
    """Whether the generation prompt of ``tokenizer``'s chat template already ends in ``<think>``."""
    return _generation_prompt(tokenizer).rstrip().endswith(THINK_OPEN)


def open_think_in_template(tokenizer) -> bool:
    """Make the chat template's generation prompt end with ``<think>\n`` (as the DeepSeek-R1 distills'
    templates do), so an R2D model always starts by reasoning instead of having to choose to. Training
    then masks ``<think>`` as part of the prompt, and backends put the opened block back in front of
    the completion (``r2d.backends.base.restore_think``). Returns whether the template changed.
    Checked by rendering: the new generation prompt must be the old one plus ``<think>\n``."""
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return False
    before = _generation_prompt(tokenizer)
    if before.rstrip().endswith(THINK_OPEN):
        return False
    tokenizer.chat_template = template + "{% if add_generation_prompt %}" + THINK_OPEN + "\n{% endif %}"
    if _generation_prompt(tokenizer) != before + THINK_OPEN + "\n":
        tokenizer.chat_template = template
        raise ValueError("cannot make this chat template open <think>: its generation prompt is not its last output")
    return True


# --- neutralising untrusted text ---------------------------------------------------------------
# Any bracketed pivot word or think tag, whatever the case or inner spacing.
_PIVOT_RE = re.compile(r"\[\s*(safe|unsafe|un-safe|rethink)\s*\]", re.IGNORECASE)
_THINK_RE = re.compile(r"<\s*(/?)\s*think\s*>", re.IGNORECASE)


def neutralize(text: str) -> str:
    """Rewrite pivot tokens and think tags in untrusted text (user, system or tool turns) so that
    they can never tokenize to an R2D id: ``[SAFE]`` -> ``(SAFE)``, ``</think>`` -> ``(/think)``.
    The words stay readable; only the exact token strings are broken.
    """
    text = _PIVOT_RE.sub(lambda m: f"({m.group(1)})", text)
    return _THINK_RE.sub(lambda m: f"({m.group(1)}think)", text)


def contains_r2d_token(text: str) -> bool:
    return any(t in text for t in R2D_TOKENS)


def strip_pivots(text: str) -> str:
    """Remove the pivot tokens (not the think tags) from a completion, for the --strip-pivots
    ablation; whitespace left before a removed pivot is dropped too."""
    return re.sub(r"[ \t]*(\[SAFE\]|\[UNSAFE\]|\[RETHINK\])", "", text)
