"""Issue 12 defect 2: ``r2d train`` into a directory holding another run (or unrelated files) used to
adopt its checkpoint (0 steps, exit 0) and rewrite its config; now it refuses unless --overwrite."""

import pytest

from r2d.training.config import TrainConfig
from r2d.training.outdir import RUN_FILE, claim_output_dir


def cfg(tmp_path, **kw):
    return TrainConfig(**{"model": "m", "data": "d.jsonl", "output": str(tmp_path / "out"), **kw})


DATA = {"sha256": "a" * 64}


def test_same_config_resumes_other_config_refused(tmp_path):
    claim_output_dir(cfg(tmp_path), DATA)
    (tmp_path / "out" / "checkpoint-10").mkdir()
    claim_output_dir(cfg(tmp_path, logging_steps=1), DATA)  # cadence does not change the model: resume
    with pytest.raises(ValueError, match=r"holds a run of r2d train with other settings \(max_steps\)"):
        claim_output_dir(cfg(tmp_path, max_steps=7), DATA)
    with pytest.raises(ValueError, match=r"other settings \(data \(content\)\)"):
        claim_output_dir(cfg(tmp_path), {"sha256": "b" * 64})
    with pytest.raises(ValueError, match="pass --resume"):
        claim_output_dir(cfg(tmp_path, resume=False), DATA)
    claim_output_dir(cfg(tmp_path, max_steps=7, overwrite=True), DATA)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [RUN_FILE]


def test_unrelated_files_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and was not written by r2d train"):
        claim_output_dir(cfg(tmp_path), DATA)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_train_refuses_before_training(tmp_path, capsys):
    from r2d.cli import main
    from tests.training.helpers import synthetic_rows, write_rows

    data = write_rows(tmp_path / "train.jsonl", synthetic_rows(4))
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint-5").mkdir()  # someone else's checkpoint
    assert main(["train", "--model", "nonexistent-model", "--data", str(data), "--output", str(out)]) == 2
    assert "not empty and was not written by r2d train" in capsys.readouterr().err
