"""bench/summarize.py renders every shipped result file under bench/results/ (a renamed key in a benchmark's JSON
broke `summarize.py --write` unnoticed: KeyError 'prompts' on the generation section)."""

from tests.scripts import load_script


def test_summarize_renders_the_shipped_results():
    mod = load_script("bench/summarize.py")
    out = mod.render()
    assert "### Generation throughput" in out and "pruned vs generate" in out
    assert "### The evaluation stage, old vs new hf path" in out and "Samples identical" in out


def test_eval_stage_compare_finds_a_changed_sample_and_verdict():
    mod = load_script("bench/eval_stage.py")
    s = {"k1": {"completion": "a", "completion_tokens": 3, "finish_reason": "stop", "error": None},
         "k2": {"completion": "b", "completion_tokens": 5, "finish_reason": "length", "error": None}}
    old = {"samples": s, "verdicts": {("k1", "j"): {"label": "refusal"}, ("k2", "j"): {"label": "compliance"}}}
    new = {"samples": {**s, "k2": {**s["k2"], "completion_tokens": 6}},
           "verdicts": {("k1", "j"): {"label": "refusal"}, ("k2", "j"): {"label": "degenerate"}}}
    same = mod.compare(old, old)
    assert same["samples_identical"] == 2 and same["verdicts_identical"] == 2
    diff = mod.compare(old, new)
    assert diff["mismatched"] == ["k2"] and diff["samples_identical"] == 1 and diff["verdicts_identical"] == 1
