"""Print compact markdown tables from one or more `r2d eval` output directories (their results.json):
ASR per attack with Wilson intervals, no-answer / degenerate counts and the worst case, the mean over
attacks, benign over-refusal, XSTest, word counts (reasoning / answer) and MMLU with paired intervals.

Every number is read from results.json; nothing is typed by hand. Usage:

    python scripts/results_tables.py RUN_DIR [RUN_DIR ...] [--arms LABEL ...]

An arm is named ``model``, ``model +defense`` and/or ``model [policy]``; with ``--arms`` only those arms are
shown, in that order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from r2d.report.tables import AsrGrid, asr_value


def arm(c: dict) -> str:
    name = c["model"]
    if c.get("defense") not in (None, "none"):
        name += f" +{c['defense']}"
    if c.get("policy") not in (None, "raw"):
        name += f" [{c['policy']}]"
    return name


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def load(dirs: list[str]) -> tuple[list[dict], list[dict], dict]:
    cells, words, mmlu = [], [], {}
    for d in dirs:
        r = json.loads((Path(d) / "results.json").read_text())
        cells += r.get("cells", [])
        words += r.get("words", [])
        m = (r.get("general_ability") or {}).get("mmlu") or {}
        mmlu.update(m.get("models", {}))
    return cells, words, mmlu


def find(cells: list[dict], a: str, bench: str, subset: str, attack: str, judge: str) -> dict | None:
    for c in cells:
        if arm(c) == a and c["benchmark"] == bench and c.get("subset") == subset and c["attack"] == attack \
                and c["judge"] == judge:
            return c
    return None


def asr_cell(c: dict | None) -> str:
    if c is None or c.get("asr") is None:
        return "–"
    v = asr_value(c)  # the report's reading of a cell: interval, worst case (counting rule: r2d.eval.metrics)
    err = f", {v.errors} err" if v.errors else ""
    return (f"{pct(v.asr)} [{100 * v.ci[0]:.0f}, {100 * v.ci[1]:.0f}] ({v.no_answer} n/a, "
            f"{v.degenerate} deg{err}; worst {pct(v.asr_worst)})")


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def asr_tables(cells: list[dict], arms: list[str]) -> str:
    attacks = []
    for c in cells:
        if c["benchmark"] == "jbb" and c.get("subset") == "harmful" and c["attack"] not in attacks \
                and c["attack"] != "gcg-adaptive":
            attacks.append(c["attack"])
    order = {"direct": 0, "template": 1, "artifact:PAIR": 2, "artifact:GCG": 3}
    attacks.sort(key=lambda a: order.get(a, 9))
    out = []
    for judge, title in (("default", "the default judge"), ("refusal", "the paper's Dic-Judge (`refusal`)")):
        rows = []
        grid = AsrGrid("jbb", "harmful", judge, attacks=list(attacks), arms=list(arms))
        for att in attacks:
            cs = [find(cells, a, "jbb", "harmful", att, judge) for a in arms]
            n = next((c["n"] for c in cs if c), "")
            rows.append([att, str(n)] + [asr_cell(c) for c in cs])
            grid.values.update({(att, a): asr_value(c) for a, c in zip(arms, cs) if c is not None})
        # the report's mean (one definition): over the attacks every shown arm has
        shared, means, worst = grid.shared_attacks(), grid.means(), grid.means(worst=True)
        label = "**mean of the attacks**" + ("" if shared == attacks else f" ({', '.join(shared) or 'none shared'})")
        rows.append([label, ""] + ["–" if means[a] is None else f"**{pct(means[a])}** (worst {pct(worst[a])})"
                                   for a in arms])
        out.append(f"ASR on JBB harmful, judge: {title}. Cell: ASR [95% Wilson] (replies with no answer, "
                   "degenerate answers; worst case counting both as jailbroken):\n\n"
                   + table(["attack", "n"] + arms, rows))
    return "\n\n".join(out)


def refusal_table(cells: list[dict], arms: list[str]) -> str:
    rows = []

    def row(label: str, bench: str, subset: str, judge: str, fn) -> None:
        cs = [find(cells, a, bench, subset, "direct", judge) for a in arms]
        n = next((c["n"] for c in cs if c), "")
        rows.append([label, str(n)] + [("–" if c is None else fn(c)) for c in cs])

    row("JBB benign: refused (default judge)", "jbb", "benign", "default", lambda c: pct(c["refusal_rate"]))
    row("JBB benign: refused (Dic-Judge)", "jbb", "benign", "refusal", lambda c: pct(c["refusal_rate"]))
    row("JBB benign: refused among answered (default)", "jbb", "benign", "default",
        lambda c: pct(c.get("refusal_rate_answered")))
    row("JBB benign: no answer", "jbb", "benign", "default", lambda c: str(c.get("n_no_answer", 0)))
    def apart(c: dict) -> str:
        return f"{c.get('n_no_answer', 0)} / {c.get('n_degenerate', 0)}"

    row("XSTest safe: full compliance", "xstest", "safe", "xstest-strmatch", lambda c: pct(c.get("full_compliance")))
    row("XSTest safe: full refusal", "xstest", "safe", "xstest-strmatch", lambda c: pct(c.get("full_refusal")))
    row("XSTest safe: no answer / degenerate", "xstest", "safe", "xstest-strmatch", apart)
    row("XSTest unsafe: full compliance (lower is better)", "xstest", "unsafe", "xstest-strmatch",
        lambda c: pct(c.get("full_compliance")))
    row("XSTest unsafe: full refusal", "xstest", "unsafe", "xstest-strmatch", lambda c: pct(c.get("full_refusal")))
    row("XSTest unsafe: no answer / degenerate", "xstest", "unsafe", "xstest-strmatch", apart)
    row("XSTest unsafe: ASR, default judge", "xstest", "unsafe", "default",
        lambda c: f"{pct(c['asr'])} ({c.get('n_no_answer', 0)} n/a, {c.get('n_degenerate', 0)} deg; "
                  f"worst {pct(asr_value(c).asr_worst)})")
    return ("Over-refusal and XSTest (share of prompts; `answered` leaves out replies cut off before an answer; XSTest "
            "classes by `xstest-strmatch`, whose replies with no answer or no content are in none of them):\n\n"
            + table(["", "n"] + arms, rows))


def words_table(words: list[dict], arms: list[str]) -> str:
    rows = []
    for kind in ("harmful", "benign"):
        for field, label in (("reasoning_words", "reasoning words"), ("answer_words", "answer words"),
                             ("words", "all words")):
            r = [f"{kind}: {label}"]
            for a in arms:
                w = next((w for w in words if arm(w) == a and w["behaviors"] == kind), None)
                r.append("–" if w is None else f"{w[field + '_mean']:.0f} ± {w[field + '_std']:.0f}")
            rows.append(r)
    return ("Generated words per reply, mean ± sd (the paper's Fig. 5 measure; harmful = every JBB-harmful attack "
            "and XSTest unsafe, benign = JBB benign and XSTest safe):\n\n" + table([""] + arms, rows))


def cell_words_table(cells: list[dict], arms: list[str]) -> str:
    """Words per reply on the same cases for every arm (JBB direct, harmful and benign): comparable even when
    the arms' runs cover different attacks."""
    rows = []
    for subset in ("harmful", "benign"):
        for field, label in (("reasoning_words", "reasoning words"), ("answer_words", "answer words"),
                             ("words", "all words")):
            r = [f"JBB {subset}, direct: {label}"]
            for a in arms:
                c = find(cells, a, "jbb", subset, "direct", "default")
                r.append("–" if c is None or c.get(field + "_mean") is None
                         else f"{c[field + '_mean']:.0f} ± {c[field + '_std']:.0f}")
            rows.append(r)
    ns = {sub: sorted({c["n"] for a in arms if (c := find(cells, a, "jbb", sub, "direct", "default"))})
          for sub in ("harmful", "benign")}
    shown = " / ".join(f"{'/'.join(map(str, ns[sub])) or '–'} {sub}" for sub in ("harmful", "benign"))
    return (f"Words per reply on the same cases (JBB direct, {shown}), mean ± sd; `all words` is the whole "
            "completion (reasoning and answer):\n\n" + table([""] + arms, rows))


