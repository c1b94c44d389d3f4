"""Inference policies: what the user sees of an R2D completion, and optional decoding hooks.

A policy has ``apply(completion) -> completion`` (``text`` becomes the visible text; the model's
text is kept in ``meta["raw_text"]``) and, for backends that accept them, ``stop_strings()`` and
``logits_processors()`` (factories taking the tokenizer). Policies that change what is asked or how it is
generated also override ``prepare(chats)`` (a pre-generation hook) or ``run(backend, chats, params)``
(the generation itself, through the Backend protocol only, so they work on every backend).
``generate_with_policy`` wires all of them.

- ``raw``: the completion as generated.
- ``hide-reasoning``: only the answer after ``</think>``, pivots removed.
- ``drop-unsafe-steps``: the paper's HarmBench post-filter (``r2d_post_process``): split on pivots,
  keep segments ending in [SAFE]/[RETHINK], drop those ending in [UNSAFE] and any text after the
  last pivot, remove all pivots; text without pivots passes unchanged.
- ``refuse-on-unsafe``: at the first [UNSAFE] return a fixed refusal (with hf, [UNSAFE] is a stop
  string, so generation ends there). Under greedy decoding its completion is the raw one cut at that
  [UNSAFE] (``Policy.derive``; the evaluation can reuse a raw arm's samples this way).
- ``pivot-threshold``: decode-time; force [UNSAFE] at a pivot position when the model's
  P([UNSAFE]) (renormalised over the three pivots) >= tau, then refuse like ``refuse-on-unsafe``.
- ``r2d-p`` (the paper's R2D-p, no training): the R2D instructions (steps ending in pivots, refuse on
  [UNSAFE]; adapted from the SwaRD teacher prompt) as the system prompt of any model.
- ``r2d-n`` (the paper's R2D-n): the reasoning is concluded after ``words`` words (default 30, the
  paper's ~30): phase 1 generates the opening of the reasoning (stopped at ``</think>`` or a small token
  budget), it is cut at the word budget and closed with ``</think>``, and phase 2 continues from that
  assistant prefill to write the answer. Backends that render the chat template (hf, vllm, mock, openai
  with ``--local-template``) continue a trailing assistant turn.

Errors pass through untouched: a failed generation stays an error, never a (safe) refusal.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

from r2d.backends.base import Chat, Completion, GenParams
from r2d.pivots import PIVOTS, RETHINK, SAFE, UNSAFE
from r2d.reasoning import parse
from r2d.registry import get, register

DEFAULT_REFUSAL = "I'm sorry, but I can't help with that."
_SPLIT = re.compile("(" + "|".join(re.escape(p) for p in PIVOTS) + ")")


class Policy:
    """Base: the identity. Subclasses override ``visible`` and the hooks."""

    name = "raw"

    def stop_strings(self) -> list[str]:
        return []

    def logits_processors(self) -> list[Callable[[Any], Any]]:
        return []

    def visible(self, c: Completion) -> str:
        return c.full_text

    def apply(self, c: Completion) -> Completion:
        if c.error is not None:
            return c
        raw = c.full_text
        return dataclasses.replace(c, text=self.visible(c), reasoning=None,
                                   meta={**c.meta, "raw_text": raw, "policy": self.name})

    def describe(self) -> dict:
        return {"name": self.name, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def prepare(self, chats: list[Chat]) -> list[Chat]:
        """Pre-generation hook: the chats actually sent (default: unchanged)."""
        return chats

    def run(self, backend: Any, chats: list[Chat], params: GenParams) -> list[Completion]:
        """The generation (default: one call of the backend on the prepared chats)."""
        return backend.generate(self.prepare(chats), params)

    def derivable(self) -> bool:
        """Whether ``derive`` can compute this policy's completion from the raw one: no decode-time processors,
        and neither the prompt (``prepare``) nor the generation (``run``) changed."""
        return not self.logits_processors() and type(self).prepare is Policy.prepare and type(self).run is Policy.run

    def derive(self, raw: Completion) -> Completion | None:
        """The completion this policy's own greedy generation gives for a chat, computed from the ``raw``
        policy's completion of the same chat, or None when it cannot be: a failed generation, decode-time
        processors, or a policy that changes the prompt or the generation. The model's text up to the first
        of the policy's stop strings (a stop string ends the generation and is cut from the text, as the
        backends do); the token count of a cut text is unknown (None). Not ``apply``'d."""
        if raw.error is not None or not self.derivable():
            return None
        hit = min(((raw.text.find(s), s) for s in self.stop_strings() if s in raw.text), default=None)
        if hit is None:
            return dataclasses.replace(raw, meta=dict(raw.meta))
        return dataclasses.replace(raw, text=raw.text[:hit[0]], finish_reason="stop", completion_tokens=None,
                                   meta={**raw.meta, "stop": hit[1]})


@register("policy", "raw")
class RawPolicy(Policy):
    name = "raw"

    def __init__(self, **_: Any) -> None:
        pass


