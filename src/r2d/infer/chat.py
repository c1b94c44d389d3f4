"""Interactive terminal chat with an R2D model: reasoning shown dimmed (ANSI) or hidden, the answer
as the policy leaves it. Reads lines from ``stdin`` (so it can be piped); ``/reset`` clears the
history, ``/quit`` or end of input leaves."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from r2d.backends.base import Chat, GenParams
from r2d.reasoning import parse

DIM, RESET = "\033[2m", "\033[0m"


def chat_loop(backend: Any, params: GenParams, policy: Any = None, reasoning: str = "dim",
              system: str | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None,
              color: bool | None = None) -> int:
    """Run the chat; returns the number of turns answered. ``reasoning``: dim | plain | hide."""
    from r2d.infer.policies import generate_with_policy, get_policy

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    color = stdout.isatty() if color is None else color
    pol = get_policy(policy)
    history: Chat = [{"role": "system", "content": system}] if system else []
    interactive = stdin.isatty()
    turns = 0
    while True:
        if interactive:
            stdout.write("you> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            history = history[:1] if system else []
            stdout.write("(history cleared)\n")
            continue
        history.append({"role": "user", "content": text})
        c = generate_with_policy(backend, [history], params, pol)[0]
        if c.error:
            stdout.write(f"[error] {c.error}\n")
            history.pop()
            continue
        raw = c.meta.get("raw_text", c.text)
        p = parse(raw)
        if reasoning != "hide" and p.steps:
            body = "\n".join(f"  {s.text} {s.pivot or ''}".rstrip() for s in p.steps)
            stdout.write((f"{DIM}{body}{RESET}" if color and reasoning == "dim" else body) + "\n")
        shown = (p.answer or raw) if c.text == raw else c.text  # the policy left the text as is
        stdout.write(f"r2d> {shown}\n")
        stdout.flush()
        # the model sees its own earlier answers, not its reasoning
        history.append({"role": "assistant", "content": p.answer or c.text})
        turns += 1
    return turns
