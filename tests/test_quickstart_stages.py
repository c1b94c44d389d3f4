"""Stage bookkeeping of ``r2d quickstart`` with a fake ``r2d`` main (milliseconds)."""

import pytest

import r2d.cli
from r2d.cli import R2DError
from r2d.quickstart import Stages


def test_finished_stage_is_skipped_only_with_the_same_config(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(r2d.cli, "main", lambda argv: calls.append(argv) or 0)
    cfg = tmp_path / "train.yaml"
    cfg.write_text("epochs: 2\n")
    argv = ["train", "--config", str(cfg), "--output", str(tmp_path / "m")]
    Stages(tmp_path).run("train", argv)
    Stages(tmp_path).run("train", argv)  # same command and config: skipped
    assert len(calls) == 1
    cfg.write_text("epochs: 3\n")  # the config changed under a finished stage
    with pytest.raises(R2DError, match="stage train .* different command or config"):
        Stages(tmp_path).run("train", argv)
    with pytest.raises(R2DError, match="different command or config"):
        Stages(tmp_path).run("train", argv + ["--no-cpo"])
    assert len(calls) == 1


def test_failed_stage_leaves_no_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(r2d.cli, "main", lambda argv: 2)
    with pytest.raises(R2DError, match="stage eval failed"):
        Stages(tmp_path).run("eval", ["eval"])
    assert not (tmp_path / "stages" / "eval.json").exists()


def test_select_policy_stage_feeds_the_eval_grid(tmp_path, monkeypatch):
    """The chosen policy replaces every ``policy: "{selected}"`` entry; the stage is fingerprinted like
    any other (a changed dev setting is refused on a finished run)."""
    import json

    from r2d.quickstart import SELECTED, select_policy

    calls = []

    def fake_main(argv):
        calls.append(argv)
        out = argv[argv.index("--output") + 1]
        (tmp_path / "policy_choice.json").write_text(json.dumps({"policy": {"name": "pivot-threshold", "tau": 0.2}}))
        assert out == str(tmp_path / "policy_choice.json")
        return 0

    monkeypatch.setattr(r2d.cli, "main", fake_main)
    eval_cfg = {"max_new_tokens": 64, "batch_size": 32,
                "models": [{"label": "r2d", "model": "m"}, {"label": "r2d@policy", "model": "m", "policy": SELECTED}]}
    qs = {"select_policy": {"model": "r2d", "args": ["--n-direct", 3]}}
    models = select_policy(Stages(tmp_path), qs, {}, tmp_path, tmp_path / "train.jsonl", eval_cfg)
    assert models[1]["policy"] == {"name": "pivot-threshold", "tau": 0.2} and "policy" not in models[0]
    argv = calls[0]
    assert argv[0] == "select-policy" and argv[argv.index("--max-new-tokens") + 1] == "64" and "--n-direct" in argv
    select_policy(Stages(tmp_path), qs, {}, tmp_path, tmp_path / "train.jsonl", eval_cfg)  # finished: skipped
    assert len(calls) == 1
    with pytest.raises(R2DError, match="different command or config"):
        select_policy(Stages(tmp_path), qs, {}, tmp_path, tmp_path / "train.jsonl", {**eval_cfg, "max_new_tokens": 96})


def test_a_rebuilt_input_is_not_paired_with_an_old_downstream_stage(tmp_path, monkeypatch):
    """A train stage reads the dataset: same command and config but different data is refused, not reused."""
    calls = []
    monkeypatch.setattr(r2d.cli, "main", lambda argv: calls.append(argv) or 0)
    data = tmp_path / "train.jsonl"
    data.write_text('{"a": 1}\n')
    argv = ["train", "--data", str(data), "--output", str(tmp_path / "m")]
    Stages(tmp_path).run("train", argv, inputs=(data,))
    Stages(tmp_path).run("train", argv, inputs=(data,))
    assert len(calls) == 1
    data.write_text('{"a": 2}\n')  # the data stage was redone with other files
    with pytest.raises(R2DError, match="different command or config"):
        Stages(tmp_path).run("train", argv, inputs=(data,))
