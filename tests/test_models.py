import torch

from r2d.models import pick_device, pick_dtype


def test_auto_stays_on_cpu_in_fp32_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") is None
    assert pick_dtype("auto", pick_device("auto")) == "float32"


def test_auto_picks_cuda_and_bf16_when_supported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_device("auto") == "cuda"
    assert pick_dtype("auto", "cuda") == "bfloat16"
    assert pick_dtype("auto", "cpu") == "float32"  # an explicit CPU device keeps fp32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert pick_dtype("auto", "cuda:0") == "float32"


def test_explicit_choices_are_kept(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("cpu") == "cpu"
    assert pick_device(None) is None
    assert pick_dtype("float32", "cuda") == "float32"
