"""Who may write into a training output directory (``r2d.store.claim_run_dir``).

``r2d train`` writes ``r2d_train_run.json`` (every config field that changes the trained model, plus
the training data's hash) before it trains. A later run into the same directory resumes only when
that is the same; another config, other data or files not written by ``r2d train`` are a one-line
error unless ``overwrite`` (the directory is then emptied first). Fields that do not change the model
(output path, resume/overwrite, logging and checkpoint cadence, report_to) are left out.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from r2d.store import claim_run_dir

RUN_FILE = "r2d_train_run.json"
NOT_MODEL_FIELDS = ("output", "resume", "overwrite", "logging_steps", "save_steps", "save_total_limit", "report_to")


def claim_output_dir(cfg: Any, data: dict, main_process: bool = True) -> None:
    run = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_MODEL_FIELDS}
    run["data (content)"] = data
    claim_run_dir(cfg.output, run, RUN_FILE, "r2d train", overwrite=getattr(cfg, "overwrite", False),
                  resume=cfg.resume, main_process=main_process)
