from hypothesis import given, settings
from hypothesis import strategies as st

from r2d.pivots import PIVOTS, R2D_TOKENS
from r2d.reasoning import Parsed, Step, StreamParser, parse, render, render_parts, visible_answer

CANON = "<think>\nThe user asks for a bomb. [RETHINK]\n\nThis is harmful. [UNSAFE]\n</think>\n\nI can't help. [SAFE]"


def test_parse_canonical():
    p = parse(CANON)
    assert p.well_formed and not p.problems
    assert [(s.text, s.pivot) for s in p.steps] == [("The user asks for a bomb.", "[RETHINK]"), ("This is harmful.", "[UNSAFE]")]
    assert p.answer == "I can't help." and p.answer_pivot == "[SAFE]"
    assert p.pivots == ["[RETHINK]", "[UNSAFE]", "[SAFE]"]
    assert p.first_unsafe() == 1
    assert render(p) == CANON


def test_paper_style_spacing_parses():
    t = "<think>\nOkay, so. [RETHINK]\n\nWait, harmful. [UNSAFE]\n\nRefuse. [SAFE] </think>\n\nI'm sorry. [SAFE]"
    p = parse(t)
    assert p.well_formed and len(p.steps) == 3 and p.answer == "I'm sorry."


def test_malformed_cases():
    assert "no <think>" in parse("Sure, here is how").problems
    assert parse("Sure, here is how").answer == "Sure, here is how"
    p = parse("<think>\nstep one [SAFE]\n\nstep two cut off")
    assert "unclosed <think>" in p.problems and p.answer == "" and p.steps[-1].pivot is None
    assert "missing <think>" in parse("step [SAFE]\n</think>\n\nans [SAFE]").problems
    assert "answer without pivot" in parse("<think>\ns [SAFE]\n</think>\n\nanswer").problems
    assert "pivot inside answer" in parse("<think>\ns [SAFE]\n</think>\n\na [UNSAFE] b [SAFE]").problems
    p = parse("<think>\ns [SAFE] [SAFE] [UNSAFE]\n</think>\n\na [SAFE]")
    assert any("repeated pivot" in x for x in p.problems) and p.steps == [Step("s", "[UNSAFE]")]
    assert "repeated <think>" in parse("<think><think>\ns [SAFE]\n</think>\n\na [SAFE]").problems
    assert visible_answer(CANON) == "I can't help."


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=200)
piece = st.sampled_from(list(R2D_TOKENS) + ["\n", " ", "\n\n", "word", "[SAF", "E]", "<thi", "nk>"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(texts, piece), max_size=30))
def test_parse_never_raises_and_stream_matches(parts):
    text = "".join(parts)
    p = parse(text)
    assert isinstance(p, Parsed)
    assert p.well_formed == (not p.problems)
    sp = StreamParser()
    for part in parts:
        sp.feed(part)
    assert sp.result() == p


clean = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=30)
word_text = st.lists(clean, min_size=1, max_size=5).map(" ".join).filter(
    lambda s: not any(t in s for t in R2D_TOKENS) and "<think" not in s and "</think" not in s)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(word_text, st.sampled_from(PIVOTS)), min_size=1, max_size=6), word_text,
       st.sampled_from(PIVOTS))
def test_render_parse_identity(steps, answer, answer_pivot):
    text = render_parts(steps, answer, answer_pivot)
    p = parse(text)
    assert p.well_formed, p.problems
    assert [(s.text, s.pivot) for s in p.steps] == steps
    assert (p.answer, p.answer_pivot) == (answer, answer_pivot)
    assert render(p) == text


def test_stream_reports_steps_as_pivots_arrive():
    sp = StreamParser()
    assert sp.feed("<think>\nThe user asks") == []
    new = sp.feed(" for a bomb. [RETH")
    assert new == []
    new = sp.feed("INK]\n\nThis is harmful. [UNSAFE]")
    assert [(s.text, s.pivot) for s in new] == [("The user asks for a bomb.", "[RETHINK]"), ("This is harmful.", "[UNSAFE]")]
    sp.feed("\n</think>\n\nNo. [SAFE]")
    assert sp.result().well_formed
