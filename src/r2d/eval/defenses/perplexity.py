"""Perplexity filter (Jain et al. 2023; Alon & Kamfonas 2023): block prompts whose log-perplexity under a
reference causal LM exceeds a threshold. Optimised suffixes such as GCG's have very high perplexity.

log-PPL = mean token negative log-likelihood of the last user turn (no chat template). The threshold
is either given, or calibrated as the maximum log-PPL over benign prompts (default: the JBB benign goals,
``jbb/benign-behaviors.csv``), so that no calibration prompt would be blocked. The JailbreakBench
built-in uses Llama-2-7b-chat; any hf causal LM works here (``model``: alias, path or Hub id).
"""

from __future__ import annotations

import csv
from typing import Any

from r2d import registry
from r2d.backends.base import Backend, Chat, Completion, GenParams
from r2d.eval.defenses.base import blocked_completion, last_user
from r2d.paths import data_file


def log_perplexities(model: Any, tok: Any, texts: list[str], batch_size: int = 8) -> list[float]:
    """Mean per-token NLL of each text (its log-perplexity), batched with right padding."""
    import torch

    out: list[float] = []
    for s in range(0, len(texts), batch_size):
        chunk = [t if t.strip() else " " for t in texts[s:s + batch_size]]
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        dev = next(model.parameters()).device
        ids, mask = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
        m = mask[:, 1:].float()
        nll = -(logp * m).sum(1) / m.sum(1).clamp(min=1)
        out += [float(x) for x in nll]
    return out


def benign_goals(rel: str = "jbb/benign-behaviors.csv", column: str = "Goal") -> list[str]:
    path = data_file(rel)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or column not in rows[0]:
        raise ValueError(f"{path}: no column {column!r} for perplexity calibration")
    return [r[column] for r in rows]


@registry.register("defense", "perplexity-filter")
class PerplexityFilter:
    name = "perplexity-filter"

    def __init__(self, model: str = "smollm2-135m", threshold: float | None = None,
                 calibration_file: str = "jbb/benign-behaviors.csv", calibration_column: str = "Goal",
                 calibration_prompts: list[str] | None = None, model_obj: Any = None, batch_size: int = 8) -> None:
        self.model_name, self.batch_size = model, int(batch_size)
        self.calibration_file, self.calibration_column = calibration_file, calibration_column
        self.calibration_prompts = calibration_prompts
        self._model = model_obj  # (model, tokenizer), e.g. a tiny model in tests
        self.threshold = float(threshold) if threshold is not None else None
        self.calibrated_on: str | None = None

    def lm(self) -> tuple[Any, Any]:
        if self._model is None:
            from r2d.models import load_model

            self._model = load_model(self.model_name, expand=False)
        model, tok = self._model
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "right"
        return model, tok

    def log_ppl(self, texts: list[str]) -> list[float]:
        return log_perplexities(*self.lm(), texts, self.batch_size)

    def calibrate(self) -> float:
        if self.threshold is None:
            prompts = self.calibration_prompts
            self.calibrated_on = f"{len(prompts)} given prompts" if prompts else \
                f"{self.calibration_file}:{self.calibration_column}"
            prompts = prompts or benign_goals(self.calibration_file, self.calibration_column)
            self.threshold = max(self.log_ppl(prompts))
        return self.threshold

    def generate(self, backend: Backend, chats: list[Chat], params: GenParams) -> list[Completion]:
        threshold = self.calibrate()
        scores = self.log_ppl([last_user(c) for c in chats])
        keep = [i for i, s in enumerate(scores) if s <= threshold]
        comps = backend.generate([chats[i] for i in keep], params) if keep else []
        out: list[Completion] = [blocked_completion("perplexity", log_ppl=s, threshold=threshold) for s in scores]
        for i, c in zip(keep, comps):
            c.meta = {**c.meta, "log_ppl": scores[i], "threshold": threshold}
            out[i] = c
        return out

    def params(self) -> dict:
        return {"name": self.name, "model": self.model_name, "threshold": self.threshold,
                "calibrated_on": self.calibrated_on, "score": "mean token NLL of the last user turn"}
