import math

import torch

from r2d.training.losses import cpo_loss, gather_pivot_logits, pivot_stats

PIV = (5, 6, 7)  # SAFE, UNSAFE, RETHINK ids in a 10-token toy vocab


def _fixed():
    logits = torch.zeros(1, 4, 10)
    logits[0, 0, [5, 6, 7]] = torch.tensor([2.0, 0.5, 0.0])  # predicts labels[1] = SAFE
    logits[0, 2, [5, 6, 7]] = torch.tensor([1.0, -1.0, 3.0])  # predicts labels[3] = UNSAFE
    labels = torch.tensor([[-100, 5, 1, 6]])
    return logits, labels


def test_cpo_matches_hand_computation():
    logits, labels = _fixed()
    z, cls = gather_pivot_logits(logits, labels, PIV)
    assert cls.tolist() == [0, 1]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    terms = (-math.log(sig(2.0 - 0.5)), -math.log(sig(-1.0 - 1.0)))
    loss, n = cpo_loss(z, cls)  # per_class (default): one SAFE mean + one UNSAFE mean
    assert n == 2 and abs(loss.item() - sum(terms)) < 1e-6
    loss, n = cpo_loss(z, cls, reduction="pooled")
    assert n == 2 and abs(loss.item() - sum(terms) / 2) < 1e-6


def test_cpo_gradient_raises_margin():
    logits, labels = _fixed()
    logits.requires_grad_(True)
    st = pivot_stats(logits, labels, PIV)
    st.cpo.backward()
    g = logits.grad
    # descending the gradient raises z[t+] and lowers z[t-]
    assert g[0, 0, 5] < 0 < g[0, 0, 6] and g[0, 2, 6] < 0 < g[0, 2, 5]
    with torch.no_grad():
        stepped = logits - 1.0 * g
    m0 = lambda x: (x[0, 0, 5] - x[0, 0, 6], x[0, 2, 6] - x[0, 2, 5])  # noqa: E731
    assert all(a > b for a, b in zip(m0(stepped), m0(logits)))
    assert g[0, 1].abs().sum() == 0 and g[0, 3].abs().sum() == 0  # no pivot target there


def test_rethink_only_with_option_and_accuracy():
    logits = torch.zeros(1, 3, 10)
    logits[0, 0, [5, 6, 7]] = torch.tensor([1.0, 0.0, 0.5])  # target RETHINK, argmax SAFE: wrong
    logits[0, 1, [5, 6, 7]] = torch.tensor([3.0, 2.0, 0.0])  # target SAFE, argmax SAFE: right
    labels = torch.tensor([[-100, 7, 5]])
    ls = torch.nn.functional.logsigmoid
    for red in ("per_class", "pooled"):
        off = pivot_stats(logits, labels, PIV, reduction=red)
        assert off.n_contrasted == 1 and off.n_pivots == 2 and off.n_correct == 1  # [RETHINK]: CE only by default
        assert abs(off.cpo.item() + ls(torch.tensor(1.0)).item()) < 1e-6
    on = pivot_stats(logits, labels, PIV, rethink=True, reduction="pooled")  # RETHINK vs the stronger rival
    assert on.n_contrasted == 2
    expected = -(ls(torch.tensor(0.5 - 1.0)) + ls(torch.tensor(1.0))) / 2
    assert abs(on.cpo.item() - expected.item()) < 1e-6
    on = pivot_stats(logits, labels, PIV, rethink=True)  # per_class: a third class, its own mean
    assert abs(on.cpo.item() - 2 * expected.item()) < 1e-6


def test_no_pivots_gives_zero_with_graph():
    logits = torch.randn(2, 4, 10, requires_grad=True)
    st = pivot_stats(logits, torch.full((2, 4), -100), PIV)
    assert st.cpo.item() == 0 and st.n_pivots == 0
    st.cpo.backward()  # still differentiable (used in the total loss)


