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
    # an assistant prefill that itself ends in <think> is continued verbatim: no second <think>
    be = HFBackend(model=model, tokenizer=tok, progress=False)
    pre = chat + [{"role": "assistant", "content": "<think>\n"}]
    assert be.render(pre).rstrip().endswith("<think>")
    c2 = be.generate([pre], GenParams(max_new_tokens=2))[0]
    assert "think_prefix" not in c2.meta and not c2.text.startswith("<think>")


def test_restore_think_rules():
    from r2d.backends.base import Completion, restore_think

    user = [{"role": "user", "content": "hi"}]
    assert restore_think(user, "p<think>\n", Completion(text="a")).text == "<think>\na"
    assert restore_think(user, "p", Completion(text="a")).text == "a"  # template does not open think
    failed = restore_think(user, "p<think>\n", Completion(error="boom", finish_reason="error"))
    assert failed.text == "" and "think_prefix" not in failed.meta  # an error stays an error
    prefill = user + [{"role": "assistant", "content": "<think>\n"}]
    assert restore_think(prefill, "p<think>\n", Completion(text="a")).text == "a"
