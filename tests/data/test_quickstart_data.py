"""The main job's data config (configs/quickstart/data.yaml) builds offline from the data dir, with STAR-1
rows (meta.teacher == "dataset") in the full set and in its --smoke slice, about half benign."""

from pathlib import Path

import pytest
import yaml

from r2d.config import build_config
from r2d.data.build import BuildConfig, build
from r2d.data.io import read_jsonl
from r2d.data.schema import row_problems

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "quickstart"


def _cfg(out: Path, smoke: bool) -> BuildConfig:
    d = yaml.safe_load((CONFIGS / "data.yaml").read_text())
    if smoke:
        d |= yaml.safe_load((CONFIGS / "quickstart.yaml").read_text()).get("smoke", {}).get("data", {})
    return build_config(BuildConfig, None, d | {"output": str(out), "hf_dataset": False, "progress": False})


@pytest.mark.parametrize("smoke", [True, False])
def test_quickstart_data_config_builds_with_star1_rows(tmp_path, data_dir, smoke):
    if not (data_dir / "star1" / "STAR-1.json").is_file():
        pytest.skip("STAR-1 not in the data dir")
    cfg = _cfg(tmp_path / "d", smoke)
    res = build(cfg)
    rows = read_jsonl(tmp_path / "d" / "train.jsonl")
    assert res.accepted == len(rows) > 0 and all(row_problems(r) == [] for r in rows)
    star = [r for r in rows if r["meta"]["teacher"] == "dataset"]
    assert star and all(r["meta"]["origin"].startswith("star1/STAR-1.json:id=") for r in star)
    assert {r["label"] for r in star} == {"harmful", "jailbreak"}
    benign = sum(r["label"] == "benign" for r in rows)
    assert 0.35 <= benign / len(rows) <= 0.65
    if not smoke:
        assert len(rows) >= 250
        card = (tmp_path / "d" / "card.md").read_text()
        assert "## Pivot sequences" in card and "| meta.teacher | meta.reasoning_source | rows |" in card
        # decontamination ran against the evaluation benchmarks, none excluded
        for b in ("jbb", "harmbench", "xstest", "strongreject"):
            assert f"{b} (" in card
        harmful_seqs = {r["messages"][-1]["content"].count("[UNSAFE]") for r in star}
        assert len(harmful_seqs) > 1


def test_every_star1_harmbench_prompt_is_decontaminated(data_dir):
    import json

    from r2d.data.decontam import Decontaminator, eval_prompts

    star = data_dir / "star1" / "STAR-1.json"
    if not star.is_file():
        pytest.skip("STAR-1 not in the data dir")
    cfg = yaml.safe_load((CONFIGS / "data.yaml").read_text())
    prompts = eval_prompts(None, cfg.get("decontam_exclude", []))
    assert {"jbb", "harmbench", "xstest", "strongreject"} <= set(prompts)
    dec = Decontaminator(prompts, cfg["decontam_n"], cfg["decontam_threshold"])
    hb = [r["question"] for r in json.loads(star.read_text()) if r["source"] == "HarmBench"]
    assert len(hb) == 31 and all(dec.check(q) for q in hb)


def test_quickstart_harmful_half_matches_the_benign_half_in_prompt_form(tmp_path, data_dir):
    """Instruction-form prompts ("Write ...") must be common in the harmful half too, else the student learns
    "instruction -> help" (the 2-epoch student of the old mix refused 1 of 12 direct dev goals)."""
    if not (data_dir / "star1" / "STAR-1.json").is_file():
        pytest.skip("STAR-1 not in the data dir")
    from r2d.data.seeds import prompt_form

    build(_cfg(tmp_path / "d", False))
    rows = read_jsonl(tmp_path / "d" / "train.jsonl")

    def share(label):
        group = [r for r in rows if r["label"] == label]
        return sum(prompt_form(r["messages"][0]["content"]) == "instruction" for r in group) / len(group)

    assert share("harmful") >= 0.3 and share("harmful") >= share("benign") - 0.1


def test_quickstart_reasoning_openers_do_not_give_the_label_away(tmp_path, data_dir):
    """The first words of the reasoning must not tell harmful from benign rows: when the composer opened with
    phrasings of its own (and STAR-1 with R1's "Okay, so the user ..."), a student chose "benign reasoning ->
    help" or "harmful reasoning -> refuse" from the prompt's surface form before any deliberation."""
    if not (data_dir / "star1" / "STAR-1.json").is_file():
        pytest.skip("STAR-1 not in the data dir")
    from collections import Counter, defaultdict

    build(_cfg(tmp_path / "d", False))
    rows = [r for r in read_jsonl(tmp_path / "d" / "train.jsonl") if r["label"] in ("benign", "harmful")]
    by_opener: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        reasoning = r["messages"][-1]["content"].split("<think>", 1)[1]
        by_opener[" ".join(reasoning.split()[:4])][r["label"]] += 1
    opener_acc = sum(max(c.values()) for c in by_opener.values()) / len(rows)
    majority = max(Counter(r["label"] for r in rows).values()) / len(rows)
    assert opener_acc <= majority + 0.1, (opener_acc, majority)
