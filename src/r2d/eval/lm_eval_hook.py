"""Optional general-ability check with EleutherAI's lm-evaluation-harness (the paper's Table 3 tasks:
arc_easy, arc_challenge, boolq, piqa, sciq, mmlu subsets).

Runs only when ``lm_eval`` is importable and the model is served by the ``hf`` backend (it needs the
weights); otherwise the result says why it was skipped. Accuracies go to
``results.json["general_ability"][model_label]``.
"""

from __future__ import annotations

import importlib.util
from typing import Any


def run_lm_eval(model: Any, tasks: list[str], limit: int | None = None, num_fewshot: int | None = None,
                batch_size: int = 8) -> dict:
    """``model``: a ``ModelSpec`` (label, model, backend). Returns {task: {metric: value}} or {skipped}."""
    if importlib.util.find_spec("lm_eval") is None:
        return {"skipped": "lm-eval not installed (pip install lm-eval)"}
    if getattr(model, "backend", "hf") != "hf":
        return {"skipped": f"lm-eval needs model weights; backend {model.backend!r} is not hf"}
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from r2d.models import load_model

    hf_model, tok = load_model(model.model)
    lm = HFLM(pretrained=hf_model, tokenizer=tok, batch_size=batch_size)
    out = lm_eval.simple_evaluate(model=lm, tasks=list(tasks), limit=limit, num_fewshot=num_fewshot)
    res = {}
    for task, metrics in out.get("results", {}).items():
        res[task] = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"tasks": res, "limit": limit, "num_fewshot": num_fewshot,
            "lm_eval_version": getattr(lm_eval, "__version__", "unknown")}
