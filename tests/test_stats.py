import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from r2d.stats import PairedResult, mcnemar_exact, paired_diff_ci, wilson_ci


def test_mcnemar_matches_hand_computation():
    # b=5, c=0: 2 * P(X <= 0 | Bin(5, 1/2)) = 2/32
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625)
    # b=6, c=1: 2 * (C(7,0) + C(7,1)) / 2^7 = 16/128
    assert mcnemar_exact(6, 1) == pytest.approx(0.125)
    # b=11, c=1: 2 * (1 + 12) / 4096
    assert mcnemar_exact(11, 1) == pytest.approx(26 / 4096)
    # b=3, c=7: 2 * (1 + 10 + 45 + 120) / 1024
    assert mcnemar_exact(3, 7) == pytest.approx(352 / 1024)
    assert mcnemar_exact(4, 4) == 1.0  # capped
    assert mcnemar_exact(0, 0) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_symmetric_and_a_probability(b, c):
    p = mcnemar_exact(b, c)
    assert p == mcnemar_exact(c, b)
    assert 0 < p <= 1


def test_wilson_known_values():
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1.959963984540054**2 / (10 + 1.959963984540054**2))
    lo, hi = wilson_ci(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson_ci(0, 0) is None


def test_paired_result_counts_and_direction():
    first = [True, True, True, False, False, True]
    second = [True, False, False, False, True, False]
    r = PairedResult.from_outcomes(first, second)
    assert (r.n, r.both, r.only_first, r.only_second, r.neither) == (6, 1, 3, 1, 1)
    assert r.asr_first == pytest.approx(4 / 6) and r.asr_second == pytest.approx(2 / 6)
    assert r.diff == pytest.approx(-2 / 6)
    assert r.p_value == pytest.approx(mcnemar_exact(3, 1))
    with pytest.raises(ValueError):
        PairedResult.from_outcomes([True], [])


@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
def test_newcombe_interval_contains_estimate_and_is_bounded(a, b, c, d):
    n = a + b + c + d
    lo, hi = paired_diff_ci(a, b, c, d)
    if n == 0:
        assert math.isnan(lo) and math.isnan(hi)
        return
    diff = (c - b) / n
    assert -1.0 <= lo <= diff + 1e-12 and diff - 1e-12 <= hi <= 1.0


def test_newcombe_interval_matches_published_example():
    # Bentur et al. (2009) airway hyper-responsiveness, as worked in Fagerland, Lydersen & Laake,
    # "Statistical Analysis of Contingency Tables" ch. 8: both 1, only-before 1, only-after 7, neither 12;
    # Newcombe square-and-add interval for before - after: -0.507 to -0.026 (ours is after - before).
    lo, hi = paired_diff_ci(1, 1, 7, 12)
    assert lo == pytest.approx(0.026, abs=1e-3) and hi == pytest.approx(0.507, abs=1e-3)


def test_newcombe_interval_narrows_with_more_cases():
    lo1, hi1 = paired_diff_ci(2, 5, 1, 2)
    lo2, hi2 = paired_diff_ci(20, 50, 10, 20)
    assert hi2 - lo2 < hi1 - lo1
    lo, hi = paired_diff_ci(0, 10, 0, 0)  # every case flips from jailbroken to safe
    assert hi < 0 and lo >= -1.0


def test_cluster_test_counts_a_behaviour_once():
    """Issue 10: several attacks share one behaviour. 3 behaviours x 4 attacks, all flipping safe under B:
    McNemar on 12 'independent' pairs gives p = 2/4096, but only 3 behaviours moved: the exact cluster
    sign-flip p is 2/2**3 = 0.25."""
    from r2d.stats import cluster_paired_test

    first = [True] * 12
    second = [False] * 12
    clusters = [i // 4 for i in range(12)]
    assert mcnemar_exact(12, 0) < 0.001
    ct = cluster_paired_test(first, second, clusters)
    assert ct.exact and ct.clusters == 3 and ct.p_value == pytest.approx(0.25)
    assert ct.diff_ci == (-1.0, -1.0)
    r = PairedResult.from_outcomes(first, second, clusters)
    assert r.p_value == pytest.approx(0.25) and r.diff == -1.0


def test_cluster_test_singletons_equal_sign_test():
    from r2d.stats import cluster_paired_test

    first = [True] * 6 + [False] * 4
    second = [False] * 5 + [True] * 5
    ct = cluster_paired_test(first, second, list(range(10)))
    b, c = 5, 4  # only first: cases 0-4; only second: 6-9
    assert ct.p_value == pytest.approx(mcnemar_exact(b, c))


def test_cluster_test_many_clusters_monte_carlo_is_seeded():
    from r2d.stats import cluster_paired_test

    first = [i % 3 == 0 for i in range(200)]
    second = [i % 5 == 0 for i in range(200)]
    clusters = [i // 2 for i in range(200)]
    a, b = cluster_paired_test(first, second, clusters), cluster_paired_test(first, second, clusters)
    assert not a.exact and a.p_value == b.p_value and 0 < a.p_value <= 1
    lo, hi = a.diff_ci
    assert lo <= sum(second) / 200 - sum(first) / 200 <= hi


def test_mean_std_one_convention():
    from r2d.stats import mean_std

    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)  # sample std (n - 1)
    assert mean_std([5.0]) == (5.0, 0.0) and mean_std([]) == (None, None)
