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
