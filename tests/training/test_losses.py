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
    loss, n = cpo_loss(z, cls)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = (-math.log(sig(2.0 - 0.5)) - math.log(sig(-1.0 - 1.0))) / 2
    assert n == 2 and abs(loss.item() - expected) < 1e-6


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
    off = pivot_stats(logits, labels, PIV)
    assert off.n_contrasted == 1 and off.n_pivots == 2 and off.n_correct == 1  # [RETHINK]: CE only by default
    assert abs(off.cpo.item() + ls(torch.tensor(1.0)).item()) < 1e-6
    on = pivot_stats(logits, labels, PIV, rethink=True)  # RETHINK vs the stronger of SAFE/UNSAFE
    assert on.n_contrasted == 2
    expected = -(ls(torch.tensor(0.5 - 1.0)) + ls(torch.tensor(1.0))) / 2
    assert abs(on.cpo.item() - expected.item()) < 1e-6


def test_no_pivots_gives_zero_with_graph():
    logits = torch.randn(2, 4, 10, requires_grad=True)
    st = pivot_stats(logits, torch.full((2, 4), -100), PIV)
    assert st.cpo.item() == 0 and st.n_pivots == 0
    st.cpo.backward()  # still differentiable (used in the total loss)
