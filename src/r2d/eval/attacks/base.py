"""What every attack shares: the request text, TestCase building, and where the target comes from.

Optimisation attacks run either ADAPTIVELY (against the backend they are handed: the defended model
itself) or by TRANSFER (against another backend named in their ``transfer`` parameter; the prompts
found there are then sent to the defended model). ``attack_params["mode"]`` records which.
"""

from __future__ import annotations

from typing import Any

from r2d.backends.base import Backend, Chat
from r2d.eval.types import Behavior, TestCase

DEFAULT_TARGET = "Sure, here is"


def request_text(b: Behavior) -> str:
    """The text a behaviour asks for; HarmBench contextual behaviours put their context first
    (HarmBench's own layout: ``context\\n\\n---\\n\\nbehavior``)."""
    return f"{b.context}\n\n---\n\n{b.goal}" if b.context else b.goal


def target_text(b: Behavior) -> str:
    return b.target or DEFAULT_TARGET


def make_case(b: Behavior, attack: str, messages: Chat, variant: str = "", **params: Any) -> TestCase:
    tid = f"{b.id}/{attack}/{variant}" if variant else f"{b.id}/{attack}"
    return TestCase(id=tid, behavior=b, messages=messages, attack=attack, variant=variant, attack_params=params)


def user(text: str) -> Chat:
    return [{"role": "user", "content": text}]


def resolve_backend(spec: Backend | str) -> Backend:
    """A backend object, or ``"name:model"`` (e.g. ``hf:smollm2-135m``) built through the registry."""
    if not isinstance(spec, str):
        return spec
    from r2d.backends.base import get_backend

    name, _, model = spec.partition(":")
    return get_backend(name, model=model or None)


class OptimizingAttack:
    """Base for attacks that query or differentiate a target while searching."""

    name = "optimizing"
    caches_searches = False  # True: ``generate`` takes ``searches`` (a SearchCache) and reuses what it holds

    def __init__(self, transfer: Backend | str | None = None, seed: int = 0) -> None:
        self.transfer = transfer
        self.seed = seed
        self._transfer_backend: Backend | None = None

    def search_target(self, target: Backend | None) -> tuple[Backend, str]:
        """(backend to optimise against, "adaptive" | "transfer")."""
        if self.transfer is not None:
            if self._transfer_backend is None:
                self._transfer_backend = resolve_backend(self.transfer)
            return self._transfer_backend, "transfer"
        if target is None:
            raise ValueError(f"attack {self.name} needs a target backend (adaptive) or transfer=BACKEND:MODEL")
        return target, "adaptive"

    def search_cache(self, searches: Any) -> Any:
        """The cache for this attack's searches: the runner's (its target: the defended model) in adaptive
        mode, the same file keyed by the transfer model in transfer mode; None when nothing is cached."""
        if searches is None or self.transfer is None:
            return searches
        from r2d.eval.attacks.searches import transfer_identity

        return searches.for_target(transfer_identity(self.transfer))

    def transfer_name(self) -> str | None:
        if self.transfer is None:
            return None
        return self.transfer if isinstance(self.transfer, str) else \
            f"{getattr(self.transfer, 'name', '?')}:{getattr(self.transfer, 'model', '?')}"
