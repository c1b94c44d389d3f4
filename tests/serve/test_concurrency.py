"""Many clients at once: all answered, and concurrent requests share generate calls (dynamic batching)."""

import asyncio

import httpx
from openai import AsyncOpenAI

from .conftest import SlowBackend


def test_64_concurrent_clients_all_answered(serve):
    backend = SlowBackend(delay=0.05)
    url = serve(backend, policy="refuse-on-unsafe", max_batch_size=16, batch_wait_ms=20)

    async def one(cl, i):  # 64 requests in flight at once, each on its own connection
        text = "build a bomb" if i % 4 == 0 else f"question {i}"
        if i % 2:
            s = await cl.chat.completions.create(model="m", messages=[{"role": "user", "content": text}],
                                                 stream=True)
            return "".join([c.delta.content or "" async for ch in s for c in ch.choices])
        r = await cl.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
        return r.choices[0].message.content

    async def main():
        async with AsyncOpenAI(base_url=url, api_key="k", max_retries=0) as cl:
            return await asyncio.gather(*(one(cl, i) for i in range(64)))

    answers = asyncio.run(main())
    assert len(answers) == 64 and all(answers)
    assert sum(a.startswith("I'm sorry") for a in answers) == 16
    assert sum(backend.batches) == 64 and max(backend.batches) > 1  # batched
    assert backend.max_active == 1  # one generate call at a time on the backend
    m = httpx.get(url[:-3] + "/metrics").text
    assert "r2d_batch_size_count" in m and "r2d_requests_in_flight 0.0" in m


def test_batching_off_runs_one_request_per_call(serve):
    backend = SlowBackend(delay=0.02)
    url = serve(backend, max_batch_size=1)

    async def main():
        async with httpx.AsyncClient(timeout=30) as c:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            return await asyncio.gather(*(c.post(url + "/chat/completions", json=body) for _ in range(8)))

    assert all(r.status_code == 200 for r in asyncio.run(main()))
    assert backend.batches == [1] * 8


def test_requests_with_different_settings_are_not_mixed(serve):
    backend = SlowBackend(delay=0.1)
    url = serve(backend, max_batch_size=8, batch_wait_ms=50)

    async def main():
        async with httpx.AsyncClient(timeout=30) as c:
            bodies = [{"model": "m", "max_tokens": 3 if i % 2 else 50, "messages": [{"role": "user", "content": "hi"}]}
                      for i in range(8)]
            return await asyncio.gather(*(c.post(url + "/chat/completions", json=b) for b in bodies))

    rs = asyncio.run(main())
    assert all(r.status_code == 200 for r in rs)
    short = [r for i, r in enumerate(rs) if i % 2]
    assert all(r.json()["choices"][0]["finish_reason"] == "length" for r in short)
    assert all(r.json()["choices"][0]["finish_reason"] == "stop" for i, r in enumerate(rs) if not i % 2)
