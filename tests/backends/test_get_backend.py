"""Issue 12 defect 8: unknown backend options are an error naming them; a bad model name is one line."""

import pytest

from r2d.backends.base import get_backend
from r2d.cli import main


def test_unknown_backend_kwarg_is_an_error():
    with pytest.raises(ValueError, match=r"backend mock: unknown option\(s\) temprature; it takes"):
        get_backend("mock", temprature=0.3)
    with pytest.raises(ValueError, match=r"backend hf: unknown option\(s\) devcie"):
        get_backend("hf", model="x", devcie="cpu")


def test_missing_local_model_path_is_one_line(tmp_path, capsys):
    from r2d.models import resolve_model

    with pytest.raises(ValueError, match="model path './nope/model' not found"):
        resolve_model("./nope/model")
    with pytest.raises(ValueError, match="not found"):
        resolve_model("a/b/c")


def test_generate_bad_backend_kwarg_and_existing_output_dir_are_one_line(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": 1, "prompt": "hi"}\n')
    out_dir = tmp_path / "adir"
    out_dir.mkdir()
    assert main(["generate", "--backend", "mock", "--input", str(inp), "--output", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("r2d generate: error:") and len(err.splitlines()) == 1
