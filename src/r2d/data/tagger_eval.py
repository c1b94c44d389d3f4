"""Agreement of the offline pivot tagger (``r2d.data.tagging.tag_step``) with hand labels.

The hand labels (``resources/pivot_labels/star1_hand_labels.jsonl``) hold no STAR-1 text: each is keyed by the
STAR-1 ``id``, the step index from ``split_reasoning`` and a sha256 prefix of the step text; the text is read
from the data directory (``star1/STAR-1.json``), and a step whose text no longer hashes to the stored prefix
(another splitter, another file) is an error, never silently re-labelled. ``split`` is ``dev`` (rows seen while
the cue rules were written and tuned) or ``test`` (labelled before the tagger was run on them, never tuned on).
``r2d data tagger-agreement`` prints the table.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from importlib.resources import files
from pathlib import Path

from r2d.data.tagging import split_reasoning, tag_step
from r2d.pivots import PIVOTS

LABELS_FILE = "resources/pivot_labels/star1_hand_labels.jsonl"


def step_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def reasoning_of(response: str) -> str:
    return response.split("<think>", 1)[-1].split("</think>", 1)[0]


def load_labels(path: str | Path | None = None) -> list[dict]:
    src = Path(path) if path else files("r2d").joinpath(LABELS_FILE)
    return [json.loads(x) for x in src.read_text(encoding="utf-8").splitlines() if x.strip()]


def labelled_steps(star1_path: str | Path, labels: list[dict]) -> list[dict]:
    """Each label with its step text, position and trace length (raises on a hash mismatch)."""
    rows = {str(r["id"]): r for r in json.loads(Path(star1_path).read_text(encoding="utf-8"))}
    out = []
    for lab in labels:
        r = rows.get(str(lab["id"]))
        if r is None:
            raise ValueError(f"{star1_path}: no row with id {lab['id']} (hand label file out of date?)")
        steps = split_reasoning(reasoning_of(r["response"]))
        k = lab["step"]
        if k >= len(steps) or step_hash(steps[k]) != lab["sha256"]:
            raise ValueError(f"{star1_path}: id {lab['id']} step {k}: text does not match the labelled step's hash")
        out.append(lab | {"text": steps[k], "n_steps": len(steps)})
    return out


def agreement(gold: list[str], pred: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support and Cohen's kappa."""
    n = len(gold)
    if n == 0:
        raise ValueError("agreement: no labels")
    acc = sum(g == p for g, p in zip(gold, pred)) / n
    per = {}
    for c in PIVOTS:
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        npred, ngold = sum(p == c for p in pred), sum(g == c for g in gold)
        prec = tp / npred if npred else 0.0
        rec = tp / ngold if ngold else 0.0
        per[c] = {"precision": round(prec, 3), "recall": round(rec, 3),
                  "f1": round(2 * prec * rec / (prec + rec), 3) if prec + rec else 0.0, "support": ngold}
    cg, cp = Counter(gold), Counter(pred)
    pe = sum(cg[c] * cp[c] for c in set(cg) | set(cp)) / (n * n)
    kappa = (acc - pe) / (1 - pe) if pe < 1 else 1.0
    confusion = {g: {p: sum(a == g and b == p for a, b in zip(gold, pred)) for p in PIVOTS} for g in PIVOTS}
    return {"n": n, "accuracy": round(acc, 3), "kappa": round(kappa, 3), "per_class": per, "confusion": confusion}


def tagger_agreement(star1_path: str | Path, labels_path: str | Path | None = None) -> dict:
    """Agreement per split (``dev``, ``test``) and over all labels."""
    steps = labelled_steps(star1_path, load_labels(labels_path))
    for s in steps:
        s["pred"] = tag_step(s["text"], s["step"], s["n_steps"])[0]
    out = {}
    for name in ("dev", "test", "all"):
        sel = [s for s in steps if name == "all" or s.get("split") == name]
        if sel:
            out[name] = agreement([s["label"] for s in sel], [s["pred"] for s in sel]) | {
                "rows": len({s["id"] for s in sel})}
    return out


def render(result: dict) -> str:
    lines = ["| split | rows | steps | accuracy | kappa | " + " | ".join(f"{p} P/R" for p in PIVOTS) + " |",
             "|---|---|---|---|---|" + "---|" * len(PIVOTS)]
    for name, r in result.items():
        pr = " | ".join(f"{r['per_class'][p]['precision']:.2f}/{r['per_class'][p]['recall']:.2f}" for p in PIVOTS)
        lines.append(f"| {name} | {r['rows']} | {r['n']} | {r['accuracy']:.3f} | {r['kappa']:.3f} | {pr} |")
    return "\n".join(lines)
