import json

from r2d.cli import main
from r2d.data.io import read_jsonl


def test_build_validate_stats_and_rerun(tmp_path, data_dir, capsys):
    out = tmp_path / "ds"
    assert main(["data", "build", "--teacher", "template", "--limit", "40", "--output", str(out),
                 "--no-progress"]) == 0
    for f in ("train.jsonl", "rejected.jsonl", "card.md", "provenance.json", "hf"):
        assert (out / f).exists(), f
    train, rej = read_jsonl(out / "train.jsonl"), read_jsonl(out / "rejected.jsonl")
    assert len(train) + len(rej) == 40 and {r["label"] for r in train} == {"benign", "harmful", "jailbreak"}
    assert main(["data", "validate", str(out / "train.jsonl")]) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["last_run"]["teacher_calls"] == len(train) and prov["git_commit"]
    assert main(["data", "build", "--teacher", "template", "--limit", "40", "--output", str(out),
                 "--no-progress"]) == 0
    assert json.loads((out / "provenance.json").read_text())["last_run"]["teacher_calls"] == 0
    assert len(read_jsonl(out / "train.jsonl")) == len(train)
    capsys.readouterr()
    assert main(["data", "stats", str(out / "train.jsonl")]) == 0
    card = capsys.readouterr().out
    assert "| jailbreak |" in card and "[UNSAFE]" in card and "NOT a reasoning model" in card
    import datasets

    assert len(datasets.load_from_disk(str(out / "hf"))) == len(train)


def test_build_from_config_and_errors(tmp_path, data_dir, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seeds: {self-instruct: 1}\nsize: 5\nteacher: template\nhf_dataset: false\nprogress: false\n")
    assert main(["data", "build", "--config", str(cfg), "--output", str(tmp_path / "o")]) == 0
    assert len(read_jsonl(tmp_path / "o" / "train.jsonl")) == 5
    cfg.write_text("sedes: {alpaca: 1}\n")
    assert main(["data", "build", "--config", str(cfg), "--output", str(tmp_path / "x")]) == 2
    assert "unknown config key(s) sedes" in capsys.readouterr().err
    assert main(["data", "build", "--teacher", "nope", "--limit", "2", "--output", str(tmp_path / "y")]) == 2
    assert "unknown teacher 'nope'" in capsys.readouterr().err
    assert main(["data", "stats", str(tmp_path / "missing.jsonl")]) == 2


def test_quickstart_config_parses(data_dir):
    from pathlib import Path

    from r2d.config import build_config
    from r2d.data.build import BuildConfig

    root = Path(__file__).resolve().parents[2]
    cfg = build_config(BuildConfig, root / "configs" / "quickstart" / "data.yaml")
    assert cfg.size == 300 and cfg.teacher == "dataset" and cfg.decontam_exclude == []  # STAR-1, no AdvBench seeds
    assert cfg.seeds["star1"]["seedset"] == "dataset" and cfg.teacher_kwargs["max_steps"] == 3
    paper = build_config(BuildConfig, root / "configs" / "data" / "paper-r1.yaml")
    assert paper.teacher == "openai" and paper.judge == "llama-guard" and paper.size is None
