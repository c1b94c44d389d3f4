"""r2d generate (resume, validation, output fields) and r2d chat (piped stdin)."""

import io
import json

import pytest

from r2d.backends.base import GenParams, get_backend
from r2d.cli import main
from r2d.infer.chat import DIM, chat_loop
from r2d.infer.generate import read_prompts, run_generate


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _ids(path):
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_generate_with_mock_writes_all_fields(tmp_path):
    inp = _write(tmp_path / "in.jsonl", [{"id": 1, "prompt": "hi"}, {"id": "b", "messages": [
        {"role": "user", "content": "hello"}], "category": "x"}])
    out = tmp_path / "out.jsonl"
    assert main(["generate", "--backend", "mock", "--policy", "hide-reasoning", "--input", str(inp),
                 "--output", str(out), "--max-new-tokens", "64"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "b"]
    r = rows[0]
    for k in ("id", "prompt", "completion", "response", "answer", "steps", "pivots", "error", "finish_reason",
              "prompt_tokens", "completion_tokens", "model", "backend", "policy"):
        assert k in r
    assert r["response"] == r["answer"] == "Here is a helpful answer." and r["pivots"] == ["[SAFE]", "[SAFE]"]
    assert r["error"] is None and rows[1]["input"] == {"category": "x"}
    prov = json.loads((tmp_path / "out.jsonl.provenance.json").read_text())
    assert prov["policy"] == "hide-reasoning" and prov["gen"]["max_new_tokens"] == 64 and prov["input_sha256"]
    assert prov["git_commit"]


@pytest.mark.parametrize("rows,msg", [
    ([{"id": 1, "prompt": "a"}, {"prompt": "b"}], "in.jsonl:2: missing field 'id'"),
    ([{"id": 1, "prompt": ""}], "in.jsonl:1: needs a non-empty string 'prompt'"),
    ([{"id": 1, "prompt": "a"}, {"id": 1, "prompt": "b"}], "in.jsonl:2: duplicate id '1'"),
    ([{"id": 1, "messages": [{"role": "user"}]}], "in.jsonl:1: messages[0] needs string 'role' and 'content'"),
])
def test_bad_rows_name_file_and_line(tmp_path, capsys, rows, msg):
    inp = _write(tmp_path / "in.jsonl", rows)
    assert main(["generate", "--backend", "mock", "--input", str(inp), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_not_json_is_an_error(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": 1, "prompt": "a"}\n{oops\n')
    with pytest.raises(ValueError, match="in.jsonl:2: not valid JSON"):
        read_prompts(tmp_path / "in.jsonl")


class Interrupting:
    """Wraps a backend; raises KeyboardInterrupt on call number ``die_at`` (a killed process)."""

    name = "mock"

    def __init__(self, die_at=None):
        self.inner, self.die_at, self.seen = get_backend("mock"), die_at, []

    def generate(self, chats, params):
        if len(self.seen) + 1 == self.die_at:
            raise KeyboardInterrupt
        self.seen.append([c[-1]["content"] for c in chats])
        return self.inner.generate(chats, params)


def test_killed_and_rerun_writes_every_row_once(tmp_path):
    inp = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(7)])
    rows, out = read_prompts(inp), tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_generate(Interrupting(die_at=3), rows, out, GenParams(batch_size=2), "raw", {}, progress=False)
    assert _ids(out) == ["0", "1", "2", "3"]  # two batches were written before the kill
    with out.open("a") as f:
        f.write('{"id": "4", "prom')  # a torn write
    second = Interrupting()
    stats = run_generate(second, rows, out, GenParams(batch_size=2), "raw", {}, progress=False)
    assert sorted(_ids(out), key=int) == [str(i) for i in range(7)] and len(_ids(out)) == 7
    assert second.seen == [["p4", "p5"], ["p6"]] and stats["skipped"] == 4 and stats["written"] == 3
    assert run_generate(Interrupting(), rows, out, GenParams(), "raw", {}, progress=False)["written"] == 0


def test_generate_with_hf_on_a_tiny_checkpoint(tmp_path):
    from r2d.pivots import expand_tokenizer
    from r2d.testing import byte_tokenizer, save_tiny

    tok = byte_tokenizer()
    expand_tokenizer(tok)  # an R2D checkpoint holds the pivot rows (a vanilla one has none to threshold)
    model_dir = save_tiny(tmp_path / "tiny", tokenizer=tok)
    inp = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": "x" * (i + 1)} for i in range(3)])
    out = tmp_path / "out.jsonl"
    args = ["generate", "--model", model_dir, "--backend", "hf", "--policy", "pivot-threshold", "--tau", "0.5",
            "--input", str(inp), "--output", str(out), "--max-new-tokens", "4", "--batch-size", "2"]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["0", "1", "2"]
    assert all(r["error"] is None and r["completion_tokens"] and isinstance(r["pivot_probs"], list) for r in rows)


def test_pivot_policy_on_a_vanilla_checkpoint_fails_clearly(tmp_path, capsys):
    from r2d.testing import save_tiny

    model_dir = save_tiny(tmp_path / "tiny")  # vanilla: no R2D rows are added at load time
    inp = _write(tmp_path / "in.jsonl", [{"id": 0, "prompt": "x"}])
    rc = main(["generate", "--model", model_dir, "--backend", "hf", "--policy", "pivot-threshold",
               "--input", str(inp), "--output", str(tmp_path / "o.jsonl"), "--max-new-tokens", "2"])
    assert rc != 0 and "lacks R2D tokens" in capsys.readouterr().err


def test_all_failed_endpoint_exits_nonzero(tmp_path, capsys):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    inp = _write(tmp_path / "in.jsonl", [{"id": 1, "prompt": "a"}])
    rc = main(["generate", "--backend", "openai", "--base-url", f"http://127.0.0.1:{port}/v1", "--max-retries", "0",
               "--input", str(inp), "--output", str(tmp_path / "o.jsonl")])
    assert rc == 2 and "cannot reach" in capsys.readouterr().err


def test_chat_loop_shows_reasoning_dimmed_or_hidden():
    b = get_backend("mock")
    out = io.StringIO()
    turns = chat_loop(b, GenParams(), "raw", reasoning="dim", stdin=io.StringIO("hello\n\n/reset\nagain\n"),
                      stdout=out, color=True)
    text = out.getvalue()
    assert turns == 2 and text.count(DIM) == 2 and "r2d> Here is a helpful answer." in text
    assert "(history cleared)" in text
    assert len(b.calls[1]) == 1  # /reset emptied the history
    hidden = io.StringIO()
    chat_loop(b, GenParams(), "hide-reasoning", reasoning="hide", stdin=io.StringIO("a\nb\n/quit\nc\n"), stdout=hidden)
    assert "benign" not in hidden.getvalue() and hidden.getvalue().count("r2d> ") == 2
    assert [m["role"] for m in b.calls[-1]] == ["user", "assistant", "user"]


def test_chat_command_with_piped_stdin(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("hi there\n"))
    assert main(["chat", "--backend", "mock", "--reasoning", "plain"]) == 0
    got = capsys.readouterr().out
    assert "The request looks benign. [SAFE]" in got and "r2d> Here is a helpful answer." in got
