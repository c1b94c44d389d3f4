"""Agreement math (accuracy, Cohen's kappa, FPR, FNR) on hand-computed cases."""

import pytest

from r2d.eval.agreement import agreement, cohen_kappa, confusion, kappa_ci


def test_confusion_counts():
    assert confusion([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]) == {"tp": 2, "fp": 1, "tn": 1, "fn": 1}
    with pytest.raises(ValueError):
        confusion([2], [1])


def test_hand_computed_case():
    # tp=40 fp=10 tn=35 fn=15, n=100: po=0.75; p(pred=1)=0.5, p(gold=1)=0.55 -> pe=0.5*0.55+0.5*0.45=0.5
    pred = [1] * 40 + [1] * 10 + [0] * 35 + [0] * 15
    gold = [1] * 40 + [0] * 10 + [0] * 35 + [1] * 15
    a = agreement(pred, gold)
    assert a["n"] == 100 and a["accuracy"] == pytest.approx(0.75)
    assert a["kappa"] == pytest.approx(0.5)
    assert a["fpr"] == pytest.approx(10 / 45) and a["fnr"] == pytest.approx(15 / 55)
    # Wilson interval of 75/100
    lo, hi = a["accuracy_ci"]
    assert lo == pytest.approx(0.6569, abs=1e-3) and hi == pytest.approx(0.8245, abs=1e-3)
    # kappa CI: se = sqrt(0.75*0.25/(100*0.25)) = 0.0866
    klo, khi = a["kappa_ci"]
    assert klo == pytest.approx(0.5 - 1.96 * 0.0866, abs=1e-3) and khi == pytest.approx(0.5 + 1.96 * 0.0866, abs=1e-3)


def test_kappa_edges():
    assert cohen_kappa({"tp": 5, "fp": 0, "tn": 5, "fn": 0}) == pytest.approx(1.0)
    # always predicting the majority class: accuracy 0.8 but kappa 0
    assert cohen_kappa({"tp": 8, "fp": 2, "tn": 0, "fn": 0}) == pytest.approx(0.0)
    assert cohen_kappa({"tp": 0, "fp": 0, "tn": 0, "fn": 0}) is None
    assert kappa_ci({"tp": 0, "fp": 0, "tn": 0, "fn": 0}) is None
    # perfect disagreement
    assert cohen_kappa({"tp": 0, "fp": 5, "tn": 0, "fn": 5}) == pytest.approx(-1.0)


def test_rates_none_without_class():
    a = agreement([1, 0], [1, 1])
    assert a["fpr"] is None and a["fpr_ci"] is None and a["fnr"] == pytest.approx(0.5)
