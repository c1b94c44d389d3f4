"""Issue 15: an adaptive attack's searches are resumable. A second eval of the same run directory reuses the
suffixes it found (no search, no model load); a changed attack setting or retrained weights search again."""

import pytest

from r2d.eval.attacks import gcg as G
from r2d.eval.runner import EvalConfig, Runner
from r2d.store import JsonlStore

from .test_runner import fake_bench  # noqa: F401 - registers the fake-test benchmark

pytest.importorskip("r2d.backends.hf")


@pytest.fixture
def searches(monkeypatch):
    """Counts GCG searches (the own implementation's entry point)."""
    calls = []
    real = G.own_gcg

    def counting(model, tok, request, *a, **kw):
        calls.append(request)
        return real(model, tok, request, *a, **kw)

    monkeypatch.setattr(G, "own_gcg", counting)
    return calls


def gcg_cfg(tmp_path, model, **attack):
    gcg = {"name": "gcg", "label": "gcg-adaptive", "steps": 2, "search_width": 8, "topk": 4, "suffix_len": 3,
           "impl": "own", **attack}
    return EvalConfig(models=[{"label": "m", "model": str(model), "backend": "hf",
                               "backend_kwargs": {"progress": False}}],
                      benchmarks=[{"name": "fake-test", "subset": "harmful", "limit": 2, "attacks": [gcg],
                                   "judges": ["refusal"]}],
                      max_new_tokens=4, batch_size=2, output=str(tmp_path / "out"), progress=False)


def test_adaptive_gcg_searches_once_across_two_evals_and_again_after_a_change(tmp_path, searches, monkeypatch):
    from r2d.testing import save_tiny
    import r2d.eval.runner as R

    model = save_tiny(tmp_path / "model", seed=0)
    first = Runner(gcg_cfg(tmp_path, model))
    first.run()
    assert len(searches) == 2 and first.stats["generated"] == 2

    # the same eval again: suffixes reused, samples current, the model never loaded
    real_get_backend = R.get_backend
    monkeypatch.setattr(R, "get_backend", lambda *a, **kw: pytest.fail("the model must not be loaded"))
    again = Runner(gcg_cfg(tmp_path, model))
    res = again.run()
    assert len(searches) == 2  # before the fix: searched again on every run (and the model loaded for it)
    assert again.stats.get("searches_reused") == 2 and again.stats.get("searched") == 0 and first.stats["searched"] == 2
    assert again.stats["generated"] == 0 and again.stats["skipped"] == 2 and again.stats["stale"] == 0
    assert res["provenance"]["files"]["searches"] == "searches.jsonl"
    stored = JsonlStore(tmp_path / "out" / "searches.jsonl").read()
    assert len(stored) == 2 and {r["behavior_id"] for r in stored} == {"f0", "f2"}
    monkeypatch.setattr(R, "get_backend", real_get_backend)

    # a changed search setting searches again (and regenerates: the attack's params are in the samples' key)
    steps = Runner(gcg_cfg(tmp_path, model, steps=3))
    steps.run()
    assert len(searches) == 4 and steps.stats["searched"] == 2 and steps.stats["stale"] == 2

    # retrained weights under the same path and label: never a stale suffix
    save_tiny(tmp_path / "model", seed=1)
    retrained = Runner(gcg_cfg(tmp_path, model, steps=3))
    retrained.run()
    assert len(searches) == 6 and retrained.stats["searched"] == 2 and retrained.stats["searches_reused"] == 0


def test_a_killed_attack_keeps_the_searches_it_finished(tmp_path, searches, monkeypatch):
    """Each search is written when it ends: a run killed during the second behaviour's search resumes with it."""
    from r2d.testing import save_tiny

    model = save_tiny(tmp_path / "model")
    real = G.own_gcg  # the counting wrapper

    def dies_on_second(*a, **kw):
        if len(searches) == 1:
            searches.append("killed")
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(G, "own_gcg", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        Runner(gcg_cfg(tmp_path, model)).run()
    monkeypatch.setattr(G, "own_gcg", real)
    resumed = Runner(gcg_cfg(tmp_path, model))
    resumed.run()
    assert len(searches) == 3 and resumed.stats.get("searches_reused") == 1 and resumed.stats.get("searched") == 1
