"""Model backends: one small Protocol (``Backend``) that every stage generates through."""

from r2d.backends.base import Backend, Completion, GenParams, get_backend, prepare_messages

__all__ = ["Backend", "Completion", "GenParams", "get_backend", "prepare_messages"]
