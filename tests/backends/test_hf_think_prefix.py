"""A template that opens <think> in its generation prompt: the hf backend puts the opened block back in
front of the completion so the parser sees the reasoning as reasoning."""

from r2d.backends.base import GenParams
from r2d.backends.hf import HFBackend
from r2d.pivots import open_think_in_template


def test_hf_backend_restores_opened_think_block(tiny):
    model, tok = tiny
    chat = [{"role": "user", "content": "hello"}]
    plain = HFBackend(model=model, tokenizer=tok, progress=False).generate([chat], GenParams(max_new_tokens=4))[0]
    assert not plain.text.startswith("<think>")
    open_think_in_template(tok)
    c = HFBackend(model=model, tokenizer=tok, progress=False).generate([chat], GenParams(max_new_tokens=4))[0]
    assert c.ok and c.text.startswith("<think>\n") and c.meta["think_prefix"] == "<think>\n"
    # an assistant prefill is continued verbatim, nothing is added
    pre = chat + [{"role": "assistant", "content": "Sure"}]
    c2 = HFBackend(model=model, tokenizer=tok, progress=False).generate([pre], GenParams(max_new_tokens=2))[0]
    assert "think_prefix" not in c2.meta
