import json
import os
import shutil
import socket
import subprocess
import sys
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

    beside = Path(sys.executable).parent / "torchrun"  # the venv's, when it is not on PATH
    launcher = shutil.which("torchrun") or (str(beside) if beside.is_file() else pytest.skip("torchrun missing"))
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


# FSDP against one process. Equal by construction: the same global batch per step (2 processes x 2 vs
# 1 x 4, the same length-grouped order split into consecutive per-process batches), no dropout, and a
# loss whose per-process terms divide by the label-token and pivot counts of the whole global batch
# (``R2DTrainer._data_parallel_loss``), so the averaged gradient is the one-process gradient. What is left
# is fp32 summation order (padding to 2 vs 4 rows, the reduce-scatter): measured 1.5e-7 at most over
# the adapter and the token rows (values up to 0.19). TOL is 100x that and 1,000x below one Adam step
# (lr 1e-2), so a wrong batch split, per-process means or an unsynchronised gradient fails it.
TOL = 1e-5


def _train(tmp_path, name: str, launch: list[str], batch: int, model: str, data: Path) -> Path:
    out = tmp_path / name
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = launch + [str(ROOT / "tests/training/sharded_worker.py"), model, str(data), str(out), str(batch)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def _launch(config: str) -> list[str]:
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    return [accelerate, "launch", "--config_file", str(ROOT / "configs/accelerate" / config), "--num_processes", "2",
            "--mixed_precision", "no", "--main_process_port", str(_free_port())]


def _max_weight_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    worst = 0.0
    for f in ("adapter_model.safetensors", "r2d_new_tokens.safetensors"):
        x, y = load_file(str(a / f)), load_file(str(b / f))
        assert x.keys() == y.keys(), f
        worst = max(worst, *(float((x[k] - y[k]).abs().max()) for k in x))
    return worst


@pytest.mark.slow
def test_fsdp_config_two_cpu_processes_match_one_process(tmp_path):
    """configs/accelerate/fsdp.yaml under `accelerate launch` with 2 CPU processes (gloo): parameters
    really sharded (FSDP2), and the saved adapter and token rows equal a one-process run's within TOL."""
    from r2d.testing import save_tiny

    model = save_tiny(tmp_path / "tiny")
    data = write_rows(tmp_path / "train.jsonl", synthetic_rows(16))
    one = _train(tmp_path, "one", [sys.executable], 4, model, data)
    fsdp = _train(tmp_path, "fsdp", _launch("fsdp.yaml"), 2, model, data)
    ranks = [json.loads((fsdp / f"rank{i}.json").read_text()) for i in (0, 1)]
    for r in ranks:
        assert (r["distributed_type"], r["num_processes"], r["steps"]) == ("FSDP", 2, 4)
        assert r["local_trainable"] < r["full_trainable"]  # each rank holds a shard, not a replica
    assert sum(r["local_trainable"] for r in ranks) == ranks[0]["full_trainable"]
    assert json.loads((one / "rank0.json").read_text())["distributed_type"] == "NO"
    assert (fsdp / "checkpoint-2" / "adapter_model.safetensors").is_file()
    assert _max_weight_diff(one, fsdp) <= TOL


@pytest.mark.slow
def test_deepspeed_zero2_config_two_cpu_processes_match_one_process(tmp_path):
    """configs/accelerate/deepspeed_zero2.yaml under `accelerate launch` with 2 CPU processes: DeepSpeed's
    CPU accelerator over gloo, optimizer states and gradients partitioned (parameters replicated, as
    ZeRO-2 does), and the saved adapter and token rows equal a one-process run's within TOL (the
    config's gradient clipping at 1.0 is the Trainer's default too)."""
    pytest.importorskip("deepspeed")
    from r2d.testing import save_tiny

    model = save_tiny(tmp_path / "tiny")
    data = write_rows(tmp_path / "train.jsonl", synthetic_rows(16))
    one = _train(tmp_path, "one", [sys.executable], 4, model, data)
    ds = _train(tmp_path, "ds", _launch("deepspeed_zero2.yaml"), 2, model, data)
    for i in (0, 1):
        r = json.loads((ds / f"rank{i}.json").read_text())
        assert (r["distributed_type"], r["num_processes"], r["steps"]) == ("DEEPSPEED", 2, 4)
    assert (ds / "checkpoint-2" / "global_step2").is_dir()  # DeepSpeed's own (partitioned) checkpoint
    assert _max_weight_diff(one, ds) <= TOL


def test_cpu_fsdp_refuses_mixed_precision_and_deepspeed_on_cpu_is_not_use_cpu(monkeypatch):
    """accelerate on CPU processes: FSDP is switched on from the launcher's variables (bf16 refused in one
    line), and a DeepSpeed launch is not marked use_cpu and names gloo (else accelerate drops DeepSpeed or
    counts one process)."""
    from types import SimpleNamespace

    import torch
    from accelerate.utils import DistributedType

    from r2d.training.distributed import device_args, enable_cpu_fsdp

    acc = SimpleNamespace(state=SimpleNamespace(distributed_type=DistributedType.MULTI_CPU, mixed_precision="bf16"))
    assert not enable_cpu_fsdp(acc)  # no FSDP launch: left alone
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ValueError, match="--mixed_precision no"):
        enable_cpu_fsdp(acc)
    if torch.cuda.is_available():
        pytest.skip("device_args on a CUDA machine is not use_cpu anyway")
    assert device_args() == {"use_cpu": True}
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert device_args() == {"use_cpu": False, "ddp_backend": "gloo"}
