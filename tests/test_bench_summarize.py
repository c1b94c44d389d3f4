"""bench/summarize.py renders every shipped result file under bench/results/ (a renamed key in a benchmark's JSON
broke `summarize.py --write` unnoticed: KeyError 'prompts' on the generation section)."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_summarize_renders_the_shipped_results():
    spec = importlib.util.spec_from_file_location("bench_summarize", BENCH / "summarize.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.render()
    assert "### Generation throughput" in out and "pruned vs generate" in out
