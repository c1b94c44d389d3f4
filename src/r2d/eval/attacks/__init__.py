"""Jailbreak attacks: each turns behaviours into test-case chats. Importing this package registers all."""

from r2d.eval.attacks import artifact, autodan, gcg, pair, simple, templates  # noqa: F401
from r2d.eval.attacks.templates import template_split  # noqa: F401
