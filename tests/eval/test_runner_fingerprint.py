"""Issue 12 defects 1, 3, 6: samples are keyed by everything that changes them; bad sizes are refused;
a run where everything failed exits non-zero; a model that fails to load is not reloaded per batch."""

import json

import pytest

from r2d.cli import main
from r2d.eval.runner import EvalConfig, Runner
from r2d.store import JsonlStore

from .test_runner import Counting, cfg, fake_bench  # noqa: F401 - fake_bench registers the fake-test benchmark


def _samples(tmp_path):
    return JsonlStore(tmp_path / "out" / "samples.jsonl").latest("key")


def test_changed_generation_settings_regenerate(tmp_path):
    Runner(cfg(tmp_path), backends={"m": Counting()}).run()
    be = Counting()
    res = Runner(cfg(tmp_path, max_new_tokens=200), backends={"m": be}).run()
    assert len(be.calls) == 6 and res["run_stats"]["stale"] == 6  # nothing reused from the 256-token run
    fps = {r["fingerprint"] for r in _samples(tmp_path).values()}
    assert len(fps) == 6  # one per case, all from the new run
    be = Counting(fail_on_call=True)  # same settings again: everything reused (f3's scripted error aside)
    res = Runner(cfg(tmp_path, max_new_tokens=200, retry_errors=False), backends={"m": be}).run()
    assert res["run_stats"]["generated"] == 0


@pytest.mark.parametrize("change", [{"temperature": 0.7}, {"seed": 3}, {"top_p": 0.9}])
def test_each_sampling_setting_is_in_the_key(tmp_path, change):
    Runner(cfg(tmp_path), backends={"m": Counting()}).run()
    be = Counting()
    Runner(cfg(tmp_path, **change), backends={"m": be}).run()
    assert len(be.calls) == 6


def test_retrained_model_under_same_label_regenerates(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\0" * 1000)
    models = [{"label": "m", "model": str(model), "backend": "mock"}]
    Runner(cfg(tmp_path, models=models), backends={"m": Counting()}).run()
    (model / "model.safetensors").write_bytes(b"\1" * 1000)  # same size, new weights
    be = Counting()
    Runner(cfg(tmp_path, models=models), backends={"m": be}).run()
    assert len(be.calls) == 6


def test_stale_judgments_are_redone(tmp_path):
    Runner(cfg(tmp_path), backends={"m": Counting()}).run()
    res = Runner(cfg(tmp_path, max_new_tokens=100), backends={"m": Counting()}).run()
    assert res["run_stats"]["judged"] >= 5 * 2  # every regenerated sample judged again by both judges
    assert sum(c["n"] for c in res["cells"] if c["judge"] == "refusal") == 5


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"batch_size": -2}, {"max_new_tokens": 0}])
def test_bad_sizes_are_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="must be a positive integer"):
        cfg(tmp_path, **bad)


@pytest.mark.parametrize("limit", [0, -1])
def test_bad_limit_is_refused(tmp_path, limit):
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        Runner(cfg(tmp_path, benchmarks=[{"name": "fake-test", "limit": limit}]))


def test_every_sample_failed_exits_nonzero(tmp_path, capsys, monkeypatch):
    import r2d.eval.runner as R

    calls = []

    def broken(name, **kw):
        calls.append(name)
        raise OSError("no such model: /nope")

    monkeypatch.setattr(R, "get_backend", broken)
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"models": [{"label": "m", "model": "/nope", "backend": "hf"}],
                             "benchmarks": [{"name": "fake-test"}], "batch_size": 1, "progress": False}))
    rc = main(["eval", "--config", str(c), "--output", str(tmp_path / "o"), "--no-progress"])
    assert rc == 1
    assert "every sample failed (6); first error: RuntimeError: loading hf:/nope failed" in capsys.readouterr().err
    assert len(calls) == 1  # not reloaded for each of the 6 batches