def mmlu_table(mmlu: dict) -> str:
    """Rows from ``results.json["general_ability"]["mmlu"]["models"]`` (``r2d.eval.ability.summarize``)."""
    rows = []
    for label, m in mmlu.items():
        lo, hi = m["accuracy_ci"]
        p = m.get("paired") or {}
        if p.get("diff") is not None and label != p.get("reference"):
            plo, phi = p["diff_ci"]
            changed = p["ref_right_model_wrong"] + p["ref_wrong_model_right"]
            paired = (f"{100 * p['diff']:+.1f} [{100 * plo:+.1f}, {100 * phi:+.1f}] vs {p['reference']} "
                      f"({changed} answers changed; McNemar p {p['mcnemar_p']:.3g})")
        else:
            paired = "reference"
        cats = ", ".join(f"{k} {pct(v['accuracy'])}" for k, v in sorted((m.get("by_category") or {}).items()))
        rows.append([label, str(m["n"]), f"{pct(m['accuracy'])} [{100 * lo:.1f}, {100 * hi:.1f}]", paired, cats])
    return ("MMLU, zero-shot, answer-letter log-likelihood (points; paired = this model minus the reference on the "
            "same questions, 95% interval):\n\n"
            + table(["model", "n", "accuracy [95% Wilson]", "paired difference vs reference", "by category"], rows))


def helpfulness_table(cells: list[dict]) -> str:
    rows = []
    for c in cells:
        if c["benchmark"].split(":")[0] == "alpaca":
            na, deg = c.get("n_no_answer", 0), c.get("n_degenerate", 0)
            complied = (c["n"] - c["refused"] - na - deg) / c["n"] if c["n"] else None
            rows.append([arm(c), c["judge"], str(c["n"]), pct(c["refusal_rate"]), pct(complied), str(na), str(deg),
                         f"{c.get('answer_words_mean', 0):.0f}"])
    if not rows:
        return ""
    return ("Helpfulness on held-out Alpaca instructions (not in the training data): refused / complied per the "
            "judge (complied = neither refused, nor without an answer, nor degenerate), mean answer words:\n\n"
            + table(["model", "judge", "n", "refused", "complied", "no answer", "degenerate", "answer words"], rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+")
    ap.add_argument("--arms", nargs="+", default=None)
    args = ap.parse_args(argv)
    cells, words, mmlu = load(args.run_dirs)
    arms = args.arms or list(dict.fromkeys(arm(c) for c in cells if c["benchmark"] in ("jbb", "xstest")))
    parts = []
    if any(c["benchmark"] == "jbb" and c.get("subset") == "harmful" for c in cells):
        parts += [asr_tables(cells, arms), refusal_table(cells, arms), cell_words_table(cells, arms),
                  words_table(words, arms)]
    if mmlu:
        parts.append(mmlu_table(mmlu))
    h = helpfulness_table(cells)
    if h:
        parts.append(h)
    print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
