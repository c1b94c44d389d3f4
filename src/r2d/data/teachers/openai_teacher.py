"""The ``openai`` teacher: any OpenAI-compatible chat endpoint serving a reasoning model (vLLM, SGLang,
DeepSeek API, ...), called concurrently with a rate limit and retries.

It sends the paper's safety-aware system prompt (App. A.1, verbatim) by default, or ``system_prompt``
/ ``system_prompt_file`` / ``system_prompt=""`` (no system turn, e.g. for models that want the
instruction in the user turn: then ``user_prefix`` is prepended to each prompt). Replies with the
reasoning in ``reasoning_content`` (or ``reasoning``) and replies with ``<think>`` inline are both
turned into one text. The HTTP side (pooled client, bounded concurrency shared by overlapping calls,
rate limit, retries with backoff) is ``r2d.backends.openai_backend.OpenAIBackend``; the system turn
is sent verbatim (the paper's prompt names the pivots), the seed prompt is pivot-neutralised.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from r2d.backends.base import Completion, GenParams
from r2d.backends.openai_backend import RETRY_STATUS, OpenAIBackend
from r2d.data.seeds import Seed
from r2d.data.teachers.base import TeacherReply, join_reasoning, paper_system_prompt
from r2d.registry import register


@register("teacher", "openai")
class OpenAITeacher:
    name = "openai"

    def __init__(self, model: str = "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", base_url: str | None = None,
                 api_key: str | None = None, system_prompt: str | None = None, system_prompt_file: str | None = None,
                 user_prefix: str = "", temperature: float = 0.6, top_p: float = 0.95, max_tokens: int = 2048,
                 concurrency: int = 16, rps: float | None = None, retries: int = 4, timeout: float = 600.0,
                 backoff: float = 1.0, **_: Any) -> None:
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        if system_prompt_file:
            p = Path(system_prompt_file)
            if not p.is_file():
                raise FileNotFoundError(f"openai teacher: system_prompt_file not found: {p}")
            system_prompt = p.read_text(encoding="utf-8").strip()
        self.system_prompt = paper_system_prompt() if system_prompt is None else system_prompt
        self.user_prefix = user_prefix
        self.temperature, self.top_p, self.max_tokens = temperature, top_p, max_tokens
        self.concurrency, self.rps, self.retries, self.timeout, self.backoff = concurrency, rps, retries, timeout, backoff
        self.calls = 0  # HTTP requests actually sent (retries included)
        self._backend = OpenAIBackend(
            model=model, base_url=self.base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY", "EMPTY"),
            concurrency=concurrency, rps=rps, max_retries=retries, timeout=timeout, backoff=backoff,
            trust_system=True, fail_fast=False)

    # The build engine overlaps one chunk's stragglers with the next chunk's requests (``prefetch``); the
    # backend shares one concurrency limit across overlapping calls, so at most ``concurrency`` are in flight.
    prefetch = True

    def cache_params(self) -> dict:
        return {"teacher": "openai", "model": self.model, "system_prompt": self.system_prompt,
                "user_prefix": self.user_prefix, "temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens}

    def provenance(self) -> dict:
        return self.cache_params() | {"base_url": self.base_url, "concurrency": self.concurrency, "rps": self.rps,
                                      "retries": self.retries}

    def messages(self, seed: Seed) -> list[dict]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return msgs + [{"role": "user", "content": self.user_prefix + seed.prompt}]

    @staticmethod
    def _reply(c: Completion) -> TeacherReply:
        if c.error:  # a timeout, a dead endpoint, 429/5xx or a garbled body may go away on a rerun
            retryable = c.meta.get("error_kind") != "http" or c.meta.get("status") in RETRY_STATUS
            return TeacherReply(error=c.error, retryable=retryable)
        text = join_reasoning(c.text, c.reasoning)
        if not text.strip():
            return TeacherReply(error="empty reply", retryable=True)
        return TeacherReply(text, meta={"finish_reason": c.finish_reason, "latency_s": round(c.latency_s, 3),
                                        "usage": {"prompt_tokens": c.prompt_tokens,
                                                  "completion_tokens": c.completion_tokens}})

    async def agenerate(self, seeds: list[Seed]) -> list[TeacherReply]:
        params = GenParams(max_new_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p)
        out = await self._backend.agenerate([self.messages(s) for s in seeds], params)
        self.calls += sum(c.meta.get("retries", 0) + 1 for c in out)
        return [self._reply(c) for c in out]
