import pytest

from r2d.pivots import expand_tokenizer, pivot_ids
from r2d.training.collate import IGNORE, PadCollator, SwardDataset, tokenize_row
from tests.training.helpers import synthetic_rows


def _row(answer="<think>\nStep one. [SAFE]\n</think>\n\nFine. [SAFE]"):
    return {"messages": [{"role": "system", "content": "Be helpful."},
                         {"role": "user", "content": "How to bake bread?"},
                         {"role": "assistant", "content": answer}]}


@pytest.mark.parametrize("which", ["byte_tok", "sp_tok"])
def test_prompt_masked_assistant_kept(which, request):
    tok = request.getfixturevalue(which)
    expand_tokenizer(tok)
    row = _row()
    ex = tokenize_row(tok, row, max_seq_len=512)
    prompt = tok.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert ex.labels[:n_prompt] == [IGNORE] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]
    text = tok.decode(ex.input_ids[n_prompt:])
    assert text.startswith("<think>") and "[SAFE]" in text
    eot = "<|im_end|>" if which == "byte_tok" else "<end_of_turn>"
    assert ex.labels[-1] == tok.convert_tokens_to_ids(eot)  # the model learns to stop
    ids = pivot_ids(tok)
    assert ex.labels.count(ids.safe) == 2 and ex.labels.count(ids.think_close) == 1


def test_truncation_keeps_assistant_start(byte_tok):
    expand_tokenizer(byte_tok)
    long_row = _row()
    long_row["messages"][1]["content"] = "bread " * 300
    ex = tokenize_row(byte_tok, long_row, max_seq_len=64)
    assert len(ex.input_ids) == 64
    first = next(i for i, lab in enumerate(ex.labels) if lab != IGNORE)
    assert byte_tok.decode(ex.input_ids[first:]).startswith("<think>")


def test_strip_pivots_removes_them(byte_tok):
    expand_tokenizer(byte_tok)
    ids = pivot_ids(byte_tok)
    ex = tokenize_row(byte_tok, _row(), 512, strip=True)
    assert not set(ex.input_ids) & set(ids.pivots)
    assert ids.think_open in ex.labels


def test_pivot_ids_when_think_already_in_vocab():
    from r2d.testing import byte_tokenizer

    tok = byte_tokenizer(extra_tokens=("<think>", "</think>"))
    think = tok.convert_tokens_to_ids("<think>")
    added = expand_tokenizer(tok)
    assert added == ["[SAFE]", "[UNSAFE]", "[RETHINK]"]
    ids = pivot_ids(tok)
    assert ids.think_open == think
    for s, i in ids.by_string().items():
        assert tok.convert_ids_to_tokens(i) == s
    ex = tokenize_row(tok, _row(), 512)
    assert ids.safe in ex.labels and ids.think_open in ex.labels


def test_dataset_and_collator(byte_tok):
    expand_tokenizer(byte_tok)
    ds = SwardDataset(synthetic_rows(4), byte_tok, 512)
    batch = PadCollator(byte_tok.pad_token_id)([ds[0], ds[1]])
    n = max(len(ds[0]["input_ids"]), len(ds[1]["input_ids"]))
    assert batch["input_ids"].shape == (2, n)
    assert ((batch["attention_mask"] == 0) <= (batch["labels"] == IGNORE)).all()



@pytest.mark.parametrize("which", ["byte_tok", "sp_tok"])
def test_opened_think_is_masked_as_prompt(which, request):
    from r2d.pivots import open_think_in_template

    tok = request.getfixturevalue(which)
    expand_tokenizer(tok)
    assert open_think_in_template(tok)
    ids = pivot_ids(tok)
    for reply in ("<think>\nStep one. [SAFE]\n</think>\n\nFine. [SAFE]", "<think> Step one. [SAFE]\n</think>\n\nFine. [SAFE]"):
        ex = tokenize_row(tok, _row(reply), max_seq_len=512)
        first = next(i for i, lab in enumerate(ex.labels) if lab != IGNORE)
        assert ids.think_open in ex.input_ids[:first]  # <think> sits in the masked prompt ...
        assert ids.think_open not in ex.labels  # ... and is never a training target
        assert tok.decode(ex.labels[first:first + 8]).lstrip().startswith("Step one")
        assert ex.labels.count(ids.safe) == 2 and ex.labels.count(ids.think_close) == 1
    with pytest.raises(ValueError, match="does not start with <think>"):
        tokenize_row(tok, _row("Fine, no reasoning. [SAFE]"), max_seq_len=512)
