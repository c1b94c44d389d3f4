"""Run by test_distributed: one short LoRA + token-rows training run, alone (plain python) or as one
process of ``accelerate launch`` (FSDP, DeepSpeed). ``batch`` is the per-process batch size. Each rank
then writes what the test checks: the backend accelerate ran with, the step count, and whether its
trainable parameters are sharded (FSDP2: DTensors holding part of each tensor)."""

import json
import os
import sys

from r2d.training.config import TrainConfig
from r2d.training.trainer import train

model, data, out, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
trainer = train(TrainConfig(model=model, data=data, output=out, max_steps=4, batch_size=batch, lora_r=2,
                            lora_alpha=4, learning_rate=1e-2, warmup_ratio=0.0, save_steps=2, logging_steps=1))
local = full = 0
for p in trainer.model.parameters():
    if p.requires_grad:
        full += p.numel()
        local += p.to_local().numel() if hasattr(p, "to_local") else p.numel()
rank = int(os.environ.get("RANK", "0"))
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump({"distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1],
               "num_processes": trainer.accelerator.num_processes, "steps": trainer.state.global_step,
               "local_trainable": local, "full_trainable": full}, f)
