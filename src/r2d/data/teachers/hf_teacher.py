"""The ``hf`` teacher: a local reasoning model through an r2d backend (``hf`` by default; ``vllm`` works
the same), batched, with the paper's safety-aware system prompt unless ``system_prompt`` is given.

The backend is built with ``guard=False`` (the system prompt is ours and must reach the teacher with its
literal ``[SAFE]``/``[UNSAFE]``/``[RETHINK]``; seed prompts were already neutralised when the seeds were
made) and ``expand=False`` (the teacher writes pivots as plain text; no new embedding rows)."""

from __future__ import annotations

import asyncio
from typing import Any

from r2d.data.seeds import Seed
from r2d.data.teachers.base import TeacherReply, paper_system_prompt
from r2d.registry import register


@register("teacher", "hf")
class HFTeacher:
    name = "hf"

    def __init__(self, model: str = "smollm2-135m", backend: str = "hf", system_prompt: str | None = None,
                 max_new_tokens: int = 1024, temperature: float = 0.0, batch_size: int = 16,
                 backend_kwargs: dict | None = None, **_: Any) -> None:
        self.model, self.backend_name = model, backend
        self.system_prompt = paper_system_prompt() if system_prompt is None else system_prompt
        self.max_new_tokens, self.temperature, self.batch_size = max_new_tokens, temperature, batch_size
        own = {"guard": False, **({"expand": False} if backend == "hf" else {})}  # only hf takes expand
        self.backend_kwargs = own | (backend_kwargs or {})
        self._backend = None
        self.calls = 0

    def cache_params(self) -> dict:
        return {"teacher": "hf", "backend": self.backend_name, "model": self.model, "system_prompt": self.system_prompt,
                "max_new_tokens": self.max_new_tokens, "temperature": self.temperature}

    def provenance(self) -> dict:
        return self.cache_params() | {"batch_size": self.batch_size}

    def _generate(self, seeds: list[Seed]) -> list[TeacherReply]:
        from r2d.backends.base import GenParams, get_backend

        if self._backend is None:
            self._backend = get_backend(self.backend_name, model=self.model, **self.backend_kwargs)
        sys_turn = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        chats = [sys_turn + [{"role": "user", "content": s.prompt}] for s in seeds]
        params = GenParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature, batch_size=self.batch_size)
        self.calls += len(chats)
        outs = self._backend.generate(chats, params)
        return [TeacherReply(error=c.error, retryable=True) if c.error else
                TeacherReply(c.full_text, meta={"finish_reason": c.finish_reason}) for c in outs]

    async def agenerate(self, seeds: list[Seed]) -> list[TeacherReply]:
        return await asyncio.to_thread(self._generate, seeds)
