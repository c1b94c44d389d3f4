import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.training.helpers import synthetic_rows, write_rows

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_end_identical(tmp_path):
    from r2d.testing import save_tiny

    launcher = shutil.which("torchrun") or pytest.skip("torchrun missing")
    model = save_tiny(tmp_path / "tiny")
    data = write_rows(tmp_path / "train.jsonl", synthetic_rows(16))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    # torchrun (gloo on CPU); `accelerate launch --cpu --num_processes 2` starts a single process here
    cmd = [launcher, "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(ROOT / "tests/training/ddp_worker.py"), model, str(data), str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [(out / f"rank{i}.sha").read_text().split() for i in (0, 1)]
    assert lines[0][0] == "2" and lines[0][1] == "4"
    assert lines[0] == lines[1]
    assert (out / "adapter_model.safetensors").is_file() and (out / "r2d_train_meta.json").is_file()
