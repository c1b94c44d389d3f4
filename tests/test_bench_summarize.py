"""bench/summarize.py renders every shipped result file under bench/results/ (a renamed key in a benchmark's JSON
broke `summarize.py --write` unnoticed: KeyError 'prompts' on the generation section)."""

from tests.scripts import load_script


def test_summarize_renders_the_shipped_results():
    mod = load_script("bench/summarize.py")
    out = mod.render()
    assert "### Generation throughput" in out and "pruned vs generate" in out
