"""One registry for every pluggable component, found by kind and name.

    @register("judge", "refusal")
    class RefusalJudge: ...

    get("judge", "refusal")     # -> the class (or factory) registered under that name
    create("judge", "refusal", **kwargs)

Built-in components live in modules listed in ``_BUILTIN_MODULES``; they are imported lazily the
first time a kind is looked up, so ``import r2d`` stays cheap. Third-party packages can add
components through the ``r2d.plugins`` entry-point group (each entry point is a module to import).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

T = TypeVar("T")

KINDS = ("backend", "policy", "teacher", "seedset", "judge", "attack", "defense", "benchmark")

# Modules whose import registers the built-in components of a kind.
_BUILTIN_MODULES: dict[str, tuple[str, ...]] = {
    "backend": ("r2d.backends.mock", "r2d.backends.hf", "r2d.backends.openai_backend", "r2d.backends.vllm_backend"),
    "policy": ("r2d.infer.policies",),
    "teacher": ("r2d.data.teachers",),
    "seedset": ("r2d.data.seeds", "r2d.data.teachers.dataset"),
    "judge": ("r2d.eval.judges",),
    "attack": ("r2d.eval.attacks",),
    "defense": ("r2d.eval.defenses",),
    "benchmark": ("r2d.eval.benchmarks",),
}

_REGISTRY: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
_loaded: set[str] = set()


class UnknownComponentError(KeyError):
    """Raised for a name that is not registered; the message lists what is."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one plain line
        return str(self.args[0])


# The methods a class registered under a kind must have (its Protocol); factories are checked when called.
REQUIRED: dict[str, tuple[str, ...]] = {
    "backend": ("generate",), "judge": ("judge",), "attack": ("generate",), "defense": ("generate",),
    "benchmark": ("load",),
}


def _same(a: Any, b: Any) -> bool:
    """The same component defined again (a module re-imported), not another one under a taken name."""
    return a is b or (getattr(a, "__module__", None) == getattr(b, "__module__", 0)
                      and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", 0))


def register(kind: str, name: str) -> Callable[[T], T]:
    """Class/function decorator: register ``obj`` as component ``name`` of ``kind``. A name already taken
    by another component raises; a class must have its kind's methods (``REQUIRED``)."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")

    def deco(obj: T) -> T:
        old = _REGISTRY[kind].get(name)
        if old is not None and not _same(old, obj):
            raise ValueError(f"{kind} {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        if isinstance(obj, type):
            missing = [m for m in REQUIRED.get(kind, ()) if not callable(getattr(obj, m, None))]
            if missing:
                raise TypeError(f"{kind} {name!r}: {obj.__qualname__} lacks {', '.join(missing)}()")
        _REGISTRY[kind][name] = obj
        setattr(obj, "registry_name", name)
        return obj

    return deco


def unregister(kind: str, name: str) -> None:
    """Remove a component (tests clear what they registered)."""
    _REGISTRY[kind].pop(name, None)


def _load(kind: str) -> None:
    if kind in _loaded:
        return
    _loaded.add(kind)
    for mod in _BUILTIN_MODULES.get(kind, ()):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a stage not installed / optional extra missing
            if e.name and (e.name == mod or mod.startswith(e.name + ".")):
                continue
            raise
    for ep in entry_points(group="r2d.plugins"):
        importlib.import_module(ep.value)


def names(kind: str) -> list[str]:
    _load(kind)
    return sorted(_REGISTRY[kind])


def get(kind: str, name: str) -> Any:
    _load(kind)
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY[kind])) or "none"
        raise UnknownComponentError(f"unknown {kind} {name!r}; known: {known}") from None


def create(kind: str, name: str, /, **kwargs: Any) -> Any:
    return get(kind, name)(**kwargs)
