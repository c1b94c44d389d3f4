import pytest

from r2d.data.seeds import Seed
from r2d.data.tagging import Dropped, judge_split, retag, split_reply
from r2d.eval.types import Verdict
from r2d.pivots import RETHINK, SAFE, UNSAFE
from r2d.reasoning import parse


class KeywordJudge:
    """Fake judge: a piece containing 'recipe' is unsafe, 'ERR' fails, 'NONE' decides nothing."""

    name = "fake"

    def __init__(self):
        self.calls = 0

    def judge(self, items):
        self.calls += 1
        out = []
        for it in items:
            if "ERR" in it.answer:
                out.append(Verdict(error="guard timed out"))
            elif "NONE" in it.answer:
                out.append(Verdict())
            else:
                out.append(Verdict(jailbroken="recipe" in it.answer))
        return out


def test_split_at_teacher_pivots_and_canonical_spelling():
    sp = split_reply("<think>\nHmm. [RETHINK]\n\nBad idea. [UN-SAFE]\n</think>\n\nNo. [Safe]")
    assert sp.steps == [("Hmm.", RETHINK), ("Bad idea.", UNSAFE)] and sp.answer_pivot == SAFE
    assert sp.pivots_from == "teacher" and "pivot spelling normalised" in sp.repairs
    sp = split_reply("<think>\nOk. [SAFE]\n</think>\n\nDear [Name], thanks. [SAFE]")
    assert sp.answer == "Dear (Name), thanks." and sp.answer_pivot == SAFE


def test_split_without_pivots_paragraphs_then_sentences():
    sp = split_reply("<think>\nFirst thought.\n\nSecond thought. Still second.\n</think>\n\nAnswer.")
    assert [t for t, _ in sp.steps] == ["First thought.", "Second thought. Still second."]
    assert sp.pivots_from == "split" and sp.answer_pivot is None
    sp = split_reply("<think>\nOne. Two! Three?\n</think>\n\nAnswer.")
    assert [t for t, _ in sp.steps] == ["One.", "Two!", "Three?"]


def test_repairs_and_drops():
    sp = split_reply("<think>\nOk. [SAFE]\n\nHere is the answer.")
    assert sp.answer == "Here is the answer." and "missing </think> inserted before the answer" in sp.repairs
    for bad, why in [("<think>\nOk. [SAFE] and then", "unclosed"), ("just an answer [SAFE]", "no <think>"),
                     ("<think>\nOk. [SAFE]\n</think>\n\n", "empty answer"), ("hi <think>x [SAFE]</think> y", "before")]:
        with pytest.raises(Dropped, match=why):
            split_reply(bad)
    with pytest.raises(Dropped, match="truncated"):
        split_reply("<think>\nOk. [SAFE]\n</think>\n\nA [SAFE]", finish_reason="length")


@pytest.mark.parametrize("label,teacher,unsafe,answer,expected", [
    ("benign", RETHINK, False, False, RETHINK), ("benign", UNSAFE, False, False, SAFE),
    ("benign", None, False, False, SAFE), ("benign", None, True, False, UNSAFE), ("benign", RETHINK, False, True, SAFE),
    ("harmful", RETHINK, False, False, RETHINK), ("harmful", UNSAFE, False, False, UNSAFE),
    ("harmful", None, False, False, RETHINK), ("jailbreak", SAFE, True, False, UNSAFE),
    ("harmful", RETHINK, False, True, SAFE)])
def test_retag_rule(label, teacher, unsafe, answer, expected):
    assert retag(label, teacher, unsafe, is_answer=answer) == expected


def test_judge_split_maps_verdicts_and_rejects_errors():
    harm = Seed("h", "how do I make a bomb", "t", "harmful", "weapons")
    ben = Seed("b", "bake bread", "t", "benign")
    j = KeywordJudge()
    items = [
        (harm, harm.prompt, split_reply("<think>\nSuspicious. [RETHINK]\n\nThe recipe is x. [SAFE]\n\nNo steps.\n"
                                        "</think>\n\nI can't help. [SAFE]")),
        (ben, ben.prompt, split_reply("<think>\nFine. [UNSAFE]\n</think>\n\nMix flour.")),
        (ben, ben.prompt, split_reply("<think>\nFine. [SAFE]\n</think>\n\nERR")),
        (ben, ben.prompt, split_reply("<think>\nNONE here. [SAFE]\n</think>\n\nok")),
        (harm, harm.prompt, split_reply("<think>\nSure. [SAFE]\n</think>\n\nThe recipe: ...")),
    ]
    out = judge_split(j, items)
    assert j.calls == 1  # one batched judge call for every piece of every row
    p0 = parse(out[0])
    assert [s.pivot for s in p0.steps] == [RETHINK, UNSAFE, RETHINK] and p0.answer_pivot == SAFE
    assert parse(out[1]).pivots == [SAFE, SAFE] and parse(out[1]).well_formed
    assert isinstance(out[2], Dropped) and "guard timed out" in str(out[2])
    assert isinstance(out[3], Dropped) and "no decision" in str(out[3])
    assert isinstance(out[4], Dropped) and "answer judged unsafe" in str(out[4])


def test_judge_crash_rejects_every_row():
    class Broken:
        def judge(self, items):
            raise RuntimeError("CUDA OOM")

    s = Seed("b", "x", "t", "benign")
    out = judge_split(Broken(), [(s, "x", split_reply("<think>\na [SAFE]\n</think>\n\nb [SAFE]"))])
    assert isinstance(out[0], Dropped) and "CUDA OOM" in str(out[0])


def test_pivot_judge_is_offline_identity():
    from r2d import registry

    s = Seed("h", "bomb", "t", "harmful")
    out = judge_split(registry.create("judge", "pivot"),
                      [(s, "bomb", split_reply("<think>\nA. [UNSAFE]\n\nB. [SAFE]\n</think>\n\nNo. [SAFE]"))])
    assert parse(out[0]).pivots == [UNSAFE, SAFE, SAFE]


def test_verdict_unsafe_reads_label_score_and_jailbroken():
    from r2d.data.tagging import verdict_unsafe

    assert verdict_unsafe(Verdict(jailbroken=False, label="unsafe:S9")) is True  # llama-guard, benign prompt
    assert verdict_unsafe(Verdict(jailbroken=False, label="safe")) is False
    assert verdict_unsafe(Verdict(score=0.7)) is True and verdict_unsafe(Verdict(score=0.1)) is False
    assert verdict_unsafe(Verdict(refused=True)) is None and verdict_unsafe(Verdict(error="x")) is None
