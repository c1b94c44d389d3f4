"""RPO (Zhou, Li and Wang, "Robust Prompt Optimization for Defending Language Models Against Jailbreaking
Attacks", NeurIPS 2024): a defensive suffix, optimised on the defended model against a set of TRAINING
jailbreaks, appended to every user turn.

Optimisation (``optimize_rpo``, CLI ``r2d rpo optimize``): the greedy coordinate-gradient token search
shared with the GCG attack (``r2d.eval.attacks.gcg.token_search``) minimises the mean loss of a refusal
target over the training prompts, each ``jailbreak + suffix``. RPO's paper optimises against jailbreaks
that are themselves adapted during optimisation; this CPU-sized version optimises against a fixed set
of templated jailbreaks: AdvBench goals in TRAIN-split human-jailbreak templates (never JBB/eval prompts,
and goals that match a JBB behaviour are dropped). On a model whose template opens ``<think>`` the target
is the refusal after ``</think>`` (``whitebox.answer_target``), the answer a judge reads.

The result is saved as JSON with its provenance (model, training prompts, search settings, the loss
curve, seconds, git commit); the ``rpo`` defense reads it (``suffix_file``) and appends the suffix.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from r2d import registry
from r2d.backends.base import Backend, Chat, Completion, GenParams
from r2d.eval.defenses.base import last_user, replace_last_user

REFUSAL_TARGET = "I'm sorry, but I cannot help with that request."
FORMAT = "r2d-rpo-suffix/1"


def training_prompts(n: int = 8, seed: int = 0, max_template_words: int | None = 120) -> list[dict]:
    """``n`` training jailbreaks: AdvBench goals wrapped in TRAIN-split templates (short ones: a small CPU
    budget), goals that contain a JBB behaviour's 8-grams dropped. ``[{"id", "goal", "template_id", "prompt"}]``."""
    from r2d.data.decontam import Decontaminator, eval_prompts
    from r2d.data.seeds import jailbreak

    seeds = jailbreak(max_template_words=max_template_words, per_goal=1, seed=seed)
    dec = Decontaminator(eval_prompts(["jbb"]))
    clean = [s for s in seeds if dec.check(s.meta["goal"]) is None and dec.check(s.prompt) is None]
    if len(clean) < n:
        raise ValueError(f"rpo: only {len(clean)} training jailbreaks after decontamination, asked for {n}")
    pick = random.Random(f"rpo:{seed}").sample(clean, n)
    return [{"id": s.id, "goal": s.meta["goal"], "template_id": s.meta["template_id"], "prompt": s.prompt}
            for s in pick]


def optimize_rpo(model: Any, tok: Any, prompts: list[str], target: str = REFUSAL_TARGET, suffix_len: int = 12,
                 steps: int = 10, search_width: int = 32, topk: int = 32, seed: int = 0, batch_size: int = 16,
                 on_step: Any = None, state: dict | None = None, on_state: Any = None) -> dict:
    """Search a ``suffix_len``-token suffix that minimises the mean refusal loss over ``prompts``.
    ``on_state`` / ``state``: checkpoint the search after each step and continue from a checkpoint
    (``seconds`` then counts the earlier runs too: the checkpoint carries them)."""
    from r2d.eval.attacks.base import user
    from r2d.eval.attacks.gcg import SLOT, search_prompt, token_search
    from r2d.eval.attacks.whitebox import answer_target

    if not prompts:
        raise ValueError("rpo: no training prompts")
    loss_target = answer_target(tok, target)
    sps = [search_prompt(tok, user(f"{p}{SLOT}"), loss_target) for p in prompts]
    t0 = time.perf_counter()
    before = float((state or {}).get("seconds", 0.0))
    save = None
    if on_state is not None:
        def save(st: dict) -> None:
            on_state({**st, "seconds": round(before + time.perf_counter() - t0, 2)})
    r = token_search(model, tok, sps, suffix_len, steps, search_width, topk, seed, batch_size, on_step=on_step,
                     state=state, on_state=save)
    return {"suffix": r["suffix"], "suffix_ids": r["suffix_ids"], "loss": r["loss"], "losses": r["losses"],
            "loss_before": r["losses"][0], "seconds": round(before + time.perf_counter() - t0, 2), "target": target,
            "loss_target": loss_target, "search": {"steps": steps, "search_width": search_width, "topk": topk,
                                                   "suffix_len": suffix_len, "seed": seed}}


def save_suffix(path: str | Path, result: dict, model: str, prompts: list[dict]) -> Path:
    from r2d.provenance import base_provenance

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, "suffix": result["suffix"], "model": model, **{k: v for k, v in result.items()
                                                                             if k != "suffix"},
           "training_prompts": prompts, "provenance": base_provenance()}
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(out)
    return out


def load_suffix(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"defense rpo: suffix file {p} not found (make one with `r2d rpo optimize`)")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"defense rpo: {p}: not valid JSON ({e.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("suffix"), str):
        raise ValueError(f"defense rpo: {p}: not an r2d RPO suffix file (field 'format' must be {FORMAT!r})")
    return doc


@registry.register("defense", "rpo")
class RPO:
    """Appends the optimised suffix to the last user turn. ``suffix_file``: a JSON from ``r2d rpo optimize``
    (its model should be the defended model; a mismatch is warned about, as RPO suffixes do transfer)."""

    name = "rpo"
    single_pass = True  # one backend call on the suffixed chats

    def __init__(self, suffix_file: str | None = None, suffix: str | None = None) -> None:
        if (suffix_file is None) == (suffix is None):
            raise ValueError("defense rpo: give exactly one of suffix_file (from `r2d rpo optimize`) or suffix")
        self.doc = load_suffix(suffix_file) if suffix_file else {"suffix": suffix}
        self.suffix_file, self.suffix = suffix_file, self.doc["suffix"]
        if suffix_file:
            from r2d.provenance import sha256_file

            self.sha256 = sha256_file(suffix_file)

    def generate(self, backend: Backend, chats: list[Chat], params: GenParams) -> list[Completion]:
        model = getattr(backend, "model_name", None) or getattr(getattr(backend, "inner", None), "model_name", None)
        if model and self.doc.get("model") and str(model) != str(self.doc["model"]) and not getattr(self, "_warned", 0):
            print(f"r2d eval: rpo suffix was optimised on {self.doc['model']}, applied to {model} (transfer)",
                  file=sys.stderr)
            self._warned = 1
        return backend.generate([replace_last_user(c, last_user(c) + self.suffix) for c in chats], params)

    def params(self) -> dict:
        d = {"name": self.name, "suffix": self.suffix, "suffix_file": self.suffix_file}
        if self.suffix_file:
            d.update(sha256=self.sha256, optimised_on=self.doc.get("model"), loss_before=self.doc.get("loss_before"),
                     loss=self.doc.get("loss"), search=self.doc.get("search"))
        return d