@register("policy", "hide-reasoning")
class HideReasoning(Policy):
    name = "hide-reasoning"

    def __init__(self, **_: Any) -> None:
        pass

    def visible(self, c: Completion) -> str:
        return parse(c.full_text).answer


def drop_unsafe_segments(text: str) -> str:
    """The HarmBench post-filter: keep [SAFE]/[RETHINK]-tagged segments, drop [UNSAFE] ones and the
    untagged tail, remove the pivots. Text without any pivot is returned unchanged."""
    parts = _SPLIT.split(text)
    if len(parts) == 1:
        return text
    kept = [parts[i] for i in range(0, len(parts) - 1, 2) if parts[i + 1] in (SAFE, RETHINK)]
    return "".join(kept).strip()


@register("policy", "drop-unsafe-steps")
class DropUnsafeSteps(Policy):
    name = "drop-unsafe-steps"

    def __init__(self, **_: Any) -> None:
        pass

    def visible(self, c: Completion) -> str:
        return drop_unsafe_segments(c.full_text)


@register("policy", "refuse-on-unsafe")
class RefuseOnUnsafe(Policy):
    name = "refuse-on-unsafe"

    def __init__(self, refusal: str = DEFAULT_REFUSAL, **_: Any) -> None:
        self.refusal = refusal

    def stop_strings(self) -> list[str]:
        return [UNSAFE]

    def flagged(self, c: Completion) -> bool:
        return c.meta.get("stop") == UNSAFE or UNSAFE in c.full_text

    def visible(self, c: Completion) -> str:
        return self.refusal if self.flagged(c) else c.full_text

    def apply(self, c: Completion) -> Completion:
        out = super().apply(c)
        if out.error is None:
            out.meta["policy_refused"] = self.flagged(c)
        return out


@register("policy", "pivot-threshold")
class PivotThreshold(RefuseOnUnsafe):
    name = "pivot-threshold"

    def __init__(self, tau: float = 0.5, refusal: str = DEFAULT_REFUSAL, **_: Any) -> None:
        super().__init__(refusal=refusal)
        self.tau = float(tau)

    def logits_processors(self) -> list[Callable[[Any], Any]]:
        tau = self.tau

        def make(tokenizer: Any):
            from r2d.backends.processors import PivotThresholdProcessor
            from r2d.pivots import pivot_ids

            return PivotThresholdProcessor(pivot_ids(tokenizer), tau)

        return [make]


R2D_P_PROMPT = (
    "You are an honest and helpful AI assistant that reasons about safety before it answers. First think step by "
    "step inside <think></think>. End every reasoning step, inside and outside the think block, with exactly one "
    "safety tag: [SAFE] if the step is safe; [UNSAFE] if you find the request or the step harmful; [RETHINK] if you "
    "suspect things are going unsafe and must look for a safe way to answer. If any step is tagged [UNSAFE], your "
    "final answer after </think> is a brief refusal. Otherwise answer the user's request helpfully after </think> "
    "and end the answer with [SAFE].")


@register("policy", "r2d-p")
class R2DPrompt(Policy):
    """R2D-p: the R2D instructions as the system prompt (an existing system prompt follows them, still
    neutralised by the guard; the instructions themselves are r2d's own text, so their pivots survive)."""

    name = "r2d-p"

    def __init__(self, system_prompt: str = R2D_P_PROMPT, **_: Any) -> None:
        self.system_prompt = system_prompt

    def prepare(self, chats: list[Chat]) -> list[Chat]:
        from r2d.backends.base import trusted_message
        from r2d.pivots import neutralize

        out = []
        for chat in chats:
            if chat and chat[0].get("role") == "system":
                merged = f"{self.system_prompt}\n\n{neutralize(chat[0]['content'])}"
                out.append([trusted_message("system", merged), *chat[1:]])
            else:
                out.append([trusted_message("system", self.system_prompt), *chat])
        return out


_WORD = re.compile(r"\S+")


def cut_words(text: str, words: int) -> tuple[str, int, bool]:
    """``text`` up to the end of its ``words``-th whitespace word: (kept text, words kept, whether cut)."""
    found = list(_WORD.finditer(text))
    if len(found) <= words:
        return text, len(found), False
    return text[:found[words - 1].end()], words, True


