"""The one place the server turns incoming messages into a backend chat and neutralises pivot
injection (so the lead can switch every server call to a stronger guard here).

Multi-part content (``[{"type": "text", "text": ...}, ...]``) is flattened to text (parts joined by
a newline) *before* the guard runs, so no part escapes it; non-text parts are refused. ``developer``
turns become ``system`` turns. User, system and tool turns are neutralised by
``r2d.backends.base.prepare_messages``; assistant turns pass verbatim (a trailing one is a prefill).
"""

from __future__ import annotations

from r2d.backends.base import Chat, prepare_messages


class MessageError(ValueError):
    """A message r2d cannot serve; ``param`` names the field (``messages[2].content[1]``)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _text(content, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise MessageError(f"messages[{i}].content[{j}]: only text parts are supported (got {kind!r})",
                               f"messages[{i}].content[{j}]")
        texts.append(part["text"])
    return "\n".join(texts)


def guard_messages(messages: list) -> Chat:
    """Backend chat from request messages (pydantic ``ChatMessage`` or dicts), untrusted turns neutralised."""
    chat: Chat = []
    for i, m in enumerate(messages):
        role = m.role if hasattr(m, "role") else m.get("role")
        content = m.content if hasattr(m, "content") else m.get("content")
        role = "system" if role == "developer" else role
        text = _text(content, i)
        if role != "assistant" and not text.strip():
            raise MessageError(f"messages[{i}]: empty content in a {role} turn", f"messages[{i}].content")
        chat.append({"role": role, "content": text})
    if chat[-1]["role"] not in ("user", "tool", "assistant"):
        raise MessageError("the last message must be a user, tool or assistant (prefill) turn",
                           f"messages[{len(chat) - 1}].role")
    return prepare_messages(chat, guard=True)
