"""``r2d serve``: flag validation, and a real process that serves and stops cleanly on SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from r2d.cli import build_parser, main
from r2d.serve.cli import build

SRC = Path(__file__).resolve().parents[2] / "src"


def args(*argv):
    return build_parser().parse_args(["serve", *argv])


def test_flag_validation(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown"):
        build(args("--backend", "mock", "--policy", "nope"))
    with pytest.raises(ValueError, match="--upstream"):
        build(args("--backend", "openai"))
    with pytest.raises(FileNotFoundError, match="api-key-file"):
        build(args("--backend", "mock", "--api-key-file", str(tmp_path / "missing")))
    (tmp_path / "keys").write_text("# keys\nk1\n\nk2\n")
    cfg, backend = build(args("--backend", "mock", "--api-key-file", str(tmp_path / "keys"),
                              "--allow-policy", "raw", "--served-model-name", "r2d-mock"))
    assert cfg.api_keys == ["k1", "k2"] and cfg.allowed() == ["refuse-on-unsafe", "raw"] and cfg.host == "127.0.0.1"
    assert cfg.model_name == "r2d-mock" and backend.name == "mock"
    assert main(["serve", "--backend", "mock", "--policy", "nope"]) == 2
    assert "unknown" in capsys.readouterr().err


def test_policy_the_backend_cannot_run_fails_at_startup():
    from r2d.backends.mock import MockBackend
    from r2d.serve import ServeConfig, create_app

    with pytest.raises(ValueError, match="logits"):
        create_app(ServeConfig(policy="pivot-threshold"), MockBackend())


def test_serve_process_answers_and_stops_on_sigterm(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "req.jsonl"
    env = {**os.environ, "PYTHONPATH": str(SRC), "R2D_SERVE_API_KEY": "sk-test"}
    proc = subprocess.Popen([sys.executable, "-m", "r2d.cli", "serve", "--backend", "mock", "--port", str(port),
                             "--log-jsonl", str(log), "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "timeout"
            time.sleep(0.2)
        body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(base + "/v1/chat/completions", json=body).status_code == 401
        r = httpx.post(base + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-test"})
        assert r.status_code == 200 and r.json()["r2d"]["policy"] == "refuse-on-unsafe"
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    assert rc in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its graceful shutdown
    assert log.read_text().count("\n") == 2
