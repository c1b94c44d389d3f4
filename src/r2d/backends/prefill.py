"""The prompt forward of r2d's pruned greedy loop (``HFBackend._greedy_pruned``) in groups of rows of similar length.

A left-padded batch that mixes ~450-token jailbreak templates with ~40-token requests spends most of its prompt
forward on padding. ``length_groups`` splits a batch's rows (by prompt length) into groups whose padded size
plus a per-forward overhead is smallest; ``grouped_prefill`` runs one forward per group, each padded only to
its own longest row, and writes every group's keys/values into the loop's cache as the one left-padded batch
the decode steps expect (``kv_cache.fill_rows``: a row's positions right-aligned, the columns left of its
prompt masked as before). Position ids stay ``cumsum(mask) - 1`` per row and the first step's logits come
from each row's last prompt position, so the arithmetic per row is the same; only the batch shapes differ,
which can change float rounding (bench/prefill.py compares the generated ids with the padded forward's).
"""

from __future__ import annotations

from typing import Any

import torch

# The cost model of a forward of ``rows`` x ``width`` padded tokens, in token units:
# ``rows * width * (1 + width / ATTENTION_WIDTH) + FORWARD_OVERHEAD_TOKENS``. Fitted to SmolLM2-135M on one CPU
# thread (fp32): ~3.0 CPU ms per token, +0.6 ms per token at width 450 (attention), ~100 ms per forward.
FORWARD_OVERHEAD_TOKENS = 32
ATTENTION_WIDTH = 2000


def length_groups(lengths: list[int], overhead: int | None = None) -> list[list[int]]:
    """Row indices in groups (longest rows first) minimising the summed cost of their forwards (the model
    above; ``overhead`` defaults to ``FORWARD_OVERHEAD_TOKENS``) over the splits of the length-sorted rows
    (exact, by dynamic programming over the split points)."""
    overhead = FORWARD_OVERHEAD_TOKENS if overhead is None else overhead
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of grouping the first j sorted rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):  # a group of sorted rows i..j-1, padded to the longest, lengths[order[i]]
            w = lengths[order[i]]
            c = best[i] + (j - i) * w * (1 + w / ATTENTION_WIDTH) + overhead
            if c < best[j]:
                best[j], cut[j] = c, i
    groups, j = [], n
    while j:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


def prefill_groups(mode: str, lengths: list[int], device_type: str) -> list[list[int]]:
    """The row groups of a batch's prompt forward for the hf backend's ``prefill`` option: ``"grouped"`` by
    ``length_groups``, ``"padded"`` one group, ``"auto"`` grouped on CPU (where the cost model above was fitted
    and measured) and one group on other devices (several small forwards are unmeasured there)."""
    if mode == "grouped" or (mode == "auto" and device_type == "cpu"):
        return length_groups(lengths)
    return [list(range(len(lengths)))]


def grouped_prefill(model: Any, input_ids: torch.Tensor, attention: torch.Tensor, position: torch.Tensor,
                    cache: Any, groups: list[list[int]]) -> torch.Tensor:
    """The prompt forward of a left-padded batch run per group of rows (``groups``: row indices), filling
    ``cache`` (empty) as one forward over the whole batch would; returns the last position's logits, one row
    per batch row."""
    from transformers import DynamicCache

    from r2d.backends.kv_cache import fill_rows

    if len(groups) == 1:  # nothing to split: the plain forward
        return model(input_ids=input_ids, attention_mask=attention, position_ids=position, cache=cache,
                     use_cache=True, logits_to_keep=1).logits[:, -1]
    batch, width = input_ids.shape
    lengths = attention.sum(-1)
    parts, logits = [], None
    for rows in groups:
        idx = torch.tensor(rows, device=input_ids.device)
        start = width - int(lengths[idx].max())
        part = DynamicCache(config=model.config)
        out = model(input_ids=input_ids[idx, start:], attention_mask=attention[idx, start:],
                    position_ids=position[idx, start:], cache=part, use_cache=True, logits_to_keep=1).logits[:, -1]
        if logits is None:
            logits = out.new_empty((batch, out.shape[-1]))
        logits[idx] = out
        parts.append((idx, part))
    fill_rows(cache, parts, batch, width)
    return logits
