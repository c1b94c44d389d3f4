"""scripts/results_tables.py reads the schema r2d eval writes: the MMLU summary of ``r2d.eval.ability.summarize``
and Alpaca helpfulness cells (whose benchmark label carries its params: ``alpaca:exclude=...``). Both tables were
silently empty or failing on real results.json files."""

import json

import pytest

from r2d.eval import ability
from tests.scripts import load_script


def _module():
    return load_script("scripts/results_tables.py")


def test_mmlu_and_helpfulness_tables_from_real_schema(tmp_path, capsys):
    rows = lambda right: [{"id": str(i), "category": "stem" if i % 2 else "other", "correct": i < right}  # noqa: E731
                          for i in range(10)]
    mmlu = ability.summarize({"base": rows(4), "r2d": rows(3)}, "base")
    cell = {"model": "r2d", "defense": "none", "policy": "raw", "benchmark": "alpaca:exclude=train.jsonl",
            "subset": "benign", "attack": "direct", "judge": "default", "n": 10, "refused": 2, "refusal_rate": 0.2,
            "n_no_answer": 1, "n_degenerate": 3, "answer_words_mean": 15.0}
    (tmp_path / "results.json").write_text(json.dumps({"cells": [cell], "words": [],
                                                       "general_ability": {"mmlu": {"models": mmlu}}}))
    assert _module().main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| base | 10 | 40.0%" in out and "| r2d | 10 | 30.0%" in out and "-10.0 [" in out and "vs base" in out
    assert "other 20.0%" in out or "other 40.0%" in out
    # complied = neither refused (2), nor without an answer (1), nor degenerate (3): 4 of 10
    assert "| r2d | default | 10 | 20.0% | 40.0% | 1 | 3 | 15 |" in out


def test_mmlu_summary_keys_used_by_the_table_exist():
    m = ability.summarize({"a": [{"id": "1", "category": "stem", "correct": True}],
                           "b": [{"id": "1", "category": "stem", "correct": False}]}, "a")["b"]
    for k in ("accuracy_ci", "by_category"):
        assert k in m
    for k in ("diff_ci", "ref_right_model_wrong", "ref_wrong_model_right", "mcnemar_p", "reference"):
        assert k in m["paired"]
    with pytest.raises(KeyError):
        m["ci"]


def test_words_table_states_the_cells_sample_size():
    mod = _module()
    cells = [{"model": "m", "defense": "none", "policy": "raw", "benchmark": "jbb", "subset": sub, "attack": "direct",
              "judge": "default", "n": 50, "words_mean": 10.0, "words_std": 1.0, "answer_words_mean": 5.0,
              "answer_words_std": 1.0, "reasoning_words_mean": 5.0, "reasoning_words_std": 1.0}
             for sub in ("harmful", "benign")]
    assert "(JBB direct, 50 harmful / 50 benign)" in mod.cell_words_table(cells, ["m"])


def test_refusal_table_shows_xstest_replies_in_no_class():
    mod = _module()
    cell = {"model": "m", "defense": "none", "policy": "raw", "benchmark": "xstest", "subset": "unsafe",
            "attack": "direct", "judge": "xstest-strmatch", "n": 20, "full_compliance": 0.8, "full_refusal": 0.05,
            "n_no_answer": 1, "n_degenerate": 2}
    out = mod.refusal_table([cell], ["m"])
    assert "| XSTest unsafe: full compliance (lower is better) | 20 | 80.0% |" in out
    assert "| XSTest unsafe: full refusal | 20 | 5.0% |" in out
    assert "| XSTest unsafe: no answer / degenerate | 20 | 1 / 2 |" in out


def test_asr_mean_row_is_the_reports_mean_over_shared_attacks(tmp_path, capsys):
    """The script's mean row uses the report's one definition (r2d.report.tables.AsrGrid.means): an attack that one
    shown arm lacks is left out for every arm and named, instead of blanking that arm's mean."""
    def cell(model, attack, jb, n=10, deg=0):
        return {"model": model, "defense": "none", "policy": "raw", "benchmark": "jbb", "subset": "harmful",
                "attack": attack, "judge": "default", "n": n, "jailbroken": jb, "asr": jb / n, "asr_ci": [0.0, 1.0],
                "n_no_answer": 0, "n_degenerate": deg, "asr_worst_case": (jb + deg) / n, "errors": 0}
    cells = [cell("base", "direct", 5), cell("base", "template", 1), cell("r2d", "direct", 1, deg=2)]
    (tmp_path / "results.json").write_text(json.dumps({"cells": cells, "words": []}))
    assert _module().main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| **mean of the attacks** (direct) |  | **50.0%** (worst 50.0%) | **10.0%** (worst 30.0%) |" in out