@register("policy", "r2d-n")
class ConcludeReasoning(Policy):
    """R2D-n: end the think block after ``words`` words and let the model answer (two backend calls)."""

    name = "r2d-n"

    def __init__(self, words: int = 30, **_: Any) -> None:
        if int(words) < 1:
            raise ValueError(f"policy r2d-n: words must be >= 1, got {words}")
        self.words = int(words)

    def reasoning_tokens(self, params: GenParams) -> int:
        # a word is 1-2 tokens in English BPE; pivots and markup add a few: stop well after the budget
        return max(1, min(params.max_new_tokens, 3 * self.words + 16))

    def conclude(self, c: Completion) -> tuple[str | None, dict]:
        """The assistant prefill that closes the reasoning (None: nothing to continue) and a record."""
        from r2d.pivots import THINK_CLOSE, THINK_OPEN

        text = c.full_text
        if THINK_OPEN not in text:  # the model answered without reasoning: nothing to conclude
            info = {"budget_words": self.words, "reasoning_words": 0, "no_reasoning": True}
            return (text if c.finish_reason == "length" else None), info
        head, _, reasoning = text.partition(THINK_OPEN)
        closed = c.meta.get("stop") == THINK_CLOSE or THINK_CLOSE in reasoning
        reasoning = reasoning.split(THINK_CLOSE, 1)[0]
        kept, n, cut = cut_words(reasoning, self.words)
        prefill = f"{head}{THINK_OPEN}{kept.rstrip()}\n{THINK_CLOSE}\n\n"
        # closed_by_model: the model ended its reasoning itself within the budget
        return prefill, {"budget_words": self.words, "reasoning_words": n, "cut": cut,
                         "closed_by_model": closed and not cut}

    def run(self, backend: Any, chats: list[Chat], params: GenParams) -> list[Completion]:
        from r2d.pivots import THINK_CLOSE

        chats = self.prepare(chats)
        first = backend.generate(chats, dataclasses.replace(
            params, max_new_tokens=self.reasoning_tokens(params), stop=[*params.stop, THINK_CLOSE]))
        out: list[Completion | None] = [None] * len(chats)
        # second calls grouped by their token budget: the answer after a concluded reasoning gets the full
        # max_new_tokens; a model that opened no think block only the rest of it (as if generated in one go)
        todo: dict[int, list[tuple[int, str, dict]]] = {}
        for i, c in enumerate(first):
            if c.error is not None:
                out[i] = c
                continue
            prefill, info = self.conclude(c)
            budget = params.max_new_tokens
            if info.get("no_reasoning"):
                budget -= c.completion_tokens or 0
            if prefill is None or budget < 1:
                out[i] = dataclasses.replace(c, meta={**c.meta, "r2d_n": info})
            else:
                todo.setdefault(budget, []).append((i, prefill, info))
        for budget, items in todo.items():
            prefilled = [[*chats[i], {"role": "assistant", "content": pre}] for i, pre, _ in items]
            second = backend.generate(prefilled, dataclasses.replace(params, max_new_tokens=budget))
            for (i, pre, info), c2 in zip(items, second):
                c1 = first[i]
                if c2.error is not None:
                    out[i] = c2
                    continue
                tokens = (c1.completion_tokens or 0) + (c2.completion_tokens or 0)
                out[i] = Completion(text=pre + c2.text, prompt_tokens=c1.prompt_tokens, completion_tokens=tokens,
                                    finish_reason=c2.finish_reason, latency_s=c1.latency_s + c2.latency_s,
                                    meta={**c2.meta, "r2d_n": info})
        return out  # type: ignore[return-value]


def policy_label(name: str, params: dict | None = None) -> str:
    """How results name a policy with knobs: ``name`` alone, or ``name(k=v,...)`` (e.g. ``r2d-n(words=30)``)."""
    if not params:
        return name
    return f"{name}({','.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}' for k, v in sorted(params.items()))})"


def get_policy(policy: str | Policy | None = None, **kwargs: Any) -> Policy:
    """A policy object from a name (``raw`` if None) plus its knobs, or the object itself."""
    if isinstance(policy, Policy):
        return policy
    return get("policy", policy or "raw")(**kwargs)


def generate_with_policy(backend: Any, chats: list[Chat], params: GenParams,
                         policy: str | Policy | None = None, **policy_kwargs: Any) -> list[Completion]:
    """Generate with ``backend`` under ``policy`` and return completions whose ``text`` is what the
    user sees (``meta["raw_text"]`` is the model's). Decode-time hooks need a backend with
    ``supports_logits_processors`` (hf); other backends raise a one-line ValueError for such policies."""
    pol = get_policy(policy, **policy_kwargs)
    return [pol.apply(c) for c in pol.run(backend, chats, policy_params(backend, params, pol))]


def policy_params(backend: Any, params: GenParams, pol: Policy) -> GenParams:
    """``params`` with ``pol``'s stop strings and decode-time hooks added (one definition, shared by
    ``generate_with_policy`` and the server). Raises a one-line ValueError for a policy that needs
    logits on a backend without ``supports_logits_processors``."""
    procs = pol.logits_processors()
    if procs and not getattr(backend, "supports_logits_processors", False):
        raise ValueError(f"policy {pol.name!r} needs logits access; backend {getattr(backend, 'name', backend)!r} "
                         "has none (use --backend hf)")
    stops = [s for s in pol.stop_strings() if s not in params.stop]
    extra = dict(params.extra)
    if procs:
        extra["policy_processors"] = list(extra.get("policy_processors", [])) + procs
    return dataclasses.replace(params, stop=list(params.stop) + stops, extra=extra)