def _hand_batch():
    """Two rows, known logits: 3 [SAFE] targets (margins 1, 2, -1), 1 [UNSAFE] (margin 0.5),
    1 [RETHINK] (no CPO term), plus ordinary tokens."""
    logits = torch.zeros(2, 5, 10)
    cells = {(0, 0): [2.0, 1.0, 9.0], (0, 1): [0.0, -2.0, 0.0], (0, 3): [1.0, 0.5, 0.0],
             (1, 0): [-1.0, 0.0, 4.0], (1, 2): [3.0, 3.5, 0.0]}
    for (b, t), v in cells.items():
        logits[b, t, [5, 6, 7]] = torch.tensor(v)
    labels = torch.tensor([[-100, 5, 5, 2, 7],     # t0 -> SAFE, t1 -> SAFE, t2 -> token 2, t3 -> RETHINK
                           [-100, 5, 1, 6, -100]])  # t0 -> SAFE, t1 -> token 1, t2 -> UNSAFE
    return logits, labels


def test_cpo_reductions_on_a_hand_built_batch():
    logits, labels = _hand_batch()
    nls = lambda m: -math.log(1 / (1 + math.exp(-m)))  # noqa: E731
    safe, unsafe = [nls(1.0), nls(2.0), nls(-1.0)], [nls(0.5)]
    per_class = pivot_stats(logits, labels, PIV)  # the default
    assert per_class.n_contrasted == 4 and per_class.n_pivots == 5
    assert abs(per_class.cpo.item() - (sum(safe) / 3 + sum(unsafe) / 1)) < 1e-6
    pooled = pivot_stats(logits, labels, PIV, reduction="pooled")
    assert abs(pooled.cpo.item() - (sum(safe) + sum(unsafe)) / 4) < 1e-6
    # under per_class the lone [UNSAFE] position weighs as much as the three [SAFE] ones together
    logits.requires_grad_(True)
    pivot_stats(logits, labels, PIV).cpo.backward()
    g_unsafe = logits.grad[1, 2, 6].abs().item()
    g_safe = logits.grad[0, 0, 5].abs().item()
    assert abs(g_unsafe - 1 / (1 + math.exp(0.5))) < 1e-6 and abs(g_safe - (1 / (1 + math.exp(1.0))) / 3) < 1e-6
    assert logits.grad[0, 3].abs().sum() == 0  # [RETHINK]: no CPO gradient


def test_cpo_class_missing_from_batch_adds_zero():
    logits, labels = _hand_batch()
    labels[1, 3] = 2  # no [UNSAFE] left: per_class is the [SAFE] mean alone
    nls = lambda m: -math.log(1 / (1 + math.exp(-m)))  # noqa: E731
    st = pivot_stats(logits, labels, PIV)
    assert abs(st.cpo.item() - (nls(1.0) + nls(2.0) + nls(-1.0)) / 3) < 1e-6


def test_unknown_reduction_is_an_error():
    import pytest

    logits, labels = _hand_batch()
    with pytest.raises(ValueError, match="cpo_reduction"):
        pivot_stats(logits, labels, PIV, reduction="sum")


import pytest  # noqa: E402


@pytest.mark.parametrize("reduction,rethink", [("per_class", False), ("pooled", False), ("per_class", True)])
def test_cpo_with_global_counts_splits_a_batch_exactly(reduction, rethink):
    """Data parallelism: each process divides its sums by the counts over all processes, so the
    processes' terms add up to the term of the whole batch, however unevenly the classes fall. With
    each process's own counts (plain means) they do not."""
    torch.manual_seed(0)
    z, cls = torch.randn(11, 3), torch.tensor([0, 0, 0, 0, 0, 1, 2, 1, 1, 2, 0])
    whole, _ = cpo_loss(z, cls, rethink, reduction)
    parts = [(z[:5], cls[:5]), (z[5:], cls[5:])]  # the first part has only [SAFE]
    counts = [int((cls == c).sum()) for c in range(3 if rethink else 2)]
    split = sum(cpo_loss(zp, cp, rethink, reduction, counts=counts)[0] for zp, cp in parts)
    assert torch.allclose(split, whole, atol=1e-6)
    mean_of_means = sum(cpo_loss(zp, cp, rethink, reduction)[0] for zp, cp in parts) / 2
    assert not torch.allclose(mean_of_means, whole, atol=1e-3)
