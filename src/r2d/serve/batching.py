"""Dynamic batching for in-process backends (hf, vllm, mock): concurrent requests are gathered for up
to ``wait_s`` (or until ``max_batch_size``) and generated as one ``backend.generate`` call.

One worker thread owns the backend (a torch model is not safe to drive from several threads), so
requests never run concurrently on it; while a batch generates, the next one gathers. Requests in one
gathering that need different generation settings (max tokens, sampling, stop strings, decode-time
policy hooks) are split into one call per setting. ``max_batch_size=1`` is batching off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from r2d.backends.base import Chat, Completion, GenParams

log = logging.getLogger("r2d.serve")


def params_key(params: GenParams) -> tuple:
    """Requests with equal keys can share a generate call."""
    extra = tuple(sorted((k, repr(v)) for k, v in params.extra.items()))
    return (params.max_new_tokens, params.temperature, params.top_p, tuple(params.stop), params.seed, extra)


@dataclasses.dataclass
class _Item:
    chat: Chat
    params: GenParams
    future: asyncio.Future
    t_submit: float


class Batcher:
    def __init__(self, backend: Any, max_batch_size: int = 8, wait_s: float = 0.01,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        self.backend = backend
        self.max_batch_size = max(1, int(max_batch_size))
        self.wait_s = max(0.0, float(wait_s))
        self.on_batch = on_batch  # (batch size, seconds) after each generate call, e.g. metrics
        self._queue: asyncio.Queue[_Item | None] | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="r2d-generate")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="r2d-batcher")

    async def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        if self._task is not None and self._queue is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        self._pool.shutdown(wait=True)

    async def submit(self, chat: Chat, params: GenParams) -> Completion:
        if self._queue is None:
            raise RuntimeError("batcher not started")
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item(chat, params, fut, time.perf_counter()))
        return await fut

    async def _gather(self, first: _Item) -> tuple[list[_Item], bool]:
        """The batch starting with ``first``; True as second item when the close sentinel was seen."""
        assert self._queue is not None
        batch = [first]
        deadline = time.perf_counter() + self.wait_s
        while len(batch) < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        closing = False
        while not closing:
            first = await self._queue.get()
            if first is None:
                break
            batch, closing = await self._gather(first)
            live = [it for it in batch if not it.future.done()]  # a cancelled (disconnected) request is skipped
            groups: dict[tuple, list[_Item]] = {}
            for it in live:
                groups.setdefault(params_key(it.params), []).append(it)
            for items in groups.values():
                params = dataclasses.replace(items[0].params, batch_size=len(items))
                t0 = time.perf_counter()
                try:
                    comps = await loop.run_in_executor(self._pool, self.backend.generate, [it.chat for it in items],
                                                       params)
                    if len(comps) != len(items):
                        raise RuntimeError(f"backend returned {len(comps)} completions for {len(items)} chats")
                except Exception as e:  # noqa: BLE001 - a failed call fails its requests, not the server
                    log.exception("generate failed for a batch of %d", len(items))
                    comps = [Completion(finish_reason="error", error=f"{type(e).__name__}: {e}") for _ in items]
                if self.on_batch is not None:
                    self.on_batch(len(items), time.perf_counter() - t0)
                for it, c in zip(items, comps):
                    if not it.future.done():
                        it.future.set_result(c)
