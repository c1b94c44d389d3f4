"""Who may write into a training output directory.

``r2d train`` writes ``r2d_train_run.json`` (the run fingerprint: every config field that changes the
trained model, plus the training data's hash) before it trains. A later run into the same directory
resumes only when its fingerprint is the same; an empty or missing directory is claimed; anything else
(another config, other data, files not written by ``r2d train``) is a one-line error unless
``overwrite`` (the directory is then emptied first). Fields that do not change the model (output path,
resume/overwrite, logging and checkpoint cadence, report_to) are left out of the fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from r2d.store import fingerprint

RUN_FILE = "r2d_train_run.json"
NOT_MODEL_FIELDS = ("output", "resume", "overwrite", "logging_steps", "save_steps", "save_total_limit", "report_to")


def run_fingerprint(cfg: Any, data: dict) -> dict:
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_MODEL_FIELDS}
    return {"fingerprint": fingerprint([fields, data]), "config": fields, "data": data}


def claim_output_dir(cfg: Any, data: dict, main_process: bool = True) -> None:
    out = Path(cfg.output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is a file, not a directory")
    run = run_fingerprint(cfg, data)
    entries = list(out.iterdir()) if out.is_dir() else []
    if entries and getattr(cfg, "overwrite", False):
        if main_process:
            shutil.rmtree(out)
        entries = []
    if entries:
        marker = out / RUN_FILE
        if not marker.is_file():
            raise ValueError(f"output directory {out} is not empty and was not written by r2d train; "
                             f"choose another --output or pass --overwrite")
        old = json.loads(marker.read_text())
        if old.get("fingerprint") != run["fingerprint"]:
            diff = sorted(k for k in set(old.get("config", {})) | set(run["config"])
                          if old.get("config", {}).get(k) != run["config"].get(k))
            if old.get("data") != run["data"]:
                diff.append("data (content)")
            raise ValueError(f"output directory {out} holds a run with another config ({', '.join(diff) or 'other'}); "
                             f"choose another --output or pass --overwrite to start afresh")
        if not cfg.resume:
            raise ValueError(f"output directory {out} already holds this run; pass --resume to continue it "
                             f"or --overwrite to start afresh")
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / RUN_FILE).write_text(json.dumps(run, indent=2, default=str) + "\n")
