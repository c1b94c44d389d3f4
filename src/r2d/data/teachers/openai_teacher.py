"""The ``openai`` teacher: any OpenAI-compatible chat endpoint serving a reasoning model (vLLM, SGLang,
DeepSeek API, ...), called concurrently with a rate limit and retries.

It sends the paper's safety-aware system prompt (App. A.1, verbatim) by default, or ``system_prompt``
/ ``system_prompt_file`` / ``system_prompt=""`` (no system turn, e.g. for models that want the
instruction in the user turn: then ``user_prefix`` is prepended to each prompt). Replies with the
reasoning in ``reasoning_content`` (or ``reasoning``) and replies with ``<think>`` inline are both
turned into one text. Talks HTTP with ``httpx`` directly (async, one pooled client).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

from r2d.data.seeds import Seed
from r2d.data.teachers.base import TeacherReply, join_reasoning, paper_system_prompt
from r2d.registry import register

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class RateLimiter:
    """At most ``rps`` request starts per second (evenly spaced); ``None``/0 = unlimited."""

    def __init__(self, rps: float | None) -> None:
        self.interval = 1.0 / rps if rps else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


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
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY", "EMPTY")
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
        self._shared: dict | None = None  # semaphore, limiter and client shared by overlapping calls
        self._users = 0

    # The build engine overlaps one chunk's stragglers with the next chunk's requests (``prefetch``); the
    # semaphore is shared so at most ``concurrency`` requests are in flight across overlapping calls.
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

    async def _one(self, client, sem: asyncio.Semaphore, limiter: RateLimiter, seed: Seed) -> TeacherReply:
        body = {"model": self.model, "messages": self.messages(seed), "temperature": self.temperature,
                "top_p": self.top_p, "max_tokens": self.max_tokens}
        import httpx

        last = "no attempt"
        async with sem:
            for attempt in range(self.retries + 1):
                if attempt:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
                await limiter.wait()
                t0 = time.perf_counter()
                self.calls += 1
                try:
                    r = await client.post(f"{self.base_url}/chat/completions", json=body)
                except (httpx.TimeoutException, httpx.TransportError) as e:
                    last = f"{type(e).__name__}: {e}"
                    continue
                if r.status_code in _RETRY_STATUS:
                    last = f"HTTP {r.status_code}: {r.text[:200]}"
                    continue
                if r.status_code != 200:
                    return TeacherReply(error=f"HTTP {r.status_code}: {r.text[:200]}", retryable=False)
                try:
                    data = r.json()
                    choice = data["choices"][0]
                    msg = choice["message"]
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    return TeacherReply(error=f"malformed response: {e}", retryable=True)
                reasoning = msg.get("reasoning_content") or msg.get("reasoning")
                text = join_reasoning(msg.get("content") or "", reasoning)
                if not text.strip():
                    return TeacherReply(error="empty reply", retryable=True)
                return TeacherReply(text, meta={"finish_reason": choice.get("finish_reason"),
                                                "latency_s": round(time.perf_counter() - t0, 3),
                                                "usage": data.get("usage")})
        return TeacherReply(error=f"gave up after {self.retries + 1} attempts: {last}", retryable=True)

    def _acquire(self) -> dict:
        import httpx

        loop = asyncio.get_running_loop()
        if self._shared is None or self._shared["loop"] is not loop:
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._shared = {"loop": loop, "sem": asyncio.Semaphore(self.concurrency), "limiter": RateLimiter(self.rps),
                            "client": httpx.AsyncClient(timeout=self.timeout, limits=limits,
                                                        headers={"Authorization": f"Bearer {self._api_key}"})}
            self._users = 0
        self._users += 1
        return self._shared

    async def _release(self, shared: dict) -> None:
        self._users -= 1
        if self._users == 0 and self._shared is shared:
            self._shared = None
            await shared["client"].aclose()

    async def agenerate(self, seeds: list[Seed]) -> list[TeacherReply]:
        sh = self._acquire()
        try:
            return list(await asyncio.gather(*(self._one(sh["client"], sh["sem"], sh["limiter"], s) for s in seeds)))
        finally:
            await self._release(sh)
