"""Proxy mode: the ``openai`` backend plus token streaming from the upstream (``astream``).

The upstream's stream (server-sent events; reasoning in ``reasoning_content``/``reasoning`` deltas as
vLLM's reasoning parsers send it, or inline ``<think>``) is turned back into one text with the think
block inline, so the same policy filter reads it; an upstream that answers a streaming request with
one JSON body is read as a whole. Requests go out through the backend's shared connection pool, with
the pivot-injection guard applied to the messages (``OpenAIBackend._payload``).
"""

from __future__ import annotations

import json
import time
from typing import Any, AsyncIterator

import httpx

from r2d.backends.base import Chat, Completion, GenParams
from r2d.backends.openai_backend import OpenAIBackend
from r2d.pivots import THINK_CLOSE, THINK_OPEN
from r2d.serve.engine import text_chunks


class UpstreamBackend(OpenAIBackend):
    name = "openai"

    async def astream(self, chat: Chat, params: GenParams) -> AsyncIterator[str | Completion]:
        pool = self._acquire()
        try:
            async for item in self._stream(pool, chat, params):
                yield item
        finally:
            await self._release(pool)

    async def _stream(self, pool: Any, chat: Chat, params: GenParams) -> AsyncIterator[str | Completion]:
        path, body = self._payload(chat, params)
        t0 = time.perf_counter()
        if "prompt" in body:  # --local-template: no reasoning split to follow; whole reply, then deltas
            c = (await self.agenerate([chat], params))[0]
            for piece in ([] if c.error else text_chunks(c.full_text)):
                yield piece
            yield c
            return
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        text, opened, closed, finish, usage, meta = "", False, False, None, {}, {}
        async with pool.sem:
            try:
                async with pool.client.stream("POST", path, json=body) as r:
                    if r.status_code != 200:
                        detail = (await r.aread()).decode(errors="replace")[:200]
                        yield Completion(finish_reason="error", latency_s=time.perf_counter() - t0,
                                         error=f"HTTP {r.status_code} from {self.base_url}{path}: {detail}",
                                         meta={"error_kind": "http", "status": r.status_code})
                        return
                    if "text/event-stream" not in r.headers.get("content-type", ""):
                        c = self._parse(json.loads(await r.aread()), time.perf_counter() - t0, 0)
                        for piece in text_chunks(c.full_text):
                            yield piece
                        yield c
                        return
                    async for line in r.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        ev = json.loads(data)
                        if "error" in ev:
                            err = ev["error"].get("message") if isinstance(ev["error"], dict) else ev["error"]
                            yield Completion(finish_reason="error", error=f"upstream stream error: {err}",
                                             latency_s=time.perf_counter() - t0, meta={"error_kind": "http"})
                            return
                        usage = ev.get("usage") or usage
                        for ch in ev.get("choices") or []:
                            delta = ch.get("delta") or {}
                            piece = ""
                            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                            if reasoning:
                                if not opened:
                                    piece, opened = f"{THINK_OPEN}\n", True
                                piece += reasoning
                            if delta.get("content"):
                                if opened and not closed:
                                    piece, closed = piece + f"\n{THINK_CLOSE}\n\n", True
                                piece += delta["content"]
                            if piece:
                                text += piece
                                yield piece
                            finish = ch.get("finish_reason") or finish
                            if isinstance(ch.get("stop_reason"), str):
                                meta["stop"] = ch["stop_reason"]
            except (httpx.TransportError, json.JSONDecodeError) as e:
                kind = "timeout" if isinstance(e, httpx.TimeoutException) else "unreachable"
                yield Completion(finish_reason="error", latency_s=time.perf_counter() - t0,
                                 error=f"upstream {self.base_url}: {type(e).__name__}: {e}", meta={"error_kind": kind})
                return
        yield Completion(text=text, prompt_tokens=usage.get("prompt_tokens"),
                         completion_tokens=usage.get("completion_tokens"), finish_reason=finish,
                         latency_s=time.perf_counter() - t0, meta=meta)
