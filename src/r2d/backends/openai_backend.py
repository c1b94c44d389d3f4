"""OpenAI-compatible HTTP backend (vLLM, SGLang, DeepSeek, OpenAI) over ``httpx``.

Requests run concurrently (at most ``concurrency`` in flight per backend, shared by overlapping
``agenerate`` calls on one event loop, optionally at most ``rps`` request starts per second), with
retries and exponential backoff (honouring ``Retry-After``) on 429, 5xx, timeouts and connection
errors. A request that still fails becomes a ``Completion`` with ``error`` set (``meta["error_kind"]``:
http, timeout, unreachable, bad response; ``meta["status"]`` for http; ``meta["retries"]`` always). If *every* request of a call could not reach the server, ``generate`` raises one
``ConnectionError`` line instead (a dead endpoint is a setup error, not a batch of records);
``fail_fast=False`` returns the error records in that case too.
Split-out reasoning (``reasoning_content`` or ``reasoning``) lands in ``Completion.reasoning``.

``local_template=True`` renders the chat template here (r2d's tokenizer for ``tokenizer`` or
``model``) after the pivot-injection guard and calls ``/v1/completions`` with the raw prompt, so
the server cannot apply a template that lets user text through unneutralised. ``trust_system=True``
sends system turns verbatim (a caller-written prompt that names the pivots); user turns stay guarded.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from r2d.backends.base import Chat, Completion, GenParams, prepare_messages, render_prompt, restore_think
from r2d.registry import register

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


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


@dataclass
class _Pool:
    """Client, concurrency limit and rate limiter shared by the overlapping calls on one event loop."""

    client: httpx.AsyncClient
    sem: asyncio.Semaphore
    limiter: RateLimiter
    users: int = 0


@register("backend", "openai")
class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, timeout: float = 120.0, max_retries: int = 4, backoff: float = 0.5,
                 local_template: bool = False, tokenizer: str | None = None, guard: bool = True,
                 extra_body: dict | None = None, fail_fast: bool = True, trust_system: bool = False,
                 rps: float | None = None) -> None:
        self.model = model or os.environ.get("R2D_MODEL") or "default"
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1").rstrip("/")
        self.api_key = api_key or os.environ.get("R2D_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.guard = guard
        self.trust_system = trust_system
        self.rps = rps
        self._pools: dict[asyncio.AbstractEventLoop, _Pool] = {}
        self.extra_body = extra_body or {}
        self.fail_fast = fail_fast
        self.local_template = local_template
        self._tokenizer = None
        if local_template:
            from r2d.models import load_tokenizer

            self._tokenizer = load_tokenizer(tokenizer or model)

    # --- sync / async entry points -----------------------------------------------------------
    def generate(self, chats: list[Chat], params: GenParams) -> list[Completion]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(chats, params))
        # called from inside a running loop (e.g. a notebook): run ours in a worker thread
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as ex:
            return ex.submit(asyncio.run, self.agenerate(chats, params)).result()

    async def agenerate(self, chats: list[Chat], params: GenParams) -> list[Completion]:
        pool = self._acquire()
        try:
            async def one(chat: Chat) -> Completion:
                async with pool.sem:
                    return await self._request(pool.client, chat, params, pool.limiter)

            out = list(await asyncio.gather(*(one(c) for c in chats)))
        finally:
            await self._release(pool)
        if self.fail_fast and out and all(c.meta.get("error_kind") == "unreachable" for c in out):
            raise ConnectionError(f"openai backend: all {len(out)} requests to {self.base_url} failed: {out[0].error}")
        return out

    def _acquire(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            client = httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {self.api_key}"},
                                       limits=limits, timeout=httpx.Timeout(self.timeout))
            pool = self._pools[loop] = _Pool(client, asyncio.Semaphore(self.concurrency), RateLimiter(self.rps))
        pool.users += 1
        return pool

    async def _release(self, pool: _Pool) -> None:
        pool.users -= 1
        if pool.users == 0:
            self._pools.pop(asyncio.get_running_loop(), None)
            await pool.client.aclose()

    # --- one request -------------------------------------------------------------------------
    def _payload(self, chat: Chat, params: GenParams) -> tuple[str, dict]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": params.max_new_tokens,
                                "temperature": params.temperature, "top_p": params.top_p}
        if params.temperature > 0:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        body.update(self.extra_body)
        if self.local_template:
            body.update(prompt=render_prompt(self._tokenizer, chat, self.guard, self.trust_system),
                        skip_special_tokens=False)
            return "/completions", body
        body["messages"] = prepare_messages(chat, self.guard, self.trust_system)
        return "/chat/completions", body

    async def _request(self, client: httpx.AsyncClient, chat: Chat, params: GenParams,
                       limiter: RateLimiter | None = None) -> Completion:
        path, body = self._payload(chat, params)
        t0 = time.perf_counter()
        err, kind, status = "", "", None
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * (2 ** attempt) * (0.75 + 0.5 * random.random())
            if limiter is not None:
                await limiter.wait()
            status = None
            try:
                r = await client.post(path, json=body)
            except httpx.TimeoutException as e:
                err, kind = f"timeout after {self.timeout:g}s ({type(e).__name__})", "timeout"
            except httpx.TransportError as e:
                err, kind = f"cannot reach {self.base_url}: {type(e).__name__}: {e}", "unreachable"
            else:
                if r.status_code == 200:
                    try:
                        comp = self._parse(r.json(), time.perf_counter() - t0, attempt)
                        return restore_think(chat, body["prompt"], comp) if "prompt" in body else comp
                    except (ValueError, KeyError, IndexError, TypeError) as e:
                        return Completion(finish_reason="error", latency_s=time.perf_counter() - t0,
                                          error=f"bad response from {self.base_url}{path}: {type(e).__name__}: {e}",
                                          meta={"error_kind": "bad response", "retries": attempt})
                status = r.status_code
                err, kind = f"HTTP {status} from {self.base_url}{path}: {r.text[:200]}", "http"
                if r.status_code not in RETRY_STATUS:
                    break
                retry_after = r.headers.get("retry-after")
                if retry_after:
                    try:
                        wait = min(float(retry_after), 60.0)
                    except ValueError:
                        pass
            if attempt < self.max_retries:
                await asyncio.sleep(wait)
        meta: dict[str, Any] = {"error_kind": kind, "retries": attempt}
        if status is not None:
            meta["status"] = status
        return Completion(finish_reason="error", error=err, latency_s=time.perf_counter() - t0, meta=meta)

    @staticmethod
    def _parse(data: dict, latency: float, attempt: int) -> Completion:
        choice = data["choices"][0]
        if "message" in choice:
            msg = choice["message"] or {}
            text = msg.get("content") or ""
            reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        else:
            text, reasoning = choice.get("text") or "", None
        usage = data.get("usage") or {}
        meta: dict[str, Any] = {"retries": attempt}
        if isinstance(choice.get("stop_reason"), str):  # vLLM/SGLang: which stop string ended it
            meta["stop"] = choice["stop_reason"]
        return Completion(text=text, reasoning=reasoning, prompt_tokens=usage.get("prompt_tokens"),
                          completion_tokens=usage.get("completion_tokens"),
                          finish_reason=choice.get("finish_reason"), latency_s=latency, meta=meta)
