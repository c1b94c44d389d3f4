"""``BufferLayer`` (the pruned loop's in-place KV cache) against transformers' ``DynamicLayer``: the same
keys/values, lengths and mask sizes, and bit-identical logits from a model decoding a left-padded batch
whose rows are dropped mid-way."""

import pytest
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from r2d.backends.kv_cache import BufferLayer, buffer_cache
from tests.backends.conftest import make_lively


def _kv(g, batch, n):
    return torch.randn((batch, 2, n, 4), generator=g), torch.randn((batch, 2, n, 4), generator=g)


def test_buffer_layer_matches_dynamic_layer():
    g = torch.Generator().manual_seed(0)
    old, new = DynamicLayer(), BufferLayer(capacity=12)
    assert new.get_seq_length() == 0
    steps = [(5, None), (1, None), (1, torch.tensor([0, 2, 3])), (1, None), (1, torch.tensor([1])), (1, None), (2, None)]
    for n, keep in steps:  # the buffer starts at 10 positions and grows to 12 at the last step
        if keep is not None:
            old.batch_select_indices(keep)
            new.batch_select_indices(keep)
        k, v = _kv(g, old.keys.shape[0] if old.is_initialized else 4, n)
        for a, b in zip(old.update(k, v), new.update(k, v)):
            assert torch.equal(a, b)
        assert torch.equal(old.keys, new.keys) and torch.equal(old.values, new.values)
        assert old.get_seq_length() == new.get_seq_length() and old.get_mask_sizes(1) == new.get_mask_sizes(1)
    old.crop(-2)
    new.crop(-2)
    assert torch.equal(old.keys, new.keys) and new.get_seq_length() == old.get_seq_length() == 10
    assert new._k.shape[2] == 12  # grown from 10
    with pytest.raises(ValueError, match="capacity"):
        new.update(*_kv(g, 1, 6))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_logits_identical_to_dynamic_cache_with_rows_dropped(byte_tok, attn):
    """Prompt forward plus 12 greedy steps of a left-padded batch (prompts of 2..9 tokens), rows dropped at
    steps 3 and 7, the buffer doubled at step 9: every step's logits are bit-identical with either cache."""
    model = make_lively(byte_tok, seed=1)
    model.set_attn_implementation(attn)
    lengths = [9, 3, 6, 2, 8, 5]
    g = torch.Generator().manual_seed(2)
    width = max(lengths)
    ids = torch.randint(3, 300, (len(lengths), width), generator=g)
    mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths])
    position = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    drops = {3: torch.tensor([0, 2, 3, 5]), 7: torch.tensor([1, 3])}

    def run(cache):
        logits = []
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=mask, position_ids=position, cache=cache, use_cache=True)
            m, last = mask, position[:, -1]
            for step in range(12):
                logits.append(out.logits[:, -1])
                nxt = out.logits[:, -1].argmax(-1)
                if step in drops:
                    keep = drops[step]
                    nxt, m, last = nxt[keep], m[keep], last[keep]
                    for layer in cache.layers:
                        layer.batch_select_indices(keep)
                m, last = torch.cat([m, m.new_ones((len(nxt), 1))], 1), last + 1
                out = model(input_ids=nxt[:, None], attention_mask=m, position_ids=last[:, None], cache=cache,
                            use_cache=True)
        return logits

    old = run(DynamicCache(config=model.config))
    cache = buffer_cache(model.config.num_hidden_layers, width + 12)
    new = run(cache)
    assert cache.layers[0]._k.shape[2] == width + 12 > 2 * width  # it did grow
    assert [x.shape[0] for x in new] == [6] * 4 + [4] * 4 + [2] * 4
    for step, (a, b) in enumerate(zip(old, new)):
        assert torch.equal(a, b), f"step {step}: max diff {(a - b).abs().max()}"


def test_keep_rows_drops_leading_positions_alike():
    """``keep_rows`` keeps rows and drops leading positions the same way for ``BufferLayer`` (one copy) and
    ``DynamicLayer`` (a view), and later updates append after the kept positions."""
    from r2d.backends.kv_cache import keep_rows

    g = torch.Generator().manual_seed(3)
    old, new = DynamicCache(), buffer_cache(2, 20)
    for i in range(2):
        k, v = _kv(g, 4, 6)
        old.update(k, v, i), new.update(k, v, i)
    keep_rows(old, torch.tensor([0, 3]), 2)
    keep_rows(new, torch.tensor([0, 3]), 2)
    keep_rows(new, None, 0)  # all rows, nothing dropped: unchanged
    for i in range(2):
        k, v = _kv(g, 2, 1)
        old.update(k, v, i), new.update(k, v, i)
        assert torch.equal(old.layers[i].keys, new.layers[i].keys) and torch.equal(old.layers[i].values, new.layers[i].values)
        assert new.layers[i].get_seq_length() == 5 and new.layers[i].keys.shape[0] == 2


def test_fill_rows_right_aligns_groups():
    """``fill_rows`` writes each group's keys/values right-aligned into one batch, zeros elsewhere."""
    from r2d.backends.kv_cache import fill_rows

    g = torch.Generator().manual_seed(4)
    parts, want = [], torch.zeros((5, 2, 7, 4))
    for rows, n in (([1, 4], 7), ([0, 2, 3], 3)):
        part = DynamicCache()
        k, v = _kv(g, len(rows), n)
        part.update(k, v, 0)
        want[rows, :, 7 - n:] = k
        parts.append((torch.tensor(rows), part))
    cache = buffer_cache(1, 12)
    fill_rows(cache, parts, 5, 7)
    assert torch.equal(cache.layers[0].keys, want) and cache.get_seq_length() == 7
