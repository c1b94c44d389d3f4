"""Run by ``accelerate launch`` in test_distributed: train a few steps, then each rank writes a hash of
its trainable weights so the test can check every rank ended with the same model."""

import hashlib
import os
import sys

from r2d.training.config import TrainConfig
from r2d.training.trainer import train

model, data, out = sys.argv[1:4]
trainer = train(TrainConfig(model=model, data=data, output=out, max_steps=4, batch_size=2, lora_r=2,
                            lora_alpha=4, learning_rate=1e-2, save_steps=2, logging_steps=1))
h = hashlib.sha256()
for name, p in sorted(trainer.model.named_parameters()):
    if p.requires_grad:
        h.update(name.encode() + p.detach().cpu().numpy().tobytes())
rank = int(os.environ.get("RANK", "0"))
world = int(os.environ.get("WORLD_SIZE", "1"))
with open(os.path.join(out, f"rank{rank}.sha"), "w") as f:
    f.write(f"{trainer.accelerator.num_processes} {trainer.state.global_step} {h.hexdigest()}\n")
