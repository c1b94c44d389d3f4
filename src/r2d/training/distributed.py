"""Data-parallel plumbing for ``R2DTrainer``: FSDP and DeepSpeed on CPU processes, and the loss
denominators that make an N-process step equal to a one-process step on the same global batch.

accelerate (1.15) only turns a run into FSDP when its processes sit on accelerators: under
``accelerate launch --config_file configs/accelerate/fsdp.yaml`` on CPUs (gloo) it silently falls back
to plain DDP (``MULTI_CPU``) and the config's sharding is ignored. PyTorch's FSDP2 (``fully_shard``)
does run on CPU with gloo, so ``enable_cpu_fsdp`` upgrades such a run to FSDP with the plugin the
launcher described (``FSDP_*`` environment variables), exactly what accelerate would have built on GPUs.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch


def fsdp_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")


def deepspeed_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true")


def device_args() -> dict:
    """TrainingArguments fields that place the run: CPU (gloo when launched on several processes)
    without CUDA. Under DeepSpeed (``accelerate launch`` with a DeepSpeed config) on CPUs the run must not
    be marked ``use_cpu`` (accelerate then drops DeepSpeed) and needs the backend named: DeepSpeed's CPU
    accelerator talks gloo (oneCCL when ``oneccl_bindings_for_pytorch`` is installed; it is not on PyPI).
    Without the name accelerate counts one process while DeepSpeed counts all of them."""
    if torch.cuda.is_available():
        return {"use_cpu": False}
    if deepspeed_requested():
        return {"use_cpu": False, "ddp_backend": "gloo"}
    return {"use_cpu": True}  # also makes torchrun / accelerate on CPU use gloo DDP


def enable_cpu_fsdp(accelerator) -> bool:
    """Switch ``accelerator`` from CPU data parallelism to FSDP when the launcher asked for FSDP;
    True when it did. Mixed precision other than ``no`` is refused (this machine path is fp32)."""
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU or not fsdp_requested():
        return False
    if state.mixed_precision != "no":
        raise ValueError(f"FSDP on CPU processes: mixed precision {state.mixed_precision!r} is not supported "
                         "here; launch with --mixed_precision no")
    plugin = FullyShardedDataParallelPlugin()  # reads the launcher's FSDP_* variables
    if plugin.fsdp_version != 2:
        raise ValueError("FSDP on CPU processes needs fsdp_version: 2 (FSDP2, fully_shard) in the accelerate config")
    from accelerate import PartialState

    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    # every later AcceleratorState() copies PartialState's fields over its own: switch both
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    return True


def fit_fsdp_plugin(plugin, model) -> None:
    """Adjust an FSDP plugin to the model r2d wraps. Every rank already holds the full weights (loaded,
    then LoRA-initialised under the same seed), so ``cpu_ram_efficient_loading`` (move to meta, re-tie,
    broadcast rank 0's state dict) saves nothing, and its re-tying fails on a PEFT model whose token rows
    wrap the tied embedding: it is turned off for PEFT models."""
    from peft import PeftModel

    if isinstance(model, PeftModel) and plugin.cpu_ram_efficient_loading:
        plugin.cpu_ram_efficient_loading = False


def shard_shared_embeddings(model, plugin) -> bool:
    """Put the input and output embedding modules in one FSDP2 group when they share parameters
    without being one module: PEFT's token-row wrappers on a tied model (``embed_tokens`` and
    ``lm_head`` both hold the tied weight and the same trainable rows). accelerate only sees tying
    through ``.weight`` identity, which the wrappers compute afresh, so it would shard the embedding
    alone and then fail on the head's already sharded parameters. Done before ``accelerator.prepare``
    (run it under ``embeddings_hidden``); True when it grouped them."""
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    if plugin.fsdp_version != 2 or out is None or inp is out or isinstance(inp, FSDPModule):
        return False
    if not {id(p) for p in inp.parameters()} & {id(p) for p in out.parameters()}:
        return False
    fully_shard([inp, out], reshard_after_forward=False, offload_policy=plugin.cpu_offload,
                mp_policy=plugin.mixed_precision_policy or MixedPrecisionPolicy())
    return True


@contextmanager
def embeddings_hidden(model):
    """While accelerate prepares a model whose embeddings ``shard_shared_embeddings`` already grouped:
    its FSDP2 preparation reads ``get_input_embeddings().weight`` to detect tying, which on PEFT's
    wrappers computes merged weights from now-sharded parameters and fails. With both getters
    answering None it carves nothing there (the group exists) and shards the rest as usual."""
    model.get_input_embeddings = model.get_output_embeddings = lambda: None
    try:
        yield
    finally:
        del model.get_input_embeddings, model.get_output_embeddings


def global_counts(accelerator, counts: torch.Tensor) -> torch.Tensor:
    """``counts`` (a 1-D integer tensor: label tokens, pivots per class...) summed over all processes;
    the local counts when there is one process."""
    if accelerator.num_processes == 1:
        return counts
    return accelerator.reduce(counts.clone(), reduction="sum")
