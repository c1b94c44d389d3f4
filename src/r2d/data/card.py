"""The dataset card: counts by label, source, teacher and pivot, the pivot-sequence distribution per label,
length statistics per label (steps, words of reasoning and answer), teacher and judge, the rejection reasons
and the decontamination summary. ``render_card`` works on any SwaRD file (rows
without label/source count as "unknown"; provenance is optional)."""

from __future__ import annotations

import statistics
from collections import Counter

from r2d.reasoning import parse

TEMPLATE_NOTE = ("**Teacher note.** The `template` teacher is NOT a reasoning model: its reasoning is label-driven "
                 "wording (a few phrasings per step, the harm category and any jailbreak wrapper named), written from "
                 "each seed's label. It teaches the pivot format and early flagging, not genuine deliberation.")


def _stats(xs: list[int]) -> str:
    if not xs:
        return "n/a"
    return f"mean {statistics.mean(xs):.1f}, median {statistics.median(xs):g}, min {min(xs)}, max {max(xs)}"


def _table(counter: Counter, head: str, unit: str = "rows") -> list[str]:
    out = [f"| {head} | {unit} |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    return out


_SHORT = {"[SAFE]": "S", "[UNSAFE]": "U", "[RETHINK]": "R"}
DATASET_NOTE = ("**Teacher note.** Rows with `meta.teacher: dataset` reuse an existing trace (`meta.origin` names the file "
                "and row); pivot-less traces were split into steps and tagged by the offline cue-phrase tagger "
                "(`r2d.data.tagging.tag_step`; its agreement with hand labels: `r2d data tagger-agreement`). "
                "Rows with `meta.teacher: composer` have reasoning written by r2d's composer (prompt-conditioned "
                "templates, NOT a model) and the source dataset's answer; `template` rows are label-driven wording.")


def pivot_sequence(pivots: list[str]) -> str:
    """``[RETHINK], [UNSAFE], [SAFE]`` -> ``R-U-S`` (steps only; the answer's pivot is counted apart)."""
    return "-".join(_SHORT.get(p, "?") for p in pivots) or "(none)"


def card_stats(rows: list[dict]) -> dict:
    labels, sources, step_piv, ans_piv, first = Counter(), Counter(), Counter(), Counter(), Counter()
    teachers, seqs = Counter(), {}
    by_label: dict[str, dict[str, list[int]]] = {}
    n_steps, step_words, ans_words, malformed = [], [], [], 0
    for r in rows:
        lab = r.get("label", "unknown")
        labels[lab] += 1
        sources[r.get("source", "unknown")] += 1
        meta = r.get("meta") if isinstance(r.get("meta"), dict) else {}
        teachers[(meta.get("teacher", "unknown"), meta.get("reasoning_source", ""))] += 1
        p = parse(r["messages"][-1]["content"])
        seqs.setdefault(lab, Counter())[pivot_sequence([s.pivot or "none" for s in p.steps])] += 1
        d = by_label.setdefault(lab, {"steps": [], "reasoning_words": [], "answer_words": []})
        d["steps"].append(len(p.steps))
        d["reasoning_words"].append(sum(len(s.text.split()) for s in p.steps))
        d["answer_words"].append(len(p.answer.split()))
        malformed += not p.well_formed
        n_steps.append(len(p.steps))
        step_words += [len(s.text.split()) for s in p.steps]
        ans_words.append(len(p.answer.split()))
        step_piv.update(s.pivot or "none" for s in p.steps)
        ans_piv[p.answer_pivot or "none"] += 1
        first[(r.get("label", "unknown"), p.steps[0].pivot if p.steps else "none")] += 1
    return {"rows": len(rows), "labels": labels, "sources": sources, "step_pivots": step_piv, "answer_pivots": ans_piv,
            "first_pivot": first, "steps": n_steps, "step_words": step_words, "answer_words": ans_words,
            "malformed": malformed, "teachers": teachers, "pivot_sequences": seqs, "by_label": by_label}


def render_sequences(seqs: dict[str, Counter], top: int = 8) -> list[str]:
    """Per label: how many distinct step-pivot sequences, the share of the commonest, and the top ones."""
    out = ["| label | rows | distinct sequences | commonest share | top sequences (rows) |", "|---|---|---|---|---|"]
    for lab, c in sorted(seqs.items()):
        n = sum(c.values())
        tops = ", ".join(f"{k} ({v})" for k, v in c.most_common(top))
        out.append(f"| {lab} | {n} | {len(c)} | {c.most_common(1)[0][1] / n:.2f} | {tops} |")
    return out


def render_card(rows: list[dict], rejected: list[dict] | None = None, prov: dict | None = None,
                title: str = "SwaRD dataset") -> str:
    s = card_stats(rows)
    lines = [f"# {title}", "", f"{s['rows']} training rows (SwaRD chat JSONL: `<think>` steps each ending in a pivot, "
             f"then an answer ending in a pivot); {s['malformed']} malformed.", ""]
    if prov:
        t, j = prov.get("teacher", {}), prov.get("judge", {})
        lines += ["## How it was made", "", f"- teacher: `{t}`", f"- judge (step re-tagging): `{j}`",
                  f"- git commit: `{prov.get('git_commit')}`; built {prov.get('time')}",
                  f"- seed mixture: `{prov.get('config', {}).get('seeds')}` size={prov.get('config', {}).get('size')}"
                  f" seed={prov.get('config', {}).get('seed')}",
                  "- pivot re-tagging rule: see `r2d.data.tagging` (judge unsafe -> [UNSAFE]; safe on a benign prompt "
                  "-> [SAFE], a teacher's [RETHINK] kept; safe on a harmful prompt keeps the teacher's pivot, "
                  "[RETHINK] if none; judge errors reject the row)", ""]
        if "template" in str(t.get("teacher", "")):
            lines += [TEMPLATE_NOTE, ""]
        if "dataset" in str(t.get("teacher", "")):
            lines += [DATASET_NOTE, ""]
            if t.get("max_steps") or t.get("max_step_words") or t.get("max_answer_words"):
                lines += [f"**Shortening.** Traces keep at most {t.get('max_steps') or 'all'} steps (by priority: the first, "
                          f"the first [UNSAFE] where the decision is made, the last, the first later [RETHINK]; a wrapped "
                          f"prompt's wrapper step counts as one), each cut to <= {t.get('max_step_words') or 'any'} words "
                          f"at a sentence boundary before tagging; answers (traces' and source answers) are cut to <= "
                          f"{t.get('max_answer_words') or 'any'} words at a sentence boundary. Benign composed reasoning "
                          "is kept to the same number of steps. STAR-1's reasoning still cites its teacher's policy "
                          "sections, which the student never sees.", ""]
    lines += ["## Counts", ""] + _table(s["labels"], "label") + [""] + _table(s["sources"], "source") + [""]
    lines += _table(s["step_pivots"], "step pivot", "steps") + [""] + _table(s["answer_pivots"], "answer pivot") + [""]
    lines += _table(Counter({f"{k[0]} / {k[1]}": v for k, v in s["first_pivot"].items()}), "label / first step pivot")
    lines += ["", "## What wrote each row", ""]
    lines += _table(Counter({f"{k[0]} | {k[1] or '-'}": v for k, v in s["teachers"].items()}),
                    "meta.teacher | meta.reasoning_source")
    lines += ["", "## Pivot sequences (steps; S = [SAFE], U = [UNSAFE], R = [RETHINK])", ""]
    lines += render_sequences(s["pivot_sequences"])
    lines += ["", "## Lengths (words)", "", f"- steps per row: {_stats(s['steps'])}",
              f"- words per step: {_stats(s['step_words'])}", f"- words per answer: {_stats(s['answer_words'])}", "",
              "| label | rows | steps per row | reasoning words per row | answer words per row |", "|---|---|---|---|---|"]
    for lab, d in sorted(s["by_label"].items()):
        lines.append(f"| {lab} | {len(d['steps'])} | {_stats(d['steps'])} | {_stats(d['reasoning_words'])} | "
                     f"{_stats(d['answer_words'])} |")
    lines += [""]
    if rejected is not None:
        lines += ["## Rejected", "", f"{len(rejected)} seeds rejected (`rejected.jsonl` has each reason).", ""]
        lines += _table(Counter(r.get("stage", "?") for r in rejected), "stage") + [""]
        reasons = Counter(r.get("reason", "?")[:80] for r in rejected if r.get("stage") not in ("decontam", "dedup"))
        if reasons:
            lines += _table(reasons, "reason") + [""]
    if prov and prov.get("decontamination"):
        d = prov["decontamination"]
        lines += ["## Decontamination", "", f"- method: {d.get('method')}",
                  f"- checked against: {', '.join(f'{k} ({v} prompts)' for k, v in d.get('benchmarks', {}).items())}",
                  f"- excluded (training sources): {', '.join(d.get('excluded', [])) or 'none'}",
                  f"- removed: {', '.join(f'{k}: {v}' for k, v in d.get('removed', {}).items())}", ""]
    return "\n".join(lines)
