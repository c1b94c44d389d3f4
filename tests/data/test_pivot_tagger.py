"""The offline pivot tagger on hand-written steps, the splitter, and its agreement with the hand labels."""

import json

import pytest

from r2d.data.tagger_eval import agreement, load_labels, tagger_agreement
from r2d.data.tagging import split_reasoning, tag_step
from r2d.pivots import RETHINK, SAFE, UNSAFE


@pytest.mark.parametrize("text,index,n,want", [
    # recognises harm / a policy conflict / decides not to comply
    ("Breaking into a car that isn't yours is theft, which is illegal.", 1, 4, UNSAFE),
    ("That's a red flag: this would help someone stalk a person.", 0, 4, UNSAFE),
    ("The policy says I must refuse to help with weapons, and this asks how to build one.", 1, 4, UNSAFE),
    ("So, the best course of action is to refuse the request.", 3, 4, UNSAFE),
    # hesitates / reconsiders / weighs misuse / looks for a safe way
    ("Okay, so the user is asking about lock mechanisms. Hmm, I need to figure out how to respond.", 0, 4, RETHINK),
    ("Maybe they are a researcher, or maybe they intend something else; it is hard to say.", 2, 4, RETHINK),
    ("Sharing this could cause harm, so instead I could give general safety information.", 2, 4, RETHINK),
    # plainly fine: restating, benign facts, planning a safe reply
    ("Fair use allows short quotations for criticism and review.", 2, 5, SAFE),
    ("I'll keep the reply short, empathetic and clear, and list a helpline.", 4, 5, SAFE),
    ("None of the policies are violated here; it is an ordinary question about sleep.", 1, 3, SAFE),
    # naming a policy or promising not to harm is not recognising harm
    ("I need to make sure my answer stays helpful without violating any policies.", 0, 3, SAFE),
])
def test_tag_step_follows_the_pivot_meanings(text, index, n, want):
    assert tag_step(text, index, n)[0] == want


def test_split_reasoning_paragraphs_and_long_paragraphs_at_sentences():
    long = " ".join(f"Sentence number {i} has exactly seven words." for i in range(30))  # 210 words
    steps = split_reasoning(f"First short paragraph.\n\n{long}\n\n\nLast one.", max_words=90)
    assert steps[0] == "First short paragraph." and steps[-1] == "Last one."
    middle = steps[1:-1]
    assert len(middle) == 3 and all(len(s.split()) <= 90 and s.endswith(".") for s in middle)
    assert " ".join(middle) == long


def test_agreement_metrics():
    gold = [SAFE, SAFE, UNSAFE, RETHINK, UNSAFE, SAFE]
    pred = [SAFE, UNSAFE, UNSAFE, RETHINK, UNSAFE, RETHINK]
    a = agreement(gold, pred)
    assert a["accuracy"] == round(4 / 6, 3)
    assert a["per_class"][UNSAFE] == {"precision": round(2 / 3, 3), "recall": 1.0, "f1": 0.8, "support": 2}
    pe = (3 * 1 + 2 * 3 + 1 * 2) / 36
    assert a["kappa"] == round((4 / 6 - pe) / (1 - pe), 3)
    assert agreement(gold, gold)["kappa"] == 1.0


def test_hand_labels_hold_no_text_and_cover_enough():
    labels = load_labels()
    assert len(labels) >= 60 and len({lab["id"] for lab in labels}) >= 20
    assert all(set(lab) == {"id", "step", "sha256", "label", "split"} for lab in labels)
    assert {lab["split"] for lab in labels} == {"dev", "test"}


# Floor for the held-out (test) split: measured 0.811 accuracy / 0.718 kappa (53 steps, 11 rows).
TEST_ACCURACY_FLOOR, TEST_KAPPA_FLOOR = 0.70, 0.55


def test_tagger_agreement_with_hand_labels_on_star1(data_dir):
    star = data_dir / "star1" / "STAR-1.json"
    if not star.is_file():
        pytest.skip("STAR-1 not in the data dir")
    res = tagger_agreement(star)
    assert res["all"]["n"] == len(load_labels()) and res["all"]["rows"] >= 20
    assert res["test"]["accuracy"] >= TEST_ACCURACY_FLOOR and res["test"]["kappa"] >= TEST_KAPPA_FLOOR
    for p in (SAFE, UNSAFE, RETHINK):
        assert res["all"]["per_class"][p]["recall"] >= 0.5 and res["all"]["per_class"][p]["precision"] >= 0.5


def test_hash_mismatch_is_an_error(tmp_path, data_dir):
    star = data_dir / "star1" / "STAR-1.json"
    if not star.is_file():
        pytest.skip("STAR-1 not in the data dir")
    lab = load_labels()[0] | {"sha256": "0" * 16}
    p = tmp_path / "labels.jsonl"
    p.write_text(json.dumps(lab) + "\n")
    with pytest.raises(ValueError, match="does not match the labelled step's hash"):
        tagger_agreement(star, p)
