"""Inference policies: what the user sees of an R2D completion, and optional decoding hooks.

A policy has ``apply(completion) -> completion`` (``text`` becomes the visible text; the model's
text is kept in ``meta["raw_text"]``) and, for backends that accept them, ``stop_strings()`` and
``logits_processors()`` (factories taking the tokenizer). ``generate_with_policy`` wires both.

- ``raw``: the completion as generated.
- ``hide-reasoning``: only the answer after ``</think>``, pivots removed.
- ``drop-unsafe-steps``: the paper's HarmBench post-filter (``r2d_post_process``): split on pivots,
  keep segments ending in [SAFE]/[RETHINK], drop those ending in [UNSAFE] and any text after the
  last pivot, remove all pivots; text without pivots passes unchanged.
- ``refuse-on-unsafe``: at the first [UNSAFE] return a fixed refusal (with hf, [UNSAFE] is a stop
  string, so generation ends there).
- ``pivot-threshold``: decode-time; force [UNSAFE] at a pivot position when the model's
  P([UNSAFE]) (renormalised over the three pivots) >= tau, then refuse like ``refuse-on-unsafe``.

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
            from r2d.infer.processors import PivotThresholdProcessor
            from r2d.pivots import pivot_ids

            return PivotThresholdProcessor(pivot_ids(tokenizer), tau)

        return [make]


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
    run_params = policy_params(backend, params, pol)
    return [pol.apply(c) for c in backend.generate(chats, run_params)]


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
