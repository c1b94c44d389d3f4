"""scripts/fit_default_judge.py on synthetic labelled rows with a fake reader: the reader cache (one made with the
yes/no logit serves a run without it; other settings recompute) and a ``--yes-no grid`` fit whose weights file
the ``default`` judge loads and applies with the same column layout as the fit."""

import json
import sys
import zlib

import numpy as np
import pytest

from r2d.eval import judge_validation as jv
from r2d.eval.judges import default as dj
from r2d.eval.judges import lm_features as lf
from tests.scripts import load_script

DIM = 4
WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river mountain castle garden "
         "window engine paper pencil rocket violin harbor meadow lantern").split()


@pytest.fixture(scope="module")
def fit():
    return load_script("scripts/fit_default_judge.py")


def _vec(*key) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(json.dumps(key).encode())).standard_normal(DIM)


class FakeReader:
    """Deterministic per-(answer, layer, pooling) noise; the yes/no logit carries the label (``LABEL``)."""

    LABEL: dict[str, int] = {}
    calls = 0

    def __init__(self, spec: lf.ReaderSpec) -> None:
        self.spec = spec

    def features(self, goals, contexts, answers):
        FakeReader.calls += 1
        rows = []
        for a in answers:
            r = [_vec(a, layer, p) for layer in self.spec.layers for p in self.spec.pooling]
            if self.spec.yes_no:
                r.append(np.array([3.0 if self.LABEL[a] else -3.0]) + 0.1 * _vec(a, "yn")[:1])
            rows.append(np.concatenate(r))
        return np.array(rows)


def _rows(n_goals: int = 48) -> list[jv.LabelledRow]:
    rng = np.random.default_rng(0)
    rows = []
    for g in range(n_goals):
        for k in range(2):
            words = rng.permutation(WORDS)[:12]
            text = f"Answer {g}-{k}: " + " ".join(words) + f" and item{g}x{k} closes here."
            lab = int(rng.random() < 0.5)
            FakeReader.LABEL[text] = lab
            rows.append(jv.LabelledRow(set="harmbench" if g % 4 else "jbb", row_id=f"{g}-{k}", behavior_id=f"b{g}",
                                       goal=f"Describe topic number {g} in detail", prompt=f"Describe topic {g}",
                                       response=text, humans=[lab] * 3))
    return rows


def test_reader_cache_with_yes_no_serves_a_run_without(fit, tmp_path, monkeypatch):
    monkeypatch.setattr(lf, "LMReader", FakeReader)
    rows, cache = _rows(4), str(tmp_path / "c.npz")
    spec = lf.ReaderSpec(model="fake", layers=(0, 1, 2), pooling=("last", "mean"), yes_no=True)
    FakeReader.calls = 0
    H, yn = fit.reader_features(rows, spec, cache)
    assert H.shape == (8, 3, 2, DIM) and yn.shape == (8,) and FakeReader.calls == 1
    assert np.allclose(H[:, 1, 1], [_vec(r.response, 1, "mean") for r in rows])
    H2, yn2 = fit.reader_features(rows, lf.ReaderSpec(model="fake", layers=(0, 1, 2), pooling=("last", "mean")), cache)
    assert yn2 is None and np.array_equal(H2, H) and FakeReader.calls == 1
    fit.reader_features(rows, lf.ReaderSpec(model="fake", layers=(0, 1, 2), answer_tokens=64), cache)
    assert FakeReader.calls == 2  # other settings: recomputed, never reused


def test_yes_no_grid_fit_loads_in_the_default_judge(fit, tmp_path, monkeypatch):
    rows = _rows()
    hb, jb = [r for r in rows if r.set == "harmbench"], [r for r in rows if r.set == "jbb"]
    monkeypatch.setattr(jv, "load_harmbench", lambda: (hb, {"rows": len(hb)}))
    monkeypatch.setattr(jv, "load_jbb", lambda: (jb, {"rows": len(jb)}))
    monkeypatch.setattr(lf, "LMReader", FakeReader)
    out = tmp_path / "w.json"
    monkeypatch.setattr(sys, "argv", ["fit", "--model", "fake", "--layers", "1,2", "--poolings", "mean,last+mean",
                                      "--lams", "1,10", "--folds", "3", "--seeds", "1", "--base", "rules",
                                      "--yes-no", "grid", "--out", str(out)])
    assert fit.main() == 0
    w = json.loads(out.read_text())
    # only the logit carries the label: every selection takes a block with it, and the held-out rows agree
    assert w["selection"]["block"].endswith("+yn") and w["reader"]["yes_no"] is True
    assert all(c["block"].endswith("+yn") for c in w["cv"]["inner_choices"])
    assert min(w["cv"]["accuracy_mean"].values()) >= 0.9
    assert w["cv"]["grid"]["yes_no"] == "grid"
    j = dj.DefaultJudge(weights=str(out))
    assert j.spec.yes_no and j.spec.model == "fake"
    j._reader = FakeReader(j.spec)
    verdicts = j.judge([r.judge_input() for r in rows])
    assert all(v.label in ("compliance", "refusal") for v in verdicts)
    assert np.mean([(v.label == "compliance") == bool(r.gold) for v, r in zip(verdicts, rows)]) >= 0.95
