"""A KV cache for r2d's pruned greedy loop (``HFBackend._greedy_pruned``) that writes each step in place.

transformers' ``DynamicLayer`` appends a step's keys/values with ``torch.cat``, copying the layer's whole
cache every step (about a fifth of a decode step of SmolLM2-135M at batch 32 on CPU). ``BufferLayer``
keeps per layer a buffer (at most prompt width + max new tokens positions, doubled as it fills) and
copies only the new positions into it; attention reads a view of the filled part. The prompt's
forward gets its own key/value tensors back, exactly what ``DynamicLayer`` hands it, and every later step
reads the same values in the same order, so greedy outputs are token-identical
(tests/backends/test_hf_pruned_decode.py, bench/generate_throughput.py). Shown on CPU; on CUDA attention
reads strided views where ``DynamicLayer`` gave contiguous tensors, and a kernel may pick another path there
(run tests/backends/test_kv_cache.py on the GPU before relying on bit-identity). No offloading (``offload``
raises).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer


class BufferLayer(DynamicLayer):
    """A ``DynamicLayer`` over ``[batch, heads, size, head_dim]`` buffers for keys and values, written in place;
    ``keys``/``values`` are views of their first ``get_seq_length()`` positions. The buffers start at twice
    the prompt's length and double when full (never beyond ``capacity``), so memory follows what is used
    rather than the worst case, at the price of a copy on the rare doubling."""

    def __init__(self, capacity: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.capacity, self.length = capacity, 0
        self._k = self._v = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device, self.is_initialized = key_states.device, True
        size = min(self.capacity, 2 * key_states.shape[-2])
        self._k = key_states.new_empty((*key_states.shape[:2], size, key_states.shape[-1]))
        self._v = value_states.new_empty((*value_states.shape[:2], size, value_states.shape[-1]))

    def _move(self, size: int, rows: torch.Tensor | None = None, start: int = 0) -> None:
        """New buffers of ``size`` positions holding positions ``start:`` of the filled part of batch rows
        ``rows`` (default: all)."""
        n = self.length - start

        def move(buf: torch.Tensor) -> torch.Tensor:
            src = buf[:, :, start:self.length] if rows is None else buf[rows.to(buf.device), :, start:self.length]
            new = buf.new_empty((src.shape[0], buf.shape[1], size, buf.shape[-1]))
            new[:, :, :n] = src
            return new

        self._k, self._v = move(self._k), move(self._v)
        self.length = n
        self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        start, end = self.length, self.length + key_states.shape[-2]
        if end > self.capacity:
            raise ValueError(f"BufferLayer: {end} positions exceed its capacity of {self.capacity}")
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        elif end > self._k.shape[2]:
            self._move(min(self.capacity, 2 * end))
        self._k[:, :, start:end].copy_(key_states)
        self._v[:, :, start:end].copy_(value_states)
        self.length = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        if start == 0:  # the prompt's forward attends over its own (contiguous) tensors, as with DynamicLayer
            return key_states, value_states
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.capacity

    def reset(self) -> None:
        super().reset()
        self.length, self._k, self._v = 0, None, None

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"BufferLayer.crop takes a negative count, got {tokens_to_remove}")
        if self.is_initialized and tokens_to_remove:
            self.length = max(0, self.length + tokens_to_remove)
            self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the batch rows ``indices`` (their filled part is gathered into new buffers)."""
        if self.is_initialized:
            self._move(self._k.shape[2], indices)

    reorder_cache = batch_select_indices

    def select(self, indices: torch.Tensor | None, drop_front: int = 0) -> None:
        """Keep the batch rows ``indices`` (all: ``None``) and drop the first ``drop_front`` positions, in one
        copy (``keep_rows``)."""
        if self.is_initialized:
            self._move(self._k.shape[2], indices, drop_front)

    def offload(self) -> None:
        raise NotImplementedError("BufferLayer keeps its buffers on one device (no offloading)")

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("BufferLayer is for greedy decoding (no beams)")


def keep_rows(cache: Cache, indices: torch.Tensor | None, drop_front: int = 0) -> None:
    """Keep the batch rows ``indices`` (all: ``None``) of every layer of ``cache`` and drop each layer's first
    ``drop_front`` positions (left padding that no kept row attends to; the attention mask must lose the same
    columns). ``BufferLayer``s do both in one copy; other layers select rows, then keep a view."""
    for layer in cache.layers:
        if isinstance(layer, BufferLayer):
            layer.select(indices, drop_front)
            continue
        if indices is not None:
            layer.batch_select_indices(indices)
        if drop_front and layer.is_initialized:
            layer.keys, layer.values = layer.keys[:, :, drop_front:], layer.values[:, :, drop_front:]


def fill_rows(cache: Cache, parts: list[tuple[torch.Tensor, Cache]], batch: int, width: int) -> None:
    """Write the prompt caches of several row groups into ``cache`` (empty) as one left-padded batch of
    ``batch`` rows and ``width`` positions: ``parts`` holds (row indices, that group's cache of its own, narrower
    width); a group's positions land right-aligned at columns ``width - its width:``. Columns left of them are
    zeros (finite: the mask hides them, but a NaN would leak through attention)."""
    for i in range(len(parts[0][1].layers)):
        k0, v0 = parts[0][1].layers[i].keys, parts[0][1].layers[i].values
        keys = k0.new_zeros((batch, k0.shape[1], width, k0.shape[-1]))
        values = v0.new_zeros((batch, v0.shape[1], width, v0.shape[-1]))
        for rows, part in parts:
            k, v = part.layers[i].keys, part.layers[i].values
            rows = rows.to(keys.device)
            keys[rows, :, width - k.shape[2]:] = k
            values[rows, :, width - v.shape[2]:] = v
            part.layers[i].keys = part.layers[i].values = None  # freed as we go
        cache.update(keys, values, i)  # a cache without preset layers (``DynamicCache()``) appends them


def buffer_cache(num_layers: int, capacity: int) -> Cache:
    """A cache of ``num_layers`` ``BufferLayer``s holding up to ``capacity`` positions each."""
    return Cache(layers=[BufferLayer(capacity) for _ in range(num_layers)])
