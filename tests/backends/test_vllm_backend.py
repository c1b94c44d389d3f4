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
