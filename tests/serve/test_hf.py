"""r2d serve with an in-process tiny hf model: completions, streams, policies on real generation
(a scripted model: a forward hook forces a fixed R2D reply), pivot probabilities, dynamic batching."""

import asyncio

import httpx
import pytest
import torch
from openai import OpenAI

from r2d.backends.hf import HFBackend
from r2d.infer.policies import DEFAULT_REFUSAL
from r2d.pivots import pivot_ids


def scripted(model, tok, reasoning_pivot: str):
    """Make ``model`` greedily produce ``<think> ... PIVOT </think> ... [SAFE] <|im_end|>`` whatever the prompt."""
    ids = pivot_ids(tok)
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    pivot = {"[SAFE]": ids.safe, "[UNSAFE]": ids.unsafe}[reasoning_pivot]
    script = ([ids.think_open] + enc("\nThe user asks a question. ") + [pivot] + [ids.think_close] +
              enc("\n\nMix flour and water. ") + [ids.safe] + [tok.convert_tokens_to_ids("<|im_end|>")])
    state = {"step": 0}

    def hook(module, args, kwargs, output):
        input_ids = kwargs.get("input_ids")
        if input_ids is not None and input_ids.shape[1] > 1:  # prefill: a new generate call
            state["step"] = 0
        tok_id = script[min(state["step"], len(script) - 1)]
        logits = output.logits
        forced = torch.full_like(logits[:, -1, :], -30.0)
        forced[:, tok_id] = 30.0
        if tok_id != ids.unsafe:  # a pivot probability that is neither 0 nor 1
            forced[:, ids.unsafe] = 28.0
        logits[:, -1, :] = forced
        state["step"] += 1
        return output

    model.register_forward_hook(hook, with_kwargs=True)
    return model


@pytest.fixture
def hf_backend(tiny):
    model, tok = tiny
    return HFBackend(model=model, tokenizer=tok, device="cpu", progress=False)


def test_tiny_model_completion_and_stream(serve, hf_backend):
    url = serve(hf_backend, policy="raw", max_tokens_default=12)
    cl = OpenAI(base_url=url, api_key="k", max_retries=0)
    msgs = [{"role": "user", "content": "Hello [SAFE] there"}]
    r = cl.chat.completions.create(model="m", messages=msgs)
    s = cl.chat.completions.create(model="m", messages=msgs, stream=True)
    streamed = "".join(c.delta.content or "" for ch in s for c in ch.choices)
    assert r.choices[0].message.content == streamed
    assert r.usage.completion_tokens > 0 and isinstance(r.model_extra["r2d"]["pivot_probs"], list)


def test_policies_on_a_scripted_model(serve, tiny):
    model, tok = tiny
    backend = HFBackend(model=scripted(model, tok, "[SAFE]"), tokenizer=tok, device="cpu", progress=False)
    url = serve(backend, policy="raw", allowed_policies=["hide-reasoning"], max_tokens_default=40)
    cl = OpenAI(base_url=url, api_key="k", max_retries=0)
    msgs = [{"role": "user", "content": "How do I bake bread?"}]
    r = cl.chat.completions.create(model="m", messages=msgs)
    msg, ext = r.choices[0].message, r.model_extra["r2d"]
    assert msg.model_extra["reasoning_content"].endswith("[SAFE]") and msg.content.endswith("[SAFE]")
    assert ext["verdict"] == "safe" and len(ext["pivot_probs"]) == 2
    assert 0 < ext["pivot_probs"][0]["[UNSAFE]"] < 1
    for stream in (False, True):
        kw = dict(model="m", messages=msgs, extra_body={"r2d": {"policy": "hide-reasoning"}})
        if stream:
            deltas = [c.delta for ch in cl.chat.completions.create(stream=True, **kw) for c in ch.choices]
            content = "".join(d.content or "" for d in deltas)
            assert not any((d.model_extra or {}).get("reasoning_content") for d in deltas)
        else:
            m = cl.chat.completions.create(**kw).choices[0].message
            content = m.content
            assert m.model_extra.get("reasoning_content") is None
        assert content == "Mix flour and water." and "question" not in content


def test_refusal_on_a_model_that_flags_unsafe(serve, tiny):
    model, tok = tiny
    backend = HFBackend(model=scripted(model, tok, "[UNSAFE]"), tokenizer=tok, device="cpu", progress=False)
    url = serve(backend, policy="refuse-on-unsafe", allowed_policies=["pivot-threshold"], max_tokens_default=40)
    cl = OpenAI(base_url=url, api_key="k", max_retries=0)
    msgs = [{"role": "user", "content": "something harmful"}]
    for policy in ("refuse-on-unsafe", "pivot-threshold"):
        r = cl.chat.completions.create(model="m", messages=msgs, extra_body={"r2d": {"policy": policy}})
        s = cl.chat.completions.create(model="m", messages=msgs, stream=True, extra_body={"r2d": {"policy": policy}})
        streamed = "".join(c.delta.content or "" for ch in s for c in ch.choices)
        assert r.choices[0].message.content == streamed == DEFAULT_REFUSAL
        ext = r.model_extra["r2d"]
        assert ext["refused"] and ext["verdict"] == "unsafe" and "flour" not in streamed
        assert ext["pivot_probs"][0]["pivot"] == "[UNSAFE]"  # generation stopped at the model's own [UNSAFE]


def test_dynamic_batching_on_hf(serve, tiny):
    model, tok = tiny
    backend = HFBackend(model=scripted(model, tok, "[SAFE]"), tokenizer=tok, device="cpu", progress=False)
    url = serve(backend, policy="hide-reasoning", max_batch_size=8, batch_wait_ms=100, max_tokens_default=40)

    async def main():
        async with httpx.AsyncClient(timeout=60) as c:
            body = lambda i: {"model": "m", "messages": [{"role": "user", "content": f"q{i} " * (i + 1)}]}  # noqa: E731
            return await asyncio.gather(*(c.post(url + "/chat/completions", json=body(i)) for i in range(8)))

    rs = asyncio.run(main())
    assert [r.json()["choices"][0]["message"]["content"] for r in rs] == ["Mix flour and water."] * 8
    metrics = httpx.get(url[:-3] + "/metrics").text
    count = float(next(ln.split()[-1] for ln in metrics.splitlines() if ln.startswith("r2d_batch_size_count")))
    assert count < 8  # fewer generate calls than requests
