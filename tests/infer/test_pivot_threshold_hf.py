"""pivot-threshold in the hf generation loop: small tau forces [UNSAFE] (then refuses), tau=1.01 never does."""

import torch
from transformers import LogitsProcessor

from r2d.backends.base import GenParams
from r2d.infer.policies import DEFAULT_REFUSAL, generate_with_policy
from r2d.pivots import pivot_ids


class PreferSafe(LogitsProcessor):
    """Makes the random model put its mass on pivots: [SAFE] first, P([UNSAFE] | pivots) = 1/(e+2) ~ 0.21."""

    def __init__(self, ids):
        self.ids = ids

    def __call__(self, input_ids, scores):
        out = torch.full_like(scores, -1e4)
        out[:, self.ids.safe], out[:, self.ids.unsafe], out[:, self.ids.rethink] = 1.0, 0.0, 0.0
        return out


def _run(backend, tau):
    ids = pivot_ids(backend.tokenizer)
    params = GenParams(max_new_tokens=5, extra={"logits_processors": [PreferSafe(ids)]})
    return generate_with_policy(backend, [[{"role": "user", "content": "hi"}]], params, "pivot-threshold", tau=tau)[0]


def test_small_tau_forces_unsafe_and_refuses(lively):
    c = _run(lively, 0.1)
    assert c.text == DEFAULT_REFUSAL and c.meta["policy_refused"] is True
    assert c.meta["stop"] == "[UNSAFE]" and c.completion_tokens == 1  # stopped right at the forced pivot
    assert c.meta["pivot_probs"][0]["pivot"] == "[UNSAFE]"
    assert abs(c.meta["pivot_probs"][0]["[UNSAFE]"] - 1 / (2.718281828 + 2)) < 1e-3  # the model's own view


def test_tau_above_one_never_forces(lively):
    c = _run(lively, 1.01)
    assert c.meta["raw_text"] == "[SAFE]" * 5 and c.meta["policy_refused"] is False and c.text == "[SAFE]" * 5
