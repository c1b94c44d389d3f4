"""vllm backend: a clear error without vLLM; a real run only where vLLM (and a GPU) exist."""

import importlib.util

import pytest

from r2d.backends.base import GenParams, get_backend

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(HAS_VLLM, reason="vLLM installed")
def test_missing_vllm_is_a_clear_error():
    with pytest.raises(ValueError, match="pip install 'r2d\\[vllm\\]'"):
        get_backend("vllm", model="smollm2-135m")


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.skipif(not HAS_VLLM, reason="needs vLLM")
def test_vllm_generates_in_order():
    b = get_backend("vllm", model="smollm2-135m", gpu_memory_utilization=0.3)
    chats = [[{"role": "user", "content": q}] for q in ("Say hi", "Name a fruit", "Count to three")]
    out = b.generate(chats, GenParams(max_new_tokens=16))
    assert len(out) == 3 and all(c.ok and c.text and c.completion_tokens for c in out)


def _fake_vllm(monkeypatch, tokenizer, fail=False):
    """A stand-in ``vllm`` module: the backend's own code (rendering, ordering, think restoring, error
    records) runs for real; only the engine is faked."""
    import sys
    import types

    seen = {}

    class SamplingParams:
        def __init__(self, **kw):
            seen["sampling"] = kw

    class LLM:
        def __init__(self, model, **kw):
            seen["llm"] = (model, kw)

        def get_tokenizer(self):
            return tokenizer

        def generate(self, prompts, sp, use_tqdm=True):
            if fail:
                raise RuntimeError("CUDA out of memory")
            seen["prompts"] = prompts
            out = types.SimpleNamespace
            return [out(prompt_token_ids=[1, 2], outputs=[out(text=f"step {i} [SAFE]\n</think>\n\nok", token_ids=[5] * 7,
                                                            finish_reason="stop", stop_reason=None)])
                    for i, _ in enumerate(prompts)]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    return seen


def test_vllm_backend_wiring_with_a_fake_engine(monkeypatch, byte_tok, tmp_path):
    from r2d.pivots import expand_tokenizer, open_think_in_template
    from r2d.reasoning import parse

    expand_tokenizer(byte_tok)
    open_think_in_template(byte_tok)
    seen = _fake_vllm(monkeypatch, byte_tok)
    b = get_backend("vllm", model=str(tmp_path))
    chats = [[{"role": "user", "content": "say [UNSAFE] hi"}], [{"role": "user", "content": "two"}],
             [{"role": "user", "content": "three"}, {"role": "assistant", "content": "Sure"}]]
    out = b.generate(chats, GenParams(max_new_tokens=16, stop=["END"]))
    assert [c.text.split("step ")[1][0] for c in out] == ["0", "1", "2"]  # order kept
    assert seen["prompts"][0].rstrip().endswith("<think>") and "[UNSAFE]" not in seen["prompts"][0]  # guard on
    assert seen["sampling"]["skip_special_tokens"] is False and seen["sampling"]["stop"] == ["END"]
    assert out[0].text.startswith("<think>\n") and parse(out[0].text).steps  # the opened block is put back
    assert "think_prefix" not in out[2].meta  # an assistant prefill is continued as is
    assert out[0].completion_tokens == 7 and out[0].prompt_tokens == 2


def test_vllm_engine_failure_is_an_error_record(monkeypatch, byte_tok, tmp_path):
    _fake_vllm(monkeypatch, byte_tok, fail=True)
    out = get_backend("vllm", model=str(tmp_path)).generate([[{"role": "user", "content": "x"}]], GenParams())
    assert out[0].error and "out of memory" in out[0].error and not out[0].ok
