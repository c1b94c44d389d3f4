"""Bad input -> 4xx with an OpenAI-style body; keys -> 401; overload -> 429 + Retry-After; backend
failure -> 5xx and the server keeps serving."""

import asyncio
import threading

import httpx
import openai
import pytest
from openai import OpenAI

from .conftest import RaisingBackend, SlowBackend

GOOD = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


_HTTP = httpx.Client(timeout=30)


def post(url, body=None, content=None, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if content is not None:
        headers["Content-Type"] = "application/json"
        return _HTTP.post(url + "/chat/completions", content=content, headers=headers)
    return _HTTP.post(url + "/chat/completions", json=body, headers=headers)


def assert_error(r, status, param=None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


def test_bad_input_is_400(serve, mock_backend):
    url = serve(mock_backend, policy="raw", allowed_policies=["hide-reasoning"], max_tokens_limit=64)
    assert "malformed JSON" in assert_error(post(url, content=b'{"model": "m", "messages": ['), 400)["message"]
    assert_error(post(url, {"model": "m"}), 400, "messages")
    assert_error(post(url, {"model": "m", "messages": []}), 400, "messages")
    assert_error(post(url, {"model": "m", "messages": [{"role": "wizard", "content": "hi"}]}), 400, "messages.0.role")
    assert_error(post(url, {"model": "m", "messages": [{"role": "user", "content": "  "}]}), 400, "messages[0].content")
    assert_error(post(url, {**GOOD, "max_tokens": 65}), 400, "max_tokens")
    assert_error(post(url, {**GOOD, "max_tokens": 0}), 400, "max_tokens")
    assert_error(post(url, {**GOOD, "temperature": 5}), 400, "temperature")
    assert_error(post(url, {**GOOD, "n": 2}), 400, "n")
    err = assert_error(post(url, {**GOOD, "r2d": {"policy": "raw-please"}}), 400, "r2d.policy")
    assert err["code"] == "policy_not_allowed"
    assert_error(post(url, {**GOOD, "r2d": {"policy": "drop-unsafe-steps"}}), 400, "r2d.policy")  # exists, not allowed
    img = {"type": "image_url", "image_url": {"url": "http://x"}}
    assert_error(post(url, {"model": "m", "messages": [{"role": "user", "content": [img]}]}), 400,
                 "messages[0].content[0]")
    assert_error(post(url, {**GOOD, "model": "other"}), 404, "model")
    assert post(url, {**GOOD, "max_tokens": 64, "r2d": {"policy": "hide-reasoning"}}).status_code == 200
    # the official client raises the matching exception classes
    cl = OpenAI(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        cl.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=1000)


def test_api_keys(serve, mock_backend):
    url = serve(mock_backend, api_keys=["s3cret", "other"])
    assert assert_error(post(url, GOOD), 401)["code"] == "invalid_api_key"
    assert_error(post(url, GOOD, key="wrong"), 401)
    assert httpx.get(url + "/models").status_code == 401
    assert post(url, GOOD, key="s3cret").status_code == 200 and post(url, GOOD, key="other").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=url, api_key="nope", max_retries=0).chat.completions.create(**GOOD)
    assert httpx.get(url[:-3] + "/health").status_code == 200  # liveness needs no key


def test_over_the_queue_is_429_with_retry_after(serve):
    backend = SlowBackend(delay=0.5)
    url = serve(backend, max_concurrency=2, max_batch_size=1, retry_after_s=3)

    async def burst():
        async with httpx.AsyncClient(timeout=30) as c:
            return await asyncio.gather(*(c.post(url + "/chat/completions", json=GOOD) for _ in range(6)))

    rs = asyncio.run(burst())
    codes = sorted(r.status_code for r in rs)
    assert codes.count(200) >= 2 and 429 in codes and set(codes) <= {200, 429}
    busy = next(r for r in rs if r.status_code == 429)
    assert busy.headers["retry-after"] == "3" and busy.json()["error"]["type"] == "rate_limit_error"
    assert post(url, GOOD).status_code == 200  # free again


def test_backend_failure_is_5xx_and_server_keeps_serving(serve, tmp_path):
    log = tmp_path / "log.jsonl"
    url = serve(RaisingBackend(rules=[("fail now", "!error")]), log_jsonl=str(log))
    err = assert_error(post(url, {"model": "m", "messages": [{"role": "user", "content": "fail now"}]}), 500)
    assert err["type"] == "server_error" and "scripted failure" in err["message"]
    assert_error(post(url, {"model": "m", "messages": [{"role": "user", "content": "crash"}]}), 500)
    r = post(url, {"model": "m", "stream": True, "messages": [{"role": "user", "content": "crash"}]})
    assert_error(r, 500)  # in-process backends generate before the stream starts: a real status
    assert post(url, GOOD).status_code == 200
    metrics = httpx.get(url[:-3] + "/metrics").text
    assert 'r2d_errors_total{kind="backend"} 3.0' in metrics
    assert '"status": 500' in log.read_text()


def test_graceful_shutdown_finishes_in_flight_requests(serve):
    url = serve(SlowBackend(delay=1.0), max_batch_size=1)
    result = {}

    def call():
        result["r"] = post(url, GOOD)

    t = threading.Thread(target=call)
    t.start()
    import time

    time.sleep(0.3)  # the request is generating now
    serve.server.should_exit = True
    t.join(10)
    assert result["r"].status_code == 200 and result["r"].json()["choices"][0]["message"]["content"]


def test_clients_leaving_mid_stream_free_their_slot(serve):
    url = serve(SlowBackend(delay=0.05), max_concurrency=2, stream_chunk_chars=3)
    body = {**GOOD, "stream": True}
    for _ in range(4):  # more than max_concurrency: a leaked slot would turn into 429s
        with httpx.Client(timeout=10) as c:
            with c.stream("POST", url + "/chat/completions", json=body) as r:
                assert r.status_code == 200
                next(r.iter_lines())  # read one event, then hang up
    import time

    deadline = time.time() + 5
    while httpx.get(url[:-3] + "/health").json()["in_flight"] and time.time() < deadline:
        time.sleep(0.05)
    assert httpx.get(url[:-3] + "/health").json()["in_flight"] == 0
    assert post(url, GOOD).status_code == 200
