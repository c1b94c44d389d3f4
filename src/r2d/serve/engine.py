"""One async face over every backend: ``complete`` (a whole completion) and ``stream`` (text deltas,
then the whole completion).

- Backends with ``agenerate`` (the ``openai`` backend, i.e. proxy mode) are awaited directly; their
  own connection pool bounds what reaches the upstream. With ``astream`` (see ``upstream``) they
  stream token by token.
- Every other backend (hf, vllm, mock, ...) goes through the dynamic ``Batcher``; a stream from them
  is sent once the batch has generated (as one delta by default, ``chunk_chars`` for smaller ones),
  through the same policy filter.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from r2d.backends.base import Chat, Completion, GenParams
from r2d.infer.policies import Policy, policy_params
from r2d.serve.batching import Batcher

def text_chunks(text: str, size: int = 0) -> list[str]:
    """Deltas of an already complete ``text``: one piece (``size`` 0: nothing is gained by slicing a text
    that is all there, and the policy filter reads it once), or ``size``-character pieces."""
    if size > 0:
        return [text[i:i + size] for i in range(0, len(text), size)]
    return [text] if text else []


class Engine:
    def __init__(self, backend: Any, max_batch_size: int = 8, batch_wait_ms: float = 10.0,
                 chunk_chars: int = 0, on_batch: Any = None) -> None:
        self.backend = backend
        self.native_async = callable(getattr(backend, "agenerate", None))
        self.batcher = None if self.native_async else Batcher(backend, max_batch_size, batch_wait_ms / 1000.0,
                                                              on_batch=on_batch)
        self.chunk_chars = chunk_chars
        self._policy_params: dict[str, GenParams] = {}

    async def start(self) -> None:
        if self.batcher is not None:
            self.batcher.start()

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        aclose = getattr(self.backend, "aclose", None)
        if callable(aclose):
            await aclose()

    def check_policy(self, pol: Policy) -> None:
        """Raise ValueError if ``pol`` cannot run on this backend (e.g. needs logits)."""
        self._params_for(pol)

    def _params_for(self, pol: Policy) -> GenParams:
        # built once per policy, so identical hooks let requests share a batch
        if pol.name not in self._policy_params:
            self._policy_params[pol.name] = policy_params(self.backend, GenParams(stop=[]), pol)
        return self._policy_params[pol.name]

    def run_params(self, params: GenParams, pol: Policy) -> GenParams:
        base = self._params_for(pol)
        stop = list(params.stop) + [s for s in base.stop if s not in params.stop]
        return GenParams(max_new_tokens=params.max_new_tokens, temperature=params.temperature, top_p=params.top_p,
                         stop=stop, seed=params.seed, batch_size=1, extra={**params.extra, **base.extra})

    async def complete(self, chat: Chat, params: GenParams) -> Completion:
        if self.native_async:
            try:
                return (await self.backend.agenerate([chat], params))[0]
            except ConnectionError as e:
                return Completion(finish_reason="error", error=str(e), meta={"error_kind": "unreachable"})
        assert self.batcher is not None
        return await self.batcher.submit(chat, params)

    async def stream(self, chat: Chat, params: GenParams) -> AsyncIterator[str | Completion]:
        """Text deltas of the model's completion, then the ``Completion`` itself (last item; its
        ``full_text`` is the deltas joined). A failed call yields only the failed ``Completion``."""
        astream = getattr(self.backend, "astream", None)
        if callable(astream):
            async for item in astream(chat, params):
                yield item
            return
        c = await self.complete(chat, params)
        if c.error is None:
            for piece in text_chunks(c.full_text, self.chunk_chars):
                yield piece
        yield c
