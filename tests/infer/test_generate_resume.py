"""Issue 12 defects 3, 4, 9 for ``r2d generate``: sizes validated, resume reads past a bad line and
retries failed rows, another model/policy into the same output is refused."""

import json

import pytest

from r2d.backends.base import GenParams
from r2d.cli import main
from r2d.infer.generate import read_prompts, run_generate

from .test_generate_cli import Interrupting, _write


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("flag,value", [("--batch-size", "0"), ("--batch-size", "-3"), ("--max-new-tokens", "0")])
def test_bad_sizes_are_refused(tmp_path, capsys, flag, value):
    inp = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(3)])
    out = tmp_path / "o.jsonl"
    assert main(["generate", "--backend", "mock", "--input", str(inp), "--output", str(out), flag, value]) == 2
    assert "must be a positive integer" in capsys.readouterr().err and not out.exists()


def test_run_generate_refuses_zero_chunk(tmp_path):
    rows = read_prompts(_write(tmp_path / "in.jsonl", [{"id": 1, "prompt": "a"}]))
    with pytest.raises(ValueError, match="batch size must be a positive integer"):
        run_generate(Interrupting(), rows, tmp_path / "o.jsonl", GenParams(batch_size=0), "raw", {}, progress=False)


def test_resume_reads_past_a_bad_line_and_retries_errors(tmp_path):
    inp = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(5)])
    rows, out = read_prompts(inp), tmp_path / "out.jsonl"
    run_generate(Interrupting(), rows, out, GenParams(batch_size=2), "raw", {}, progress=False)
    lines = out.read_text().splitlines()
    failed = json.loads(lines[3])
    failed.update(error="TimeoutError: endpoint", completion=None)
    # line 2 corrupted in the middle of the file, row 3 recorded as failed, a torn tail at the end
    out.write_text("\n".join([lines[0], "{garbage", lines[2], json.dumps(failed), lines[4]]) + '\n{"id": "9", "pro')
    be = Interrupting()
    stats = run_generate(be, rows, out, GenParams(batch_size=2), "raw", {}, progress=False)
    regenerated = sorted(p for batch in be.seen for p in batch)
    assert regenerated == ["p1", "p3"]  # the unreadable row and the failed one; rows after them kept
    assert stats["retried"] == 1
    final = _rows(out)
    assert [r["id"] for r in final] == ["0", "1", "2", "3", "4"] and all(r["error"] is None for r in final)


def test_other_model_or_policy_into_same_output_is_refused(tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(3)])
    out = tmp_path / "o.jsonl"
    base = ["generate", "--backend", "mock", "--input", str(inp), "--output", str(out)]
    assert main(base) == 0
    prov = (tmp_path / "o.jsonl.provenance.json").read_text()
    assert main(base + ["--policy", "hide-reasoning"]) == 2
    assert "holds rows from another run" in capsys.readouterr().err
    assert (tmp_path / "o.jsonl.provenance.json").read_text() == prov  # provenance not rewritten
    assert main(base + ["--max-new-tokens", "7"]) == 2
    assert main(base) == 0  # the same run resumes (nothing to do)
    assert main(base + ["--policy", "hide-reasoning", "--overwrite"]) == 0
    assert {r["policy"] for r in _rows(out)} == {"hide-reasoning"} and len(_rows(out)) == 3
