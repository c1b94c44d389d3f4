import base64
import json
import re

import pytest

from r2d.cli import main
from r2d.report.build import ReportOptions, build_report
from r2d.report.render import Figure, Para, Table, write_report
from r2d.report.rundata import load_run
from r2d.report.tables import asr_grids, asr_table, arm_labels, all_arms
from tests.report.fixtures import make_run


def _table_row(md: str, first_cell: str) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting {first_cell!r}")


def test_report_from_fixture_run(tmp_path, capsys):
    run = make_run(tmp_path / "run1")
    assert main(["report", str(run)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(run / "report.html")
    md = (run / "report.md").read_text()
    page = (run / "report.html").read_text()
    # Table 1: rows attack, columns model; ASR with 95% CI; lowest bold; mean over attacks
    assert _table_row(md, "attack")[1:] == ["base", "r2d"]
    assert _table_row(md, "direct")[1:] == ["60.0% [31.3, 83.2]", "**10.0% [1.8, 40.4]**"]
    assert _table_row(md, "template (aim)")[1:] == ["80.0% [49.0, 94.3]", "**33.3% [12.1, 64.6] (1 err)**"]
    assert _table_row(md, "mean over attacks")[1:] == ["70.0%", "**21.7%**"]
    # paired comparisons: the hand-computed discordant pairs and exact p-values
    rows = [line for line in md.splitlines() if line.startswith("| jbb | refusal |")]
    direct, template, pooled = ([c.strip() for c in r.strip("|").split("|")] for r in rows)
    assert direct[2:6] + direct[9:] == ["direct", "base", "r2d", "10", "5", "0", "0.0625"]
    assert template[5] == "9" and template[9:] == ["6", "1", "0.125"]  # the judge error is left out
    assert pooled[2] == "all attacks" and pooled[5] == "19"
    assert pooled[9:] == ["11", "1", "**0.0391 (cluster, 10 behaviours)**"]  # 2 attacks share each behaviour
    # XSTest, words, traces, judge limits, provenance
    assert "| r2d | jbb | benign | refusal | 4 | 0 | 100.0% |" in md
    assert "| r2d | unsafe | refusal | 20 | 0 | 20.0% | 5.0% | 75.0% |" in md
    assert "145.0 ± 29.5 (n=20)" in md and "21.5 ± 1.3 (n=4)" in md
    assert "step 2 [UNSAFE]: It asks how to cause harm." in md
    assert "cannot tell harmful compliance" in md
    assert "abc123" in md and "f" * 64 in md and "fixture run" in md
    assert "1 of 14 evaluated behaviours overlap 50 training prompts" in md and "| h3 | exact | 1.0 |" in md
    # figures: PNG files beside the Markdown, embedded (and only embedded) in the HTML
    pngs = sorted(p.name for p in (run / "figures").glob("*.png"))
    assert pngs == ["asr_jbb_harmful_refusal.png", "words.png", "xstest_refusal.png"]
    for name in pngs:
        assert f"(figures/{name})" in md
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(embedded) == 3 and all(base64.b64decode(e).startswith(b"\x89PNG") for e in embedded)
    assert "figures/" not in page and "<strong>10.0% [1.8, 40.4]</strong>" in page


def test_numbers_come_from_the_files(tmp_path):
    run = make_run(tmp_path / "run")
    data = json.loads((run / "results.json").read_text())
    data["cells"][0]["asr"], data["cells"][0]["asr_ci"] = 0.42, [0.3, 0.55]
    (run / "results.json").write_text(json.dumps(data))
    runs = [load_run(run)]
    labels = arm_labels(all_arms(runs))
    t = asr_table(asr_grids(runs)[0], labels)
    assert t.rows[0][1] == "42.0% [30.0, 55.0]"


def test_optional_cell_fields_are_shown(tmp_path):
    run = make_run(tmp_path / "run")
    data = json.loads((run / "results.json").read_text())
    data["samples_missing"] = 3
    c = data["cells"][0]
    c.update(no_answer=2, asr_no_answer_as_jailbroken=0.8, score_mean=0.25, score_std=0.1, score_n=10)
    (run / "results.json").write_text(json.dumps(data))
    assert main(["report", str(run)]) == 0
    md = (run / "report.md").read_text()
    assert "60.0% [31.3, 83.2] (2 no answer, ≤80.0%)" in md
    assert "| base | jbb | harmful | direct | refusal | 10 | 0.250 ± 0.100 |" in md
    assert "3 test cases have no sample yet" in md


def test_compare_two_runs(tmp_path):
    base = make_run(tmp_path / "base_run", models=("base",))
    r2d = make_run(tmp_path / "r2d_run", models=("r2d",), model_names={"r2d": "smollm2-r2d"}, string_keys=True)
    out = tmp_path / "out"
    assert main(["report", str(base), "--compare", str(r2d), "--output", str(out)]) == 0
    assert not (base / "report.md").exists()
    md = (out / "report.md").read_text()
    assert _table_row(md, "attack")[1:] == ["base_run: base", "r2d_run: smollm2-r2d"]
    row = [c.strip() for c in next(r for r in md.splitlines() if "| all attacks |" in r).strip("|").split("|")]
    assert row[3:6] == ["base_run: base", "r2d_run: smollm2-r2d", "19"]
    assert row[9:] == ["11", "1", "**0.0391 (cluster, 10 behaviours)**"]
    # the reverse baseline flips b and c
    assert main(["report", str(base), "--compare", str(r2d), "--output", str(out),
                 "--baseline", "r2d_run: smollm2-r2d", "--traces-model", "base_run: base"]) == 0
    md = (out / "report.md").read_text()
    row = [c.strip() for c in next(r for r in md.splitlines() if "| all attacks |" in r).strip("|").split("|")]
    assert row[9:] == ["1", "11", "**0.0391 (cluster, 10 behaviours)**"] and "System: **base_run: base**" in md


def test_missing_sections_are_stated_not_crashing(tmp_path):
    run = make_run(tmp_path / "bare", models=("base",), xstest=False, per_case=False, extra_result_keys=True)
    assert main(["report", str(run)]) == 0
    md = (run / "report.md").read_text()
    assert "No XSTest cells" in md
    assert "No judgments.jsonl" in md
    assert "No successful samples" in md and "No samples.jsonl" in md
    assert _table_row(md, "direct")[1] == "**60.0% [31.3, 83.2]**"
    assert "asr_xstest" not in md and len(list((run / "figures").glob("*.png"))) == 1


def test_empty_run_still_reports(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "results.json").write_text(json.dumps({"cells": []}))
    assert main(["report", str(tmp_path / "e")]) == 0
    md = (tmp_path / "e" / "report.md").read_text()
    assert "this section is empty" in md and "has no provenance" in md and "not recorded in results.json" in md
    assert main(["report", str(tmp_path / "e"), "--traces", "-1"]) == 2


@pytest.mark.parametrize("content, message", [
    (None, "results.json not found"),
    ("{not json", "not valid JSON"),
    (json.dumps({"provenance": {}}), "field 'cells' missing"),
    (json.dumps({"cells": [{"asr": 0.1}]}), "cells[0] has no field 'model'"),
])
def test_bad_run_dir_is_a_one_line_error(tmp_path, capsys, content, message):
    d = tmp_path / "bad"
    d.mkdir()
    if content is not None:
        (d / "results.json").write_text(content)
    assert main(["report", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_bad_jsonl_line_is_noted_and_unknown_baseline(tmp_path, capsys):
    """An unreadable line is skipped and named in the report's notes, as every reader of the store does;
    the rows after it are kept."""
    run = make_run(tmp_path / "r")
    with open(run / "judgments.jsonl", "a") as f:
        f.write("{oops\n")
    assert main(["report", str(run)]) == 0
    assert "judgments.jsonl:41: skipped an unreadable line (not valid JSON" in (run / "report.md").read_text()


def test_torn_tail_from_a_killed_eval_is_reported(tmp_path):
    """Issue 12 defect 5: the report refused the torn line a killed eval leaves, even one ending inside
    a UTF-8 character."""
    run = make_run(tmp_path / "r")
    with open(run / "samples.jsonl", "ab") as f:
        f.write('{"key": "x", "completion": "caf\u00e9'.encode()[:-1])
    assert main(["report", str(run)]) == 0
    assert "samples.jsonl: the last line was torn" in (run / "report.md").read_text()


def test_judgment_without_join_key_is_a_one_line_error(tmp_path, capsys):
    run = make_run(tmp_path / "r")
    with open(run / "judgments.jsonl", "a") as f:
        f.write('{"judge": "refusal", "verdict": {}}\n')
    assert main(["report", str(run)]) == 2
    assert "judgments.jsonl: row 41: judgment row needs string 'key' and 'judge'" in capsys.readouterr().err
    run = make_run(tmp_path / "r2")
    capsys.readouterr()
    assert main(["report", str(run), "--baseline", "nope"]) == 2
    assert "no system labelled 'nope'" in capsys.readouterr().err


def test_options_select_traces(tmp_path):
    runs = [load_run(make_run(tmp_path / "r"))]
    blocks = build_report(runs, ReportOptions(traces_model="base", traces_per_kind=2))
    tables = [b for b in blocks if isinstance(b, Table)]
    assert tables and any(isinstance(b, Figure) for b in blocks)
    md, page = write_report(blocks, tmp_path / "o", "t")
    text = md.read_text()
    assert "System: **base**" in text and text.count("PROMPT:") == 6


def test_html_escapes_run_text_and_figure_names_stay_distinct(tmp_path):
    blocks = [Para("<script>alert(1)</script> **bold**"), Figure(b"\x89PNG1", "a-b"), Figure(b"\x89PNG2", "a-b"),
              Table(["x|y"], [["<b>"]], {(0, 0)})]
    md, page = write_report(blocks, tmp_path, "t <1>")
    html = page.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<strong>bold</strong>" in html
    assert "<td><strong>&lt;b&gt;</strong></td>" in html and "<title>t &lt;1&gt;</title>" in html
    assert (tmp_path / "figures" / "a-b.png").read_bytes() == b"\x89PNG1"
    assert (tmp_path / "figures" / "a-b-2.png").read_bytes() == b"\x89PNG2"
    assert "(figures/a-b-2.png)" in md.read_text() and "x\\|y" in md.read_text()


def test_asr_cell_shows_degenerate_and_worst_case():
    from r2d.report.tables import asr_value, _fmt_asr

    cell = {"asr": 0.2, "asr_ci": [0.05, 0.5], "n": 10, "errors": 0, "no_answer": 1, "n_no_answer": 1,
            "n_degenerate": 3, "asr_no_answer_as_jailbroken": 0.3, "asr_worst_case": 0.6}
    s = _fmt_asr(asr_value(cell))
    assert "(1 no answer, 3 degenerate, ≤60.0%)" in s
    # cells written before the degenerate label existed keep the no-answer worst case
    old = {"asr": 0.2, "asr_ci": [0.05, 0.5], "n": 10, "errors": 0, "no_answer": 2, "asr_no_answer_as_jailbroken": 0.4}
    assert "(2 no answer, ≤40.0%)" in _fmt_asr(asr_value(old))


def test_asr_section_states_counting_rule():
    from r2d.report.build import ASR_COUNTING_RULE

    assert "degenerate" in ASR_COUNTING_RULE and "no_answer" in ASR_COUNTING_RULE and "worst case" in ASR_COUNTING_RULE


def test_xstest_table_and_bars_count_replies_in_no_class(tmp_path):
    """Replies with no answer or no content are in none of XSTest's classes: the table counts them in their own
    columns and the bar chart stacks them, so a 55% full-compliance bar is not read as 45% refused."""
    from r2d.report.plots import xstest_bars
    from r2d.report.rundata import Arm, Run
    from r2d.report.tables import xstest_rows, xstest_table

    cell = {"model": "m", "defense": "none", "policy": "raw", "benchmark": "xstest", "subset": "unsafe",
            "attack": "direct", "judge": "xstest-strmatch", "n": 20, "errors": 0, "full_compliance": 0.55,
            "full_refusal": 0.05, "partial_refusal": 0.0, "n_no_answer": 1, "n_degenerate": 7}
    run = Run(path=tmp_path, name="r", provenance={}, cells=[cell])
    rows = xstest_rows([run])
    assert (rows[0].no_answer, rows[0].degenerate) == (1, 7)
    labels = {Arm("r", "m"): "m"}
    t = xstest_table(rows, labels)
    assert t.header[-2:] == ["no answer", "degenerate"] and t.rows[0][-2:] == ["1", "7"]
    assert xstest_bars(rows, labels, "xstest-strmatch")[:4] == b"\x89PNG"


def test_mean_row_averages_only_the_attacks_every_arm_has(tmp_path):
    """An attack run on one model only (the main job's adaptive GCG on R2D) must not move that model's mean:
    the mean row compares every arm on the same attacks and names the attack it leaves out."""
    run = make_run(tmp_path / "run")
    data = json.loads((run / "results.json").read_text())
    r2d_direct = next(c for c in data["cells"] if c["model"] == "r2d" and c["attack"] == "direct"
                      and c.get("subset") == "harmful")
    data["cells"].append({**r2d_direct, "attack": "gcg-adaptive", "asr": 1.0, "asr_ci": [0.5, 1.0], "n": 4})
    (run / "results.json").write_text(json.dumps(data))
    runs = [load_run(run)]
    t = asr_table(asr_grids(runs)[0], arm_labels(all_arms(runs)))
    assert t.rows[-1] == ["mean over direct, template (aim)", "70.0%", "21.7%"]  # as without the extra cell
    assert t.rows[-2][0] == "gcg-adaptive" and t.rows[-2][1] == "–"
    assert "left out: gcg-adaptive" in t.caption
