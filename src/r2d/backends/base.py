"""The Backend Protocol and the records every generation call returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from r2d import registry
from r2d.pivots import neutralize, neutralize_content

Chat = list[dict[str, str]]


@dataclass
class GenParams:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int = 0
    batch_size: int = 16
    # Stop a sequence once its visible answer (after </think>) has more than N words; only for judges that
    # read no further (see r2d.backends.early_stop). None: off. Backends without support ignore it.
    stop_after_answer_words: int | None = None
    # Extra backend-specific knobs (e.g. a logits processor list for hf)
    extra: dict[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict:
        d = asdict(self)
        d["extra"] = sorted(self.extra)
        return d


@dataclass
class Completion:
    """One generation. ``error`` set means the call failed: never treat it as a (safe) reply."""

    text: str = ""
    reasoning: str | None = None  # server-split reasoning (OpenAI ``reasoning_content``), if any
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None  # "stop", "length", "error", ...
    latency_s: float = 0.0
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. per-step pivot probabilities

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def full_text(self) -> str:
        """The text with server-split reasoning put back inside ``<think>`` so one parser reads both.
        A reply that closes a think block it never opened (an R1/QwQ template opened it in the prompt,
        served through a chat endpoint without a reasoning parser) gets the opening ``<think>`` back."""
        if self.reasoning and "<think>" not in self.text:
            return f"<think>\n{self.reasoning.strip()}\n</think>\n\n{self.text.lstrip()}"
        if "</think>" in self.text and "<think>" not in self.text:
            return "<think>\n" + self.text.lstrip()
        return self.text

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Backend(Protocol):
    """Turns a batch of chats into completions, in input order, one ``Completion`` per chat."""

    name: str

    def generate(self, chats: list[Chat], params: GenParams) -> list[Completion]: ...


# A message r2d itself wrote (e.g. the R2D-p system prompt that names the pivots) carries this key set to
# True: the guard leaves it verbatim, and the key never reaches a template or an API.
TRUSTED = "r2d_trusted"


def trusted_message(role: str, content: str) -> dict:
    return {"role": role, "content": content, TRUSTED: True}


def prepare_messages(chat: Chat, guard: bool = True, trust_system: bool = False, trust_assistant: bool = True,
                     special_tokens: tuple[str, ...] = ()) -> Chat:
    """Copy ``chat`` with untrusted turns neutralised (``r2d.pivots.neutralize``: pivot and think tokens,
    chat-template control tokens, NFKC look-alikes; string or multi-part content) so nothing can be
    forged from outside the model.

    ``trust_assistant`` (default True, for r2d's own callers): assistant turns are left alone, as r2d's
    attacks and defenses write them (a prefill the caller wants verbatim). Anything that comes from a
    client (``r2d generate`` input, a served endpoint) must pass False: prior assistant turns are then
    neutralised like user turns. ``trust_system`` leaves system turns alone too (a prompt the caller
    wrote, e.g. the teacher's instruction that names the pivots); so does a message r2d wrote itself
    (``trusted_message``; the marker key is dropped from the copy). ``special_tokens``: the tokenizer's
    own special strings, broken too (backends that render the template pass them)."""
    trusted = {"system"} if trust_system else set()
    if trust_assistant:
        trusted.add("assistant")
    out = []
    for m in chat:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"chat message lacks 'role' or 'content': {m!r}")
        content = m["content"]
        if guard and m["role"] not in trusted and not m.get(TRUSTED):
            content = neutralize_content(content)
            if special_tokens:
                content = _break_specials(content, special_tokens)
        out.append({**{k: v for k, v in m.items() if k != TRUSTED}, "content": content})
    return out


def _break_specials(content: Any, special: tuple[str, ...]) -> Any:
    if isinstance(content, str):
        return neutralize(content, special)
    if isinstance(content, list):
        return [{**p, "text": neutralize(p["text"], special)} if isinstance(p, dict) and isinstance(p.get("text"), str)
                else p for p in content]
    return content


def special_strings(tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer's special token strings (bos/eos/pad/template control tokens, added special tokens)."""
    toks = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for t in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).values():
        if getattr(t, "special", False):
            toks.add(str(t.content if hasattr(t, "content") else t))
    return tuple(sorted(toks, key=len, reverse=True))


def get_backend(name: str, model: str | None = None, **kwargs: Any) -> Backend:
    """Build a registered backend by name (``hf``, ``openai``, ``vllm``, ``mock`` ...). An option the
    backend does not take is an error naming it (never dropped silently)."""
    import inspect

    cls = registry.get("backend", name)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    if params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            known = sorted(k for k in params if k != "model")
            raise ValueError(f"backend {name}: unknown option(s) {', '.join(unknown)}; it takes {', '.join(known)}")
    return cls(model=model, **kwargs)


def think_prefix(prompt: str) -> str:
    """The opened think block a prompt ends with (``"<think>\\n"``), else ``""``. A template that opens
    ``<think>`` in its generation prompt (R2D-trained models, R1 distills) leaves it out of the
    completion; backends put it back so one parser reads every completion the same way."""
    stripped = prompt.rstrip()
    return prompt[stripped.rfind("<think>"):] if stripped.endswith("<think>") else ""


def restore_think(chat: Chat, prompt: str, comp: "Completion") -> "Completion":
    """Put the template's opened ``<think>`` back in front of a successful completion (not after an
    assistant prefill: the prefill is the caller's own text). Every backend that renders the template
    itself calls this, so one parser reads every completion the same way."""
    opened = think_prefix(prompt) if chat and chat[-1]["role"] != "assistant" else ""
    if opened and comp.error is None:
        comp.text, comp.meta["think_prefix"] = opened + comp.text, opened
    return comp


def render_prompt(tokenizer: Any, chat: Chat, guard: bool = True, trust_system: bool = False) -> str:
    """The prompt text for ``chat`` under the tokenizer's chat template, after ``prepare_messages``
    (so untrusted turns can never forge pivot/think ids). A trailing assistant turn is a prefill:
    the template continues it instead of opening a new assistant turn."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template")
    msgs = prepare_messages(chat, guard, trust_system, special_tokens=special_strings(tokenizer))
    prefill = bool(msgs) and msgs[-1]["role"] == "assistant"
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=not prefill,
                                         continue_final_message=prefill)
