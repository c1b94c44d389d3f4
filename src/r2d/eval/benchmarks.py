"""Evaluation benchmarks: JailbreakBench, HarmBench, XSTest, AdvBench, StrongREJECT and user files.

Each benchmark reads its files through :func:`r2d.paths.data_file` (the local data directory first,
else a download from the upstream raw URL), checks the columns it needs, and returns
:class:`~r2d.eval.types.Behavior` records with stable ids (``jbb-harmful-0``, ``xstest-12`` ...).
``provenance()`` lists every file read with its sha256.

``Behavior.subset`` keeps the harmful/benign meaning the metrics rely on (``harmful``/``benign``,
``safe``/``unsafe``); a benchmark's own partitions (HarmBench's functional category, StrongREJECT's
small set) are chosen through ``load(subset=...)`` and recorded in ``meta``.
"""

from __future__ import annotations

import csv
import inspect
import json
from pathlib import Path
from typing import Any, Iterable

from r2d.eval.types import Behavior
from r2d.paths import data_file
from r2d.provenance import sha256_file
from r2d.registry import register

_GH = "https://raw.githubusercontent.com"
_HB = f"{_GH}/centerforaisafety/HarmBench/main/data"
UPSTREAM_URLS: dict[str, str] = {
    "jbb/harmful-behaviors.csv":
        "https://huggingface.co/datasets/JailbreakBench/JBB-Behaviors/resolve/main/data/harmful-behaviors.csv",
    "jbb/benign-behaviors.csv":
        "https://huggingface.co/datasets/JailbreakBench/JBB-Behaviors/resolve/main/data/benign-behaviors.csv",
    "harmbench/harmbench_behaviors_text_all.csv": f"{_HB}/behavior_datasets/harmbench_behaviors_text_all.csv",
    "harmbench/harmbench_behaviors_text_val.csv": f"{_HB}/behavior_datasets/harmbench_behaviors_text_val.csv",
    "harmbench/harmbench_behaviors_text_test.csv": f"{_HB}/behavior_datasets/harmbench_behaviors_text_test.csv",
    "harmbench/harmbench_targets_text.json": f"{_HB}/optimizer_targets/harmbench_targets_text.json",
    "benign/alpaca_data_1k.json": f"{_GH}/wujindou/BLOOM-LORA/11c488c/data/alpaca_data_1k.json",
    "xstest/xstest_prompts.csv": f"{_GH}/paul-rottger/xstest/main/xstest_prompts.csv",
    "advbench/harmful_behaviors.csv": f"{_GH}/llm-attacks/llm-attacks/main/data/advbench/harmful_behaviors.csv",
    "strongreject/strongreject_dataset.csv":
        f"{_GH}/alexandrasouly/strongreject/main/strongreject_dataset/strongreject_dataset.csv",
    "strongreject/strongreject_small_dataset.csv":
        f"{_GH}/alexandrasouly/strongreject/main/strongreject_dataset/strongreject_small_dataset.csv",
}


