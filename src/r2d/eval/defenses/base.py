"""Helpers the defenses share: reading/replacing the last user turn and the blocked reply."""

from __future__ import annotations

from r2d.backends.base import Chat, Completion

REFUSAL_TEXT = "I'm sorry, but I cannot assist with that request."


def last_user(chat: Chat) -> str:
    for m in reversed(chat):
        if m.get("role") == "user":
            return m.get("content", "")
    raise ValueError("chat has no user turn to defend")


def replace_last_user(chat: Chat, content: str) -> Chat:
    """A copy of ``chat`` whose last user turn reads ``content``."""
    out = [dict(m) for m in chat]
    for m in reversed(out):
        if m.get("role") == "user":
            m["content"] = content
            return out
    raise ValueError("chat has no user turn to defend")


def blocked_completion(reason: str, **meta: object) -> Completion:
    """What a filtering defense returns instead of calling the model."""
    return Completion(text=REFUSAL_TEXT, finish_reason="blocked", completion_tokens=0,
                      meta={"blocked": True, "reason": reason, **meta})
