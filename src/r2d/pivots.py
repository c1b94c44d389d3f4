"""The pivot vocabulary: the strings, adding them to a tokenizer/model, ids by string, and
neutralising user text so it can never tokenize to a pivot id.

Ids are always looked up by string (``tokenizer.convert_tokens_to_ids``) and verified to encode to
a single token, never inferred from vocabulary positions (the official code's ``V-8`` breaks for
tokenizers that already contain ``<think>``).
"""

from __future__ import annotations

import re
import unicodedata
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
# Any bracketed pivot word or think tag, whatever the case or inner spacing, and chat-template control
# tokens of the ``<|name|>`` family (ChatML ``<|im_start|>``, Llama-3 ``<|eot_id|>``, ...). Matched on
# the NFKC view of the text, so a fullwidth ``＜think＞`` that a normalising tokenizer maps to
# ``<think>`` is caught too; only the matched span is rewritten, the rest of the text stays as written.
_UNTRUSTED_RE = re.compile(r"\[\s*(?P<pivot>safe|unsafe|un-safe|rethink)\s*\]"
                           r"|<\s*(?P<slash>/?)\s*think\s*>"
                           r"|<\|(?P<ctl>[^|<>\s]{1,64})\|>", re.IGNORECASE)


def _replacement(m: re.Match) -> str:
    if m.group("pivot") is not None:
        return f"({m.group('pivot')})"
    if m.group("ctl") is not None:
        return f"(|{m.group('ctl')}|)"
    return f"({m.group('slash')}think)"


def neutralize(text: str, special_tokens: tuple[str, ...] = ()) -> str:
    """Rewrite pivot tokens, think tags and chat-template control tokens in untrusted text (user, system
    or tool turns) so that they can never tokenize to a special id: ``[SAFE]`` -> ``(SAFE)``,
    ``</think>`` -> ``(/think)``, ``<|im_start|>`` -> ``(|im_start|)``. ``special_tokens``: further
    strings to break (a tokenizer's own special tokens, e.g. ``</s>``, ``[INST]``): their first character
    is replaced by a look-alike. Words stay readable; only exact token strings are broken."""
    view, index = [], []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch):
            view.append(c)
            index.append(i)
    view_s = "".join(view)
    spans = [(index[m.start()], index[m.end() - 1] + 1, _replacement(m)) for m in _UNTRUSTED_RE.finditer(view_s)]
    for tok in special_tokens:
        if len(tok) < 2 or tok.isalnum():
            continue
        start = view_s.find(tok)
        while start >= 0:
            end = start + len(tok)
            spans.append((index[start], index[end - 1] + 1, _LOOKALIKE.get(tok[0], tok[0] + "\u2060") + tok[1:]))
            start = view_s.find(tok, end)
    out, last = [], 0
    for a, b, rep in sorted(spans):
        if a < last:
            continue  # overlapping matches: the first one wins
        out += [text[last:a], rep]
        last = b
    return "".join(out) + text[last:]


_LOOKALIKE = {"<": "\u2039", "[": "(", "{": "(", "|": "\u00a6"}  # ‹  ¦: never parsed as the token


def neutralize_content(content):
    """``neutralize`` for a chat message's content: a string, or multi-part content (a list of parts,
    ``{"type": "text", "text": ...}``), each text part neutralised."""
    if isinstance(content, str):
        return neutralize(content)
    if isinstance(content, list):
        return [{**p, "text": neutralize(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str)
                else (neutralize(p) if isinstance(p, str) else p) for p in content]
    return content


def contains_r2d_token(text: str) -> bool:
    return any(t in text for t in R2D_TOKENS)


def strip_pivots(text: str) -> str:
    """Remove the pivot tokens (not the think tags) from a completion, for the --strip-pivots
    ablation; whitespace left before a removed pivot is dropped too."""
    return re.sub(r"[ \t]*(\[SAFE\]|\[UNSAFE\]|\[RETHINK\])", "", text)