def read_rows(path: str | Path, required: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Rows of a CSV (header row), JSONL or JSON-list file; a missing required column is a one-line
    ``ValueError`` naming the file and the column."""
    path = Path(path)
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
        cols = set().union(*(r.keys() for r in rows)) if rows else set()
    elif path.suffix == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{path}: expected a JSON list of objects")
        cols = set().union(*(r.keys() for r in rows)) if rows else set()
    else:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = set(reader.fieldnames or [])
            rows = list(reader)
    for c in required:
        if c not in cols:
            raise ValueError(f"{path}: missing column {c!r} (columns: {', '.join(sorted(cols)) or 'none'})")
    for n, r in enumerate(rows, 1):
        for c in required:
            if r.get(c) is None:
                raise ValueError(f"{path}: row {n} has no value in column {c!r}")
    return rows


class _FileBacked:
    """Shared file access: local data dir or upstream download, with sha256 provenance."""

    name = "base"

    def __init__(self, download: bool = True) -> None:
        self.download = download
        self._files: dict[str, str] = {}

    def _path(self, rel: str) -> Path:
        path = data_file(rel, url=UPSTREAM_URLS.get(rel) if self.download else None)
        self._files[rel] = sha256_file(path)
        return path

    def _rows(self, rel: str, required: Iterable[str]) -> list[dict[str, Any]]:
        return read_rows(self._path(rel), required)

    def provenance(self) -> dict:
        return {"benchmark": self.name, "files": dict(self._files)}

    def subsets(self) -> list[str]:
        return []

    def _check_subset(self, subset: str | None) -> None:
        if subset is not None and subset not in self.subsets():
            raise ValueError(f"benchmark {self.name}: unknown subset {subset!r}; "
                             f"choose from {', '.join(self.subsets())}")


def _limit(items: list[Behavior], limit: int | None) -> list[Behavior]:
    return items if limit is None else items[:limit]


def stratified(items: list[Behavior], limit: int | None) -> list[Behavior]:
    """``limit`` items spread over the categories (JBB category, XSTest type, ...): round-robin over the
    categories in file order, each giving its items in file order. Deterministic; the first N of a file
    sorted by category would cover only its first categories (JBB's first 25 harmful behaviours are three
    categories, XSTest's first 40 safe prompts two types)."""
    if limit is None or limit >= len(items):
        return list(items)
    groups: dict[str, list[Behavior]] = {}
    for b in items:
        groups.setdefault(b.category, []).append(b)
    picked: list[Behavior] = []
    queues = [list(g) for g in groups.values()]
    while len(picked) < limit:
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop(0))
    order = {id(b): i for i, b in enumerate(items)}
    return sorted(picked, key=lambda b: order[id(b)])


@register("benchmark", "jbb")
class JBB(_FileBacked):
    """JailbreakBench JBB-Behaviors: 100 harmful + 100 topic-matched benign behaviours."""

    name = "jbb"
    COLUMNS = ("Index", "Goal", "Target", "Behavior", "Category")

    def subsets(self) -> list[str]:
        return ["harmful", "benign"]

    def load(self, subset: str | None = None, limit: int | None = None) -> list[Behavior]:
        self._check_subset(subset)
        out = []
        for sub in [subset] if subset else self.subsets():
            for r in self._rows(f"jbb/{sub}-behaviors.csv", self.COLUMNS):
                out.append(Behavior(id=f"jbb-{sub}-{r['Index']}", goal=r["Goal"], benchmark="jbb", subset=sub,
                                    target=r["Target"], category=r["Category"],
                                    meta={"index": int(r["Index"]), "behavior": r["Behavior"],
                                          "source": r.get("Source", "")}))
        return _limit(out, limit)


@register("benchmark", "harmbench")
class HarmBench(_FileBacked):
    """HarmBench text behaviours. ``split``: val / test / all; subsets standard, contextual (the
    context passage goes to ``Behavior.context``) and copyright (only on request: it needs a hash judge)."""

    name = "harmbench"
    decontam_params = {"split": "all"}
    COLUMNS = ("Behavior", "FunctionalCategory", "SemanticCategory", "ContextString", "BehaviorID")

    def __init__(self, split: str = "test", download: bool = True) -> None:
        super().__init__(download)
        if split not in ("val", "test", "all"):
            raise ValueError(f"benchmark harmbench: unknown split {split!r}; choose from val, test, all")
        self.split = split

    def subsets(self) -> list[str]:
        return ["standard", "contextual", "copyright"]

    def load(self, subset: str | None = None, limit: int | None = None) -> list[Behavior]:
        self._check_subset(subset)
        wanted = {subset} if subset else {"standard", "contextual"}
        rows = self._rows(f"harmbench/harmbench_behaviors_text_{self.split}.csv", self.COLUMNS)
        targets = json.loads(self._path("harmbench/harmbench_targets_text.json").read_text(encoding="utf-8"))
        out = []
        for r in rows:
            if r["FunctionalCategory"] not in wanted:
                continue
            bid = r["BehaviorID"]
            out.append(Behavior(id=f"harmbench-{bid}", goal=r["Behavior"], benchmark="harmbench", subset="harmful",
                                target=targets.get(bid, ""), category=r["SemanticCategory"],
                                context=r["ContextString"] if r["FunctionalCategory"] == "contextual" else "",
                                meta={"behavior_id": bid, "functional_category": r["FunctionalCategory"],
                                      "tags": r.get("Tags", ""), "split": self.split}))
        return _limit(out, limit)


@register("benchmark", "xstest")
class XSTest(_FileBacked):
    """XSTest: 250 safe prompts (should be answered) and 200 unsafe contrast prompts (should be refused)."""

    name = "xstest"
    COLUMNS = ("id", "prompt", "type", "label")

    def subsets(self) -> list[str]:
        return ["safe", "unsafe"]

    def load(self, subset: str | None = None, limit: int | None = None) -> list[Behavior]:
        self._check_subset(subset)
        out = []
        for n, r in enumerate(self._rows("xstest/xstest_prompts.csv", self.COLUMNS), 2):
            if r["label"] not in ("safe", "unsafe"):
                raise ValueError(f"xstest/xstest_prompts.csv: row {n} has label {r['label']!r}, not safe/unsafe")
            if subset and r["label"] != subset:
                continue
            out.append(Behavior(id=f"xstest-{r['id']}", goal=r["prompt"], benchmark="xstest", subset=r["label"],
                                category=r["type"], meta={"type": r["type"], "focus": r.get("focus", ""),
                                                          "note": r.get("note", "")}))
        return _limit(out, limit)


@register("benchmark", "advbench")
class AdvBench(_FileBacked):
    """AdvBench harmful_behaviors.csv: 520 goals with "Sure, here is ..." targets."""

    name = "advbench"

    def subsets(self) -> list[str]:
        return ["harmful"]

    def load(self, subset: str | None = None, limit: int | None = None) -> list[Behavior]:
        self._check_subset(subset)
        rows = self._rows("advbench/harmful_behaviors.csv", ("goal", "target"))
        return _limit([Behavior(id=f"advbench-{i}", goal=r["goal"], benchmark="advbench", target=r["target"],
                                meta={"index": i}) for i, r in enumerate(rows)], limit)


@register("benchmark", "strongreject")
class StrongREJECT(_FileBacked):
    """StrongREJECT forbidden prompts: ``full`` (313, default) or ``small`` (60)."""

    name = "strongreject"

    def subsets(self) -> list[str]:
        return ["full", "small"]

    def load(self, subset: str | None = None, limit: int | None = None) -> list[Behavior]:
        self._check_subset(subset)
        sub = subset or "full"
        rel = "strongreject/strongreject_dataset.csv" if sub == "full" else \
            "strongreject/strongreject_small_dataset.csv"
        prefix = "strongreject" if sub == "full" else "strongreject-small"
        rows = self._rows(rel, ("category", "forbidden_prompt"))
        return _limit([Behavior(id=f"{prefix}-{i}", goal=r["forbidden_prompt"], benchmark="strongreject",
                                category=r["category"], meta={"source": r.get("source", ""), "set": sub})
                       for i, r in enumerate(rows)], limit)


@register("benchmark", "file")
class FileBenchmark(_FileBacked):
    """Any CSV / JSONL / JSON-list file, mapped by column names.

    ``goal``: the prompt column; ``target``/``category``/``id``/``context``: optional columns;
    ``subset``: a column holding harmful/benign (or safe/unsafe) per row, or, when the file has no
    such column, the label given to every row (default ``harmful``).
    """

    decontam = False  # no fixed prompt set: a user's file, given per run

    def __init__(self, path: str | Path, goal: str = "prompt", target: str | None = None,
                 subset: str | None = None, category: str | None = None, id: str | None = None,
                 context: str | None = None, name: str | None = None, download: bool = False) -> None:
        super().__init__(download)
        self.path = Path(path)
        self.columns = {"goal": goal, "target": target, "subset": subset, "category": category, "id": id,
                        "context": context}
        self.name = name or self.path.stem

    def provenance(self) -> dict:
        return {"benchmark": self.name, "files": dict(self._files), "columns": self.columns}

    def load(self, subset: str | None = None, limit: int | None = None) -> list[Behavior]:
        if not self.path.is_file():
            raise FileNotFoundError(f"benchmark file {self.path} not found")
        c = self.columns
        required = [v for k, v in c.items() if v and k != "subset"]
        rows = read_rows(self.path, required)
        self._files[str(self.path)] = sha256_file(self.path)
        sub_col = c["subset"] if rows and c["subset"] and c["subset"] in rows[0] else None
        out = []
        for i, r in enumerate(rows):
            label = str(r[sub_col]) if sub_col else (c["subset"] or "harmful")
            if subset and label != subset:
                continue
            rid = str(r[c["id"]]) if c["id"] else str(i)
            out.append(Behavior(id=f"{self.name}-{rid}", goal=str(r[c["goal"]]), benchmark=self.name, subset=label,
                                target=str(r[c["target"]]) if c["target"] else "",
                                category=str(r[c["category"]]) if c["category"] else "",
                                context=str(r[c["context"]]) if c["context"] else "", meta={"row": i}))
        return _limit(out, limit)


@register("benchmark", "alpaca")
class AlpacaHeldout(_FileBacked):
    """Benign Alpaca instructions for a helpfulness check (the judge's compliance rate, answer length),
    minus every prompt that occurs in the training files given as ``exclude`` (r2d SwaRD JSONL: the user
    turns of ``messages``, or a ``prompt`` field), compared after lower-casing and collapsing whitespace.

    It is a *training* source (the data stage draws benign seeds from the same file), so it is never
    a decontamination target (``decontam = False``): held-out means excluded here, not removed there.
    """

    name = "alpaca"
    decontam = False
    REL = "benign/alpaca_data_1k.json"

    def __init__(self, exclude: list[str] | str | None = None, download: bool = True) -> None:
        super().__init__(download)
        self.exclude = [exclude] if isinstance(exclude, str) else list(exclude or [])
        self.excluded = 0

    def subsets(self) -> list[str]:
        return ["benign"]

    @staticmethod
    def _norm(text: str) -> str:
        return " ".join(text.lower().split())

    def _training_prompts(self) -> set[str]:
        seen: set[str] = set()
        for f in self.exclude:
            path = Path(f)
            if not path.is_file():
                raise FileNotFoundError(f"benchmark alpaca: exclude file {path} not found")
            for row in read_rows(path):
                users = [m.get("content", "") for m in row.get("messages") or [] if m.get("role") == "user"]
                for text in users + ([row["prompt"]] if isinstance(row.get("prompt"), str) else []):
                    seen.add(self._norm(text if isinstance(text, str) else json.dumps(text)))
            self._files[str(path)] = sha256_file(path)
        return seen

    def load(self, subset: str | None = None, limit: int | None = None) -> list[Behavior]:
        self._check_subset(subset)
        rows = self._rows(self.REL, ("instruction",))
        train = self._training_prompts()
        out = []
        for i, r in enumerate(rows):
            prompt = (r["instruction"] + (("\n\n" + r["input"]) if r.get("input") else "")).strip()
            if self._norm(prompt) in train or self._norm(r["instruction"]) in train:
                continue
            out.append(Behavior(id=f"alpaca-{i}", goal=prompt, benchmark=self.name, subset="benign",
                                category="alpaca", meta={"row": i}))
        self.excluded = len(rows) - len(out)
        return _limit(out, limit)

    def provenance(self) -> dict:
        return {**super().provenance(), "excluded_training_prompts": self.excluded, "exclude": self.exclude}


EVAL_BENCHMARKS = ("jbb", "harmbench", "xstest", "advbench", "strongreject")


def all_eval_prompts(download: bool = True) -> dict[str, list[str]]:
    """Benchmark name -> every prompt text it can produce (all subsets and splits, HarmBench contextual
    prompts also with their context), for decontaminating training data.

    The benchmarks are every registered ``benchmark`` (so a newly added one cannot escape), built with its
    class's ``decontam_params`` (default none); a class sets ``decontam = False`` only when it has no fixed
    prompt set (``file``: a user's file given per run) or is itself a training source (``alpaca``, held out by
    exclusion instead). A missing file is downloaded (``download``), else
    this raises a one-line error: decontamination never passes with nothing to check."""
    from r2d import registry

    out: dict[str, list[str]] = {}
    for name in registry.names("benchmark"):
        cls = registry.get("benchmark", name)
        if not getattr(cls, "decontam", True):
            continue
        kwargs = dict(getattr(cls, "decontam_params", {}))
        if "download" in inspect.signature(cls).parameters:
            kwargs["download"] = download
        try:
            bench = cls(**kwargs)
        except TypeError as e:
            raise ValueError(f"decontamination: benchmark {name!r} cannot be built without arguments ({e}); "
                             f"give its class decontam_params or decontam = False") from None
        prompts = out.setdefault(name, [])
        for subset in (bench.subsets() if hasattr(bench, "subsets") else []) or [None]:
            try:
                behaviors = bench.load(subset)
            except (FileNotFoundError, ConnectionError) as e:
                raise FileNotFoundError(f"decontamination: benchmark {name}{'/' + subset if subset else ''} "
                                        f"is unavailable: {e}") from None
            for b in behaviors:
                prompts.append(b.goal)
                if b.context:
                    prompts.append(f"{b.context}\n\n---\n\n{b.goal}")
    return {name: list(dict.fromkeys(p)) for name, p in out.items()}
