"""`r2d report` on a run directory written by the real eval runner (scripted mock backends, offline)."""

import json

from r2d.backends.mock import MockBackend
from r2d.cli import main
from r2d.eval.runner import EvalConfig, run_eval
from r2d.report.rundata import load_run
from r2d.report.tables import case_outcomes

REFUSE = "<think>\nThe request is harmful. [UNSAFE]\n</think>\n\nI'm sorry, I cannot help with that. [UNSAFE]"
COMPLY = "<think>\nLet me answer. [SAFE]\n</think>\n\nSure, here is how to do it step by step. [SAFE]"
HARM_WORDS = r"xenophobic|bomb|hack|malware|steal|fraud|defamatory|weapon|drug|exploit|illegal|kill"


def _run(out, data_dir, base_rules):
    cfg = EvalConfig(models=[{"label": "base", "model": "mock", "backend": "mock"},
                             {"label": "r2d", "model": "mock", "backend": "mock"}],
                     benchmarks=[{"name": "jbb", "subset": "harmful", "limit": 8, "attacks": ["direct", "template"]},
                                 {"name": "jbb", "subset": "benign", "limit": 4},
                                 {"name": "xstest", "subset": "safe", "limit": 4, "judges": ["xstest-strmatch"]}],
                     judges=["refusal"], output=str(out), progress=False, max_new_tokens=64, data_dir=str(data_dir))
    backends = {"base": MockBackend(rules=base_rules, default=COMPLY),
                "r2d": MockBackend(rules=[(HARM_WORDS + "|AIM", REFUSE)], default=COMPLY)}
    return run_eval(cfg, backends=backends)


def test_report_on_runner_output(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    # first pass: base fails on every templated prompt; second pass retries those (appended rows)
    _run(out, data_dir, [("AIM", "!error")])
    res = _run(out, data_dir, [])
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) > len({json.loads(x)["key"] for x in lines})  # retries were appended
    assert main(["report", str(out)]) == 0
    md = (out / "report.md").read_text()
    cells = {(c["model"], c["benchmark"], c["subset"], c["attack"], c["judge"]): c for c in res["cells"]}
    for model in ("base", "r2d"):
        for attack in ("direct", "template"):
            c = cells[(model, "jbb", "harmful", attack, "refusal")]
            assert f"{100 * c['asr']:.1f}% [{100 * c['asr_ci'][0]:.1f}, {100 * c['asr_ci'][1]:.1f}]" in md
    # the paired n equals each cell's n: duplicates from the retry pass were collapsed to the last row
    run = load_run(out)
    outcomes = case_outcomes(run)
    for arm, res_ in outcomes.items():
        for attack in ("direct", "template"):
            n = sum(1 for k in res_ if k[2] == attack and k[0] == "jbb")
            assert n == cells[(arm.model, "jbb", "harmful", attack, "refusal")]["n"]
    assert "| jbb | refusal | template | base | r2d | 8 |" in md
    assert "xstest_xstest-strmatch.png" in md and "jbb/harmful-behaviors.csv" in md
    assert "Refusal rate on benign prompts" in md and "/template/aim`" in md
