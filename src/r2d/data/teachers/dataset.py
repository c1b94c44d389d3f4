"""The ``dataset`` teacher: teacher replies that already exist in a file, instead of calling a model.

Trace files (read by the ``dataset`` seed set, ``r2d.data.seeds``; a relative path is looked up in the data
directory) come in three formats, detected from the first row's keys (or ``format=``):
- ``star1``: STAR-1 (``id``, ``question``, ``response`` = ``<think>reasoning</think> answer``, ``category``,
  ``source``); every prompt is harmful;
- ``r2d-r1``: the paper's release ``chuhac/R2D-R1`` (``instruction``, ``input``, ``output`` with pivots in place);
- ``prompt-response``: plain ``prompt`` + ``response`` (``<think>`` inside), optional ``id``/``label``.
A ``.json`` file is a list of rows, a ``.jsonl`` file one row per line. A row without a required field or
with invalid JSON stops the build with one line naming the file and row. A trace whose shape is wrong (no
``<think>``, an unclosed ``<think>``, empty reasoning, no answer) is rejected into ``rejected.jsonl`` with a
reason naming the file and row (``strict=True``: it stops the build instead).

What the teacher does with a seed that carries a trace (``seed.meta["trace"]``):
1. pivots already in the reasoning (R2D-R1) are kept; pivot-less reasoning (STAR-1) is split into steps
   (``split_reasoning``: paragraphs, long ones cut at sentences) and each step is tagged by the offline
   cue-phrase tagger (``r2d.data.tagging.tag_step``; agreement with hand labels: ``r2d data tagger-agreement``);
2. shortening (for small students / CPU budgets; off by default): each step is cut to ``max_step_words`` at a
   sentence boundary (then tagged, so the pivot describes the kept text), and at most ``max_steps`` steps are
   kept, by priority: the first step, the first ``[UNSAFE]`` step (where the decision is made), the last step
   (the conclusion), the first later ``[RETHINK]`` step, then others in order (kept steps stay in order); the answer is cut to ``max_answer_words``;
3. a ``jailbreak`` seed (the trace's prompt wrapped in a TRAIN-split template) gets a first step that notes
   the wrapper (``[RETHINK]``), then the trace.
Seeds without a trace are written by other means, named per row in ``meta.teacher`` / ``meta.reasoning_source``:
benign seeds by the composer (``r2d.data.teachers.composer``: prompt-conditioned reasoning, the source
answer), harmful contrast seeds (``contrast-harmful``: a hand-written reason and refusal) by the composer's harmful
trace, other harmful/jailbreak seeds without a trace by the ``template`` teacher. Trace rows carry
``meta.teacher: "dataset"`` and ``meta.origin`` = ``<file>:<row>``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

from r2d.data.seeds import PROMPT_FORMS, Seed, categorize, detect_wrappers, short_train_templates
from r2d.data.seeds import prompt_form as form_of
from r2d.data.seeds import wrap as wrap_in
from r2d.data.tagging import TAGGER_VERSION, split_reasoning, tag_step
from r2d.data.teachers.base import TeacherReply
from r2d.data.teachers.composer import benign_steps, harmful_contrast_steps
from r2d.data.teachers.template import TemplateTeacher, truncate_answer
from r2d.pivots import PIVOTS, RETHINK, SAFE, THINK_CLOSE, THINK_OPEN, UNSAFE, neutralize
from r2d.reasoning import parse, render_parts
from r2d.registry import register

FORMATS = {"star1": ("question", "response"), "r2d-r1": ("instruction", "output"),
           "prompt-response": ("prompt", "response")}


def resolve_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_file() or p.is_absolute():
        return p
    from r2d.paths import data_dir

    return data_dir() / p


def detect_format(row: dict, where: str) -> str:
    if "question" in row and "response" in row:
        return "star1"
    if "instruction" in row and "output" in row:
        return "r2d-r1"
    if "prompt" in row and "response" in row:
        return "prompt-response"
    raise ValueError(f"{where}: unrecognised trace row (keys {sorted(row)[:8]}): expected STAR-1 (question, response), "
                     "R2D-R1 (instruction, input, output) or prompt + response")


def read_rows(path: Path) -> list[tuple[str, dict]]:
    """(row name, row) pairs; a bad line or a non-object row raises naming file and row."""
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path} (relative paths are read from the data directory)")
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append((f"line={n}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {n}: invalid JSON: {e.msg}") from None
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON: {e.msg} (line {e.lineno})") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: a .json trace file must hold a list of rows")
        out = [(f"index={i}", r) for i, r in enumerate(data)]
    else:
        raise ValueError(f"{path}: trace files must be .json or .jsonl")
    for name, r in out:
        if not isinstance(r, dict):
            raise ValueError(f"{path}: row {name}: not a JSON object")
    if not out:
        raise ValueError(f"{path}: no rows")
    return out


def _infer_label(text: str) -> str:
    return "harmful" if UNSAFE in text else "benign"


def load_traces(path: str | Path, format: str = "auto", label: str | None = None) -> list[dict]:
    """Every row of a trace file as ``{key, prompt, response, label, category, upstream}`` (``key`` names the
    row: ``id=...`` or ``line=/index=``). A missing/empty required field raises naming file and row."""
    p = resolve_path(path)
    rows = read_rows(p)
    fmt = format if format != "auto" else detect_format(rows[0][1], f"{p}: row {rows[0][0]}")
    if fmt not in FORMATS:
        raise ValueError(f"{p}: unknown trace format {fmt!r}; one of {sorted(FORMATS)} or auto")
    pk, rk = FORMATS[fmt]
    out = []
    for name, r in rows:
        key = f"id={r['id']}" if r.get("id") not in (None, "") else name
        for k in (pk, rk):
            if not isinstance(r.get(k), str) or not r[k].strip():
                raise ValueError(f"{p}: row {key}: missing or empty field {k!r} ({fmt} format needs {pk!r}, {rk!r})")
        prompt = r[pk].strip()
        if fmt == "r2d-r1" and isinstance(r.get("input"), str) and r["input"].strip():
            prompt += "\n\n" + r["input"].strip()
        lab = r.get("label") or label or ("harmful" if fmt == "star1" else _infer_label(r[rk]))
        if lab not in ("benign", "harmful"):
            raise ValueError(f"{p}: row {key}: label {lab!r} must be benign or harmful")
        cat = r.get("category")
        out.append({"key": key, "prompt": prompt, "response": r[rk], "label": lab, "format": fmt,
                    "upstream": {"category": cat if isinstance(cat, (list, str)) else None,
                                 "source": r.get("source")}})
    return out


def trace_seeds(path: str, format: str = "auto", name: str | None = None, label: str | None = None,
                wrap: bool = False, max_template_words: int | None = None, seed: int = 0,
                eval_overlap_max: float = 0.3, prompt_form: str | None = None) -> list[Seed]:
    """Seeds that carry their trace. ``wrap``: each prompt wrapped in one TRAIN-split jailbreak template (chosen
    by a seeded RNG), label ``jailbreak`` (harmful rows only). ``prompt_form``: keep only prompts of that form
    (``instruction`` or ``other``, ``r2d.data.seeds.prompt_form``; judged on the prompt before any wrapping)."""
    if prompt_form is not None and prompt_form not in PROMPT_FORMS:
        raise ValueError(f"dataset seed set: prompt_form must be one of {', '.join(PROMPT_FORMS)}, got {prompt_form!r}")
    p = resolve_path(path)
    name = name or p.stem.lower()
    rel = str(path)
    traces = load_traces(path, format, label)
    temps = short_train_templates(max_template_words, eval_overlap_max, "dataset seed set") if wrap else []
    rng = random.Random(f"dataset-wrap:{name}:{seed}")
    out = []
    for t in traces:
        if prompt_form is not None and form_of(t["prompt"]) != prompt_form:
            continue
        rid = t["key"].split("=", 1)[1]
        meta = {"trace": t["response"], "trace_format": t["format"], "goal": t["prompt"], "source": name,
                "upstream": t["upstream"]}
        cat = categorize(t["prompt"]) if t["label"] != "benign" else "general"
        if not wrap:
            out.append(Seed(f"{name}-{rid}", neutralize(t["prompt"]), f"{rel}:{t['key']}", t["label"], cat, meta=meta))
            continue
        if t["label"] == "benign":
            continue
        tp = rng.choice(temps)
        prompt = neutralize(wrap_in(tp["text"], t["prompt"]))
        out.append(Seed(f"{name}-{rid}-jb{tp['id']}", prompt, f"{rel}:{t['key']}+template:{tp['id']}", "jailbreak", cat,
                        meta=meta | {"template_id": tp["id"], "wrappers": detect_wrappers(tp["text"]),
                                     "source": f"{name}+train-templates"}))
    return out


_WRAP_STEP = [
    "The message wraps the request in a {wrapper} set-up that tries to change how I behave. Whatever the framing, "
    "I should look at what is actually being asked before doing anything.",
    "This prompt builds a {wrapper} scenario around the actual question, which is a common way to get around safety "
    "rules. The framing changes nothing about what my answer would enable, so I need to be careful.",
    "There is a {wrapper} frame here, with instructions about who I am supposed to be. I should set that aside and "
    "judge the request inside it on its own terms.",
]


def _pick(options: list[str], seed_id: str, salt: str) -> str:
    return options[int(hashlib.sha256(f"{salt}:{seed_id}".encode()).hexdigest(), 16) % len(options)]


def cut_words(text: str, max_words: int | None) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return truncate_answer(text, max_words) if max_words else neutralize(text)


def select_steps(pivots: list[str], max_steps: int | None) -> list[int]:
    """Indices kept (in order): first step, first [UNSAFE] (the decision), last step (the conclusion), first
    later [RETHINK], then the rest in order, up to ``max_steps``."""
    n = len(pivots)
    if not max_steps or n <= max_steps:
        return list(range(n))
    first = {p: next((i for i in range(1, n) if pivots[i] == p), None) for p in (UNSAFE, RETHINK)}
    order = [0, first[UNSAFE], n - 1, first[RETHINK]] + list(range(1, n - 1))
    keep: list[int] = []
    for i in order:
        if i is not None and i not in keep:
            keep.append(i)
        if len(keep) == max_steps:
            break
    return sorted(keep)


class TraceError(ValueError):
    pass


def trace_steps(response: str, where: str, split_words: int = 90, max_steps: int | None = None,
                max_step_words: int | None = None) -> tuple[list[tuple[str, str]], str, str | None, str]:
    """(steps with pivots, answer, answer pivot, how the pivots were made) from one trace, or ``TraceError``."""
    text = response.strip()
    if THINK_OPEN not in text:
        raise TraceError(f"{where}: no <think> reasoning in the response")
    if THINK_CLOSE not in text:
        raise TraceError(f"{where}: unclosed <think> (no </think>)")
    if text.split(THINK_OPEN, 1)[0].strip():
        raise TraceError(f"{where}: text before <think>")
    reasoning, answer = text.split(THINK_OPEN, 1)[1].split(THINK_CLOSE, 1)
    if not reasoning.strip():
        raise TraceError(f"{where}: empty reasoning inside <think>")
    if not answer.strip():
        raise TraceError(f"{where}: no answer after </think>")
    if any(p in reasoning for p in PIVOTS):
        parsed = parse(text)
        steps = [(cut_words(s.text, max_step_words), s.pivot or RETHINK) for s in parsed.steps if s.text.strip()]
        ans, ans_piv, how = parsed.answer, parsed.answer_pivot, "source pivots"
    else:
        raw = split_reasoning(reasoning, split_words)
        steps = [(cut, tag_step(cut, i, len(raw))[0]) for i, cut in
                 ((i, cut_words(s, max_step_words)) for i, s in enumerate(raw))]
        ans, ans_piv, how = answer, None, f"cue tagger v{TAGGER_VERSION}"
    if not steps:
        raise TraceError(f"{where}: empty reasoning inside <think>")
    keep = select_steps([p for _, p in steps], max_steps)
    return [steps[i] for i in keep], ans.strip(), ans_piv, how


@register("teacher", "dataset")
class DatasetTeacher:
    """Replies from trace files (see module docstring); benign seeds without a trace -> composer, harmful
    seeds without one -> the template teacher."""

    name = "dataset"

    def __init__(self, max_steps: int | None = None, max_step_words: int | None = None,
                 max_answer_words: int | None = None, split_words: int = 90, strict: bool = False,
                 shared_forks: bool = False, **_: Any) -> None:
        self.max_steps, self.max_step_words, self.max_answer_words = max_steps, max_step_words, max_answer_words
        self.shared_forks = bool(shared_forks)
        self.split_words, self.strict = split_words, strict
        self.calls = 0
        self._template = TemplateTeacher(answers="source", max_answer_words=max_answer_words or 60)

    def cache_params(self) -> dict:
        params = {"teacher": "dataset", "version": 2, "tagger": TAGGER_VERSION, "max_steps": self.max_steps,
                  "max_step_words": self.max_step_words, "max_answer_words": self.max_answer_words,
                  "split_words": self.split_words, "template": self._template.cache_params()}
        return params | {"shared_forks": True} if self.shared_forks else params  # off: the old key, caches stay valid

    def provenance(self) -> dict:
        return self.cache_params() | {"kind": "existing traces (file) + composer for benign seeds + template "
                                              "teacher for harmful seeds without a trace"}

    def _trace_reply(self, seed: Seed) -> TeacherReply:
        where = f"{seed.origin.split('+template:')[0]}"
        try:
            steps, answer, ans_piv, how = trace_steps(seed.meta["trace"], where, self.split_words,
                                                      (self.max_steps - 1) if (self.max_steps and seed.label ==
                                                                               "jailbreak") else self.max_steps,
                                                      self.max_step_words)
        except TraceError as e:
            if self.strict:
                raise
            return TeacherReply(error=str(e))
        if seed.label == "jailbreak":
            wrappers = seed.meta.get("wrappers") or ["role-play or instruction-override"]
            steps = [(_pick(_WRAP_STEP, seed.id, "wrap").format(wrapper=wrappers[0]), RETHINK)] + steps
        ans = cut_words(answer, self.max_answer_words)
        if not ans:
            return TeacherReply(error=f"{where}: no answer after </think>")
        src = seed.meta.get("source", "").split("+")[0]
        meta = {"teacher": "dataset", "reasoning_source": f"{src} trace ({seed.meta.get('trace_format')}), pivots: {how}"
                + (", wrapper step: template" if seed.label == "jailbreak" else "")}
        return TeacherReply(render_parts(steps, ans, ans_piv or SAFE), meta=meta)

    def reply(self, seed: Seed) -> TeacherReply:
        if "trace" in seed.meta:
            return self._trace_reply(seed)
        if seed.label == "benign":
            ans = cut_words(seed.answer or "", self.max_answer_words or 60)
            if not ans:
                return TeacherReply(error=f"no source answer for benign seed {seed.id}")
            return TeacherReply(render_parts(benign_steps(seed, ans, self.max_steps, self.shared_forks), ans, SAFE),
                                meta={"teacher": "composer", "reasoning_source": "r2d composer (prompt-conditioned "
                                      "templates, not a model); answer: source dataset"})
        if seed.label == "harmful" and seed.meta.get("why"):  # a harmful contrast seed (``contrast-harmful``)
            ans = cut_words(seed.answer or "", self.max_answer_words or 60)
            if not ans:
                return TeacherReply(error=f"no refusal answer for harmful contrast seed {seed.id}")
            return TeacherReply(render_parts(harmful_contrast_steps(seed, ans), ans, SAFE),
                                meta={"teacher": "composer", "reasoning_source": "r2d composer, harmful contrast "
                                      "(prompt-conditioned templates + the seed's hand-written reason); answer: "
                                      "hand-written refusal with a redirect"})
        r = self._template.compose(seed, None)
        r.meta |= {"teacher": "template", "reasoning_source": "template teacher (label-driven)"}
        return r

    async def agenerate(self, seeds: list[Seed]) -> list[TeacherReply]:
        self.calls += len(seeds)
        return [self.reply(s) for s in seeds]


@register("seedset", "dataset")
def dataset(path: str, format: str = "auto", prefix: str | None = None, label: str | None = None, wrap: bool = False,
            max_template_words: int | None = None, seed: int = 0, eval_overlap_max: float = 0.3,
            prompt_form: str | None = None, **_: Any) -> list[Seed]:
    """Prompts of a file of existing teacher replies (STAR-1, R2D-R1 or prompt/response JSONL), each seed
    carrying its trace for the ``dataset`` teacher (``r2d.data.teachers.dataset``); ``wrap``: each harmful
    prompt wrapped in a TRAIN-split jailbreak template (label ``jailbreak``)."""
    return trace_seeds(path, format, prefix, label, wrap, max_template_words, seed, eval_overlap_max, prompt_form)
