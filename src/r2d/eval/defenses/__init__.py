"""Baseline defenses around a backend. Importing this package registers them all.

Each defense: ``generate(backend, chats, params) -> list[Completion]`` (one per chat, in order) and
``params()``. A blocked prompt gets a refusal Completion with ``meta["blocked"] = True``.
"""

from r2d.eval.defenses import erase_check, intention, perplexity, prompting, rpo, smoothllm  # noqa: F401
from r2d.eval.defenses.base import REFUSAL_TEXT, blocked_completion, last_user, replace_last_user

__all__ = ["REFUSAL_TEXT", "blocked_completion", "last_user", "replace_last_user"]
