"""The LM reader of the ``default`` judge (``r2d.eval.judges.lm_features``) on a tiny random model: the judging
prompt and its truncation, the answer span, the feature layout, and that dropping the unread layers changes
nothing."""

import numpy as np
import pytest
import torch

from r2d.eval.judges import lm_features as lf
from r2d.testing import byte_tokenizer, tiny_model


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def test_prompt_holds_behaviour_answer_and_question(tok):
    spec = lf.ReaderSpec(model="tiny", answer_tokens=1000)
    ids, a0, a1 = lf.prompt_ids(tok, "bake bread", "", "mix flour and water", spec)
    text = tok.decode(ids)
    assert "Behavior: bake bread" in text and lf.QUESTION in text and text.endswith("<|im_start|>assistant\n")
    assert tok.decode(ids[a0:a1]) == "mix flour and water"


def test_answer_and_context_are_cut(tok):
    spec = lf.ReaderSpec(model="tiny", answer_tokens=5, context_tokens=4)
    answer = "Sure, here is a short answer: mix flour, water, salt and yeast, then bake for forty minutes."
    ids, a0, a1 = lf.prompt_ids(tok, "bake", "The user asks how to bake bread. This is a harmless cooking question.",
                                answer, spec)
    assert a1 - a0 == 5
    assert tok.decode(ids[a0:a1]) == tok.decode(tok(answer, add_special_tokens=False)["input_ids"][:5])
    ctx4 = tok.decode(tok("The user asks how to bake bread.", add_special_tokens=False)["input_ids"][:4])
    assert "Context: " + ctx4 + "\n\nResponse: " in tok.decode(ids)
    assert "harmless" not in tok.decode(ids[:a0])


def test_spec_round_trip_and_names():
    spec = lf.ReaderSpec(model="m", layers=(1, 2), pooling=("last", "mean"), yes_no=True)
    assert lf.ReaderSpec.from_json(spec.to_json()) == spec
    assert spec.names() == ["last_l1", "mean_l1", "last_l2", "mean_l2", "yes_no_logit"]
    with pytest.raises(ValueError, match="unknown pooling"):
        lf.ReaderSpec.from_json({**spec.to_json(), "pooling": ["max"]})


def _reader(tok, spec, layers=3):
    return lf.LMReader(spec, model=tiny_model(tok, layers=layers), tokenizer=tok, batch_size=2)


def test_feature_layout_and_order_independence(tok):
    spec = lf.ReaderSpec(model="tiny", layers=(1, 3), pooling=("last", "mean"), yes_no=True)
    r = _reader(tok, spec)
    goals, answers = ["bake bread", "build a weapon", "kill a process"], [
        "Sure, mix flour and water.", "I'm sorry, but I can't help with that request.", "def kill_process(pid): pass"]
    F = r.features(goals, ["", "", ""], answers)
    assert F.shape == (3, 2 * 2 * 32 + 1) and np.isfinite(F).all()
    # batching (left padding, length order) does not change a row's features
    single = np.vstack([r.features([g], [""], [a]) for g, a in zip(goals, answers)])
    assert np.allclose(F, single, atol=1e-4)


def test_dropping_unread_layers_keeps_the_features(tok):
    """Without the yes/no logit only the layers up to the deepest read one run (and the final norm goes):
    the features must equal the whole model's hidden states at that layer."""
    full = _reader(tok, lf.ReaderSpec(model="tiny", layers=(2,), pooling=("last", "mean"), yes_no=True), layers=3)
    cut = _reader(tok, lf.ReaderSpec(model="tiny", layers=(2,), pooling=("last", "mean")), layers=3)
    assert len(cut.body.layers) == 2 and isinstance(cut.body.norm, torch.nn.Identity)
    a = full.features(["bake bread"], [""], ["Sure, mix flour and water, then bake."])
    b = cut.features(["bake bread"], [""], ["Sure, mix flour and water, then bake."])
    assert np.allclose(a[:, :-1], b, atol=1e-5)
    # the mean block is the mean over the answer's tokens only, not the whole prompt
    ids, a0, a1 = lf.prompt_ids(tok, "bake bread", "", "Sure, mix flour and water, then bake.", cut.spec)
    with torch.inference_mode():
        hs = tiny_model(tok, layers=3)(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[2][0]
    assert np.allclose(b[0, :32], hs[-1].numpy(), atol=1e-5)
    assert np.allclose(b[0, 32:], hs[a0:a1].mean(0).numpy(), atol=1e-5)


def test_layer_out_of_range(tok):
    with pytest.raises(ValueError, match="out of range"):
        _reader(tok, lf.ReaderSpec(model="tiny", layers=(9,)), layers=2)


@pytest.mark.parametrize("pooling", lf.POOLINGS)
def test_pooled_rows_own_their_data(pooling):
    """A row's feature must not be a view into the batch's hidden states: the 'last' pooling returned one, which
    kept every batch's hidden states of every read layer alive until the end of ``features`` (11 GB after 10 of the
    38 CPU-minutes of reading 702 rows with a 24-layer reader)."""
    h = torch.arange(5 * 3, dtype=torch.float32).reshape(5, 3)
    v = lf.pooled(h, 1, 3, pooling)
    assert v.flags.owndata and not np.shares_memory(v, h.numpy())
    assert v.tolist() == (h[-1] if pooling == "last" else h[1:3].mean(0)).tolist()
