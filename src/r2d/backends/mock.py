"""A deterministic scripted backend for tests and offline end-to-end runs.

Rules are tried in order; the first whose regex matches the last user message gives the reply.
``model`` may be a path to a JSON file ``{"rules": [{"match": REGEX, "reply": TEXT}], "default": TEXT,
"delay_s": SECONDS}``. A reply of ``"!error"`` simulates a failed call; ``delay_s`` makes each reply take
that long (fault tests kill a run mid-way).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from r2d.backends.base import Chat, Completion, GenParams, prepare_messages
from r2d.registry import register

DEFAULT_REPLY = "<think>\nThe request looks benign. [SAFE]\n</think>\n\nHere is a helpful answer. [SAFE]"


@register("backend", "mock")
class MockBackend:
    name = "mock"

    def __init__(self, model: str | None = None, rules: list[tuple[str, str]] | None = None,
                 default: str = DEFAULT_REPLY, guard: bool = True, delay_s: float = 0.0) -> None:
        self.model = model or "mock"
        self.rules = [(re.compile(p, re.IGNORECASE | re.DOTALL), r) for p, r in (rules or [])]
        self.default = default
        self.guard, self.delay_s = guard, delay_s
        self.calls: list[Chat] = []
        if model and model != "mock" and Path(model).is_file():
            spec = json.loads(Path(model).read_text())
            self.rules += [(re.compile(r["match"], re.IGNORECASE | re.DOTALL), r["reply"]) for r in spec.get("rules", [])]
            self.default = spec.get("default", self.default)
            self.delay_s = float(spec.get("delay_s", self.delay_s))

    def reply_for(self, chat: Chat) -> str:
        user = next((m["content"] for m in reversed(chat) if m["role"] == "user"), "")
        for pat, reply in self.rules:
            if pat.search(user):
                return reply
        return self.default

    @staticmethod
    def continue_prefill(reply: str, prefill: str) -> str:
        """A trailing assistant turn is a prefill: the reply continues it. The scripted reply's own text
        after the prefill when it starts with it; after a closed think block, the reply's answer part."""
        if reply.startswith(prefill):
            return reply[len(prefill):]
        if "</think>" in prefill and "</think>" in reply:
            return reply.split("</think>", 1)[1].lstrip()
        return reply

    def generate(self, chats: list[Chat], params: GenParams) -> list[Completion]:
        out = []
        for chat in chats:
            t0 = time.perf_counter()
            if self.delay_s:
                time.sleep(self.delay_s)
            chat = prepare_messages(chat, self.guard)
            self.calls.append(chat)
            reply = self.reply_for(chat)
            if reply == "!error":
                out.append(Completion(finish_reason="error", error="mock: scripted failure"))
                continue
            if chat and chat[-1]["role"] == "assistant":
                reply = self.continue_prefill(reply, chat[-1]["content"])
            words = reply.split(" ")
            finish, meta = "stop", {}
            if len(words) > params.max_new_tokens:
                reply, finish = " ".join(words[: params.max_new_tokens]), "length"
            hit = min(((reply.index(s), s) for s in params.stop if s and s in reply), default=None)
            if hit is not None:  # the earliest stop string wins, as in real backends
                reply, finish, meta["stop"] = reply[: hit[0]], "stop", hit[1]
            out.append(Completion(text=reply, prompt_tokens=sum(len(m["content"].split()) for m in chat),
                                  completion_tokens=len(reply.split()), finish_reason=finish,
                                  latency_s=time.perf_counter() - t0, meta=meta))
        return out
