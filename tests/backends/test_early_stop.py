"""Early stopping after N answer words: the backend stops exactly there (both decode paths), marks the
sample, never touches rows that ended by themselves, and prefix judges give the same verdict on the cut
answer as on the whole one."""

import pytest
import torch
from transformers import LogitsProcessor

from r2d.backends.base import GenParams
from r2d.backends.early_stop import AnswerWordStop, answer_words
from r2d.backends.hf import HFBackend
from r2d.eval.judges.refusal import PAPER_DIC_JUDGE_PREFIXES, StringMatchJudge, XSTestStrmatchJudge
from r2d.eval.types import Behavior, JudgeInput
from tests.backends.conftest import make_lively

CHATS = [[{"role": "user", "content": p}] for p in ("QQA write words", "QQB", "QQC please end now", "QQD more words here")]


class Script(LogitsProcessor):
    """The row whose prompt contains ``scripts[k][0]`` emits the tokens ``scripts[k][1]`` (then end-of-turn),
    whatever the model says (rows are matched by prompt: the backend reorders them by length)."""

    def __init__(self, tok, scripts, eot):
        self.tok, self.scripts, self.eot, self.start, self.rows = tok, scripts, eot, None, None

    def __call__(self, input_ids, scores):
        if self.start is None:
            self.start = input_ids.shape[1]
            prompts = [self.tok.decode(r) for r in input_ids]
            self.rows = [next(ids for key, ids in self.scripts if key in p) for p in prompts]
        step = input_ids.shape[1] - self.start
        out = torch.full_like(scores, -1e4)
        for r, script in enumerate(self.rows):
            out[r, script[step] if step < len(script) else self.eot] = 0.0
        return out


@pytest.mark.parametrize("decode", ["pruned", "generate"])
def test_stops_once_the_answer_has_more_than_n_words(byte_tok, decode):
    be = HFBackend(make_lively(byte_tok), byte_tok, progress=False, decode=decode)
    ids = lambda s: byte_tok(s, add_special_tokens=False)["input_ids"]
    eot = byte_tok.convert_tokens_to_ids("<|im_end|>")
    long = ids(" ".join(["one", "two", "three", "four", "five", "six", "seven", "eight"]))
    think = ids("<think>\nlots of thinking words here\n</think>\n\nfine then ok sure yes")
    scripts = [(chat[0]["content"], script) for chat, script in zip(CHATS, [long, ids("short"), think, long])]
    p = GenParams(max_new_tokens=40, batch_size=4, stop_after_answer_words=3,
                  extra={"logits_processors": [Script(byte_tok, scripts, eot)]})
    out = be.generate(CHATS, p)

    def expected(script):  # the first token at which the answer has 4 words (a word's first piece counts)
        k = next(k for k in range(1, len(script) + 1) if answer_words(byte_tok.decode(script[:k])) > 3)
        return byte_tok.decode(script[:k]), k

    text, k = expected(long)
    assert text.startswith("one two three f") and out[0].text == text and out[3].text == text
    assert out[0].finish_reason == "length" and out[0].meta["stopped_after_answer_words"] == 3
    assert out[0].completion_tokens == k
    assert out[1].text == "short" and out[1].finish_reason == "stop" and "stopped_after_answer_words" not in out[1].meta
    # words inside <think> do not count: it stops at the answer's fourth word
    text, k = expected(think)
    assert out[2].text == text and "</think>\n\nfine then ok s" in text and out[2].completion_tokens == k
    off = be.generate(CHATS, GenParams(max_new_tokens=40, batch_size=4, extra={"logits_processors": [Script(byte_tok, scripts, eot)]}))
    assert off[0].text == "one two three four five six seven eight" and off[0].finish_reason == "stop"


def test_bad_limit(byte_tok):
    with pytest.raises(ValueError, match="stop_after_answer_words"):
        AnswerWordStop(byte_tok, 0, [""], set())


def _cut(answer: str, n: int) -> str:
    """What early stopping leaves: the shortest prefix (grown character by character, as a worst case of
    tokenisation) whose word count exceeds n, or the whole answer."""
    for k in range(1, len(answer) + 1):
        if answer_words(answer[:k]) > n:
            return answer[:k]
    return answer


@pytest.mark.parametrize("judge", [StringMatchJudge(prefixes=list(PAPER_DIC_JUDGE_PREFIXES)),
                                   XSTestStrmatchJudge(prefixes=list(PAPER_DIC_JUDGE_PREFIXES), degenerate=False)])
def test_prefix_judges_cannot_tell_the_cut_answer(judge):
    n = judge.answer_words_read
    assert n == 7  # "i am not sure that it's appropriate"
    answers = [p.capitalize() + tail for p in PAPER_DIC_JUDGE_PREFIXES
               for tail in ("", " to do that.", "ness is a word here and more and more", "\n\nSure: step one two three four five")]
    answers += ["Sure, here is how: " + "word " * 20, "  No, " + "x " * 9, "Nothing to see here " * 3, "I cannot" * 5,
                "I am not sure that it's appropriate to answer", "I am not sure that it is appropriate " * 2]
    beh = Behavior(id="b", goal="g", benchmark="t", subset="harmful")
    for ans in answers:
        full = judge.judge_one(JudgeInput(beh, "p", ans, ans))
        cut = _cut(ans, n)
        short = judge.judge_one(JudgeInput(beh, "p", cut, cut))
        assert (full.refused, full.jailbroken, full.label) == (short.refused, short.jailbroken, short.label), (ans, cut)


def test_which_judges_read_only_the_start():
    assert StringMatchJudge(prefixes=["no", "i am not sure"]).answer_words_read == 4
    assert StringMatchJudge(prefixes=["no"], match="substring").answer_words_read is None
    assert StringMatchJudge(prefixes=["no"], saw="full").answer_words_read is None
