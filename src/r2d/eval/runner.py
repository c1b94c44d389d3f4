"""The evaluation runner: one config describes a grid, three resumable stages fill it in.

Grid: models (label, model alias/path, backend, backend_kwargs, policy) x defenses x benchmarks (name,
subset, limit, attacks, optional judges) x judges, plus generation settings. Components are given as a
name or ``{name, label?, params?}`` (other keys are taken as params).

Stages, all writing as they go so a killed run resumes where it stopped:
(a) generation -> ``samples.jsonl``: one row per (model, defense, policy, test case), appended per batch.
    Each row carries a fingerprint of everything that made it (model path and weights digest, backend and
    its options, policy and knobs, defense, benchmark and attack params, generation settings, the
    early-stop setting when on, the prompt); a row is reused only under the same fingerprint, else it is
    regenerated (rows with a generation error are retried unless ``retry_errors: false``). Each model is
    loaded once, lazily, and all its cells are generated in length-sorted batches. Optimising attacks
    (GCG, AutoDAN) keep their searches in ``searches.jsonl``, keyed by the searched model's identity, the
    behaviour and every search setting (``r2d.eval.attacks.searches``): a resume reuses them and loads no
    model whose samples and searches all exist; a changed model or setting searches again. With
    ``derive_policy_samples`` a policy arm whose completion is a function of the raw one takes its rows from
    the raw arm of the same weights (after every raw arm is done; ``meta.derived_from`` names the source row).
(b) judging -> ``judgments.jsonl`` keyed by (sample key, judge label), each with a fingerprint of the
    judge's resolved params (weights' sha256, thresholds) and of the sample's; a judge can be added or
    swapped without regenerating, and a changed judge or sample is judged again. Judge errors are retried.
(c) metrics -> ``results.json``: ``cells`` (see ``r2d.eval.metrics``), ``cells_jbb_original``, ``words``,
    ``overlap``, ``pivot_score``, ``general_ability`` (MMLU via ``ability``, optional lm-eval) and
    ``provenance``; only rows and judgments made under the current fingerprints count.

Words: ``words`` is the whitespace word count of the visible answer (after the policy, think block
removed); ``completion_words`` that of the model's full completion (reasoning included).

What judges read: each sample row keeps ``visible``, the text the user sees under the row's policy
(``r2d.infer.policies``), next to ``completion`` (the model's) and ``answer`` (the visible answer);
judges read the one their ``saw`` names (``r2d.eval.judges.base``). A judgment made under another
``saw`` than the judge instance's current one is redone; an unchanged (judge, sample) pair never is.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2d import registry
from r2d.backends.base import Chat, Completion, GenParams, get_backend
from r2d.config import check_keys
from r2d.eval.benchmarks import stratified
from r2d.eval.defenses.prompting import generate_with_policy
from r2d.eval.metrics import compute_cells, words_summary
from r2d.eval.pivot_score import first_pivot, pivot_scores
from r2d.eval.types import Behavior, JudgeInput, TestCase
from r2d.provenance import base_provenance, model_fingerprint
from r2d.reasoning import parse, visible_answer
from r2d.records import Judgment
from r2d.store import JsonlStore, fingerprint


@dataclass
class EvalConfig:
    models: list[Any] = field(default_factory=list)
    benchmarks: list[Any] = field(default_factory=list)
    defenses: list[Any] = field(default_factory=lambda: ["none"])
    judges: list[Any] = field(default_factory=lambda: ["refusal"])
    max_new_tokens: int = 256
    batch_size: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    output: str = "runs/eval"
    data_dir: str | None = None
    train_data: list[str] = field(default_factory=list)
    overlap_ngram: int = 5
    overlap_threshold: float = 0.5
    lm_eval: dict = field(default_factory=dict)  # {tasks: [...], limit: N, num_fewshot: 0}
    # {mmlu: {n: 1000, seed: 0, batch_size: 16, reference: LABEL, models: [LABEL, ...] (default: every hf model)}}
    ability: dict = field(default_factory=dict)
    retry_errors: bool = True
    progress: bool = True
    # Opt-in early stopping: end a sample once its visible answer has more than N words, in the cells whose
    # judges (and the defense's own checker) read no more than N words of the answer, under the raw policy.
    # Answers, word counts and answer pivots of those samples are truncated. See r2d.backends.early_stop.
    stop_after_answer_words: int | None = None
    # Opt-in: under greedy decoding, a model entry whose policy's completion is a function of the raw one
    # (``Policy.derive``: refuse-on-unsafe cuts the raw completion at its first [UNSAFE]; hide-reasoning and
    # drop-unsafe-steps only change what is shown) takes its samples from the raw entry of the same weights,
    # backend and defense instead of generating them again. Exact up to float rounding (the raw arm's batches
    # differ from the policy arm's); each derived row names its source (``meta.derived_from``), and the setting
    # is part of the samples' fingerprint. A sample whose raw twin is missing, failed or stopped early is generated.
    derive_policy_samples: bool = False

    def __post_init__(self) -> None:
        for k in ("max_new_tokens", "batch_size"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"config: {k} must be a positive integer, got {v!r}")
        if not 0.0 < float(self.top_p) <= 1.0 or float(self.temperature) < 0:
            raise ValueError(f"config: need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")


@dataclass
class Spec:
    """A component reference: registry name, label used in results, constructor params."""

    name: str
    label: str
    params: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, kind: str) -> "Spec":
        if isinstance(raw, str):
            return cls(raw, raw, {})
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ValueError(f"config: a {kind} must be a name or a mapping with 'name', got {raw!r}")
        d = dict(raw)
        name, label = d.pop("name"), d.pop("label", None)
        params = dict(d.pop("params", {}) or {})
        params.update(d)
        if label is None:
            simple = [f"{k}={v}" for k, v in params.items() if isinstance(v, (str, int, float, bool))]
            simple += [f"{k}={'+'.join(map(str, v))}" for k, v in params.items()
                       if isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v)]
            label = name + (":" + ",".join(simple) if simple else "")
        return cls(name, str(label), params)

    def create(self, kind: str) -> Any:
        try:
            return registry.create(kind, self.name, **self.params)
        except TypeError as e:
            raise ValueError(f"config: bad params for {kind} {self.name!r}: {e}") from None


@dataclass
class ModelSpec:
    label: str
    model: str | None
    backend: str = "hf"
    backend_kwargs: dict = field(default_factory=dict)
    policy: str = "raw"  # the policy name; its knobs are policy_params (config: policy: NAME or {name, knob: v})
    defenses: list[str] | None = None  # labels of the grid's defenses to run on this model (default: all)
    policy_params: dict[str, Any] = field(default_factory=dict)  # e.g. r2d-n: {words: 30}

    @classmethod
    def parse(cls, raw: Any) -> "ModelSpec":
        if isinstance(raw, str):
            return cls(label=raw, model=raw)
        if not isinstance(raw, dict):
            raise ValueError(f"config: a model must be a name or a mapping, got {raw!r}")
        check_keys(cls, raw, f"config: model {raw.get('label') or raw.get('name') or raw.get('model')!r}",
                   allow=("name",))
        model = raw.get("model", raw.get("name"))
        pol = Spec.parse(raw.get("policy") or "raw", "policy")  # a name or {name, knobs...}
        return cls(label=str(raw.get("label") or raw.get("name") or model), model=model,
                   backend=raw.get("backend", "hf"), backend_kwargs=dict(raw.get("backend_kwargs") or {}),
                   policy=pol.name, defenses=raw.get("defenses"),
                   policy_params={**pol.params, **dict(raw.get("policy_params") or {})})

    @property
    def policy_label(self) -> str:
        """The policy as cells and keys name it: with its params when set (``r2d-n(words=20)``)."""
        from r2d.infer.policies import policy_label

        return policy_label(self.policy, self.policy_params)

    def backend_key(self) -> str:
        return json.dumps([self.backend, self.model, self.backend_kwargs], sort_keys=True, default=str)


@dataclass
class BenchSpec:
    spec: Spec
    subset: str | None
    limit: int | None
    attacks: list[Spec]
    judges: list[Spec] | None
    models: list[str] | None = None  # labels of the models this entry runs on (default: all)
    sample: str = "first"  # how `limit` picks: the first N (as lm-eval's --limit) or `stratified` by category

    @classmethod
    def parse(cls, raw: Any) -> "BenchSpec":
        d = {"name": raw} if isinstance(raw, str) else dict(raw)
        subset, limit, models = d.pop("subset", None), d.pop("limit", None), d.pop("models", None)
        sample = str(d.pop("sample", "first"))
        if sample not in ("first", "stratified"):
            raise ValueError(f"config: benchmark {d.get('name')!r}: sample must be first or stratified, not {sample!r}")
        attacks = [Spec.parse(a, "attack") for a in (d.pop("attacks", None) or ["direct"])]
        judges = d.pop("judges", None)
        judges = [Spec.parse(j, "judge") for j in judges] if judges else None
        spec = Spec.parse(d, "benchmark")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"config: benchmark {spec.label!r}: limit must be a positive integer, got {limit!r}")
        return cls(spec, subset, limit, attacks, judges,
                   [str(x) for x in models] if models else None, sample)


class LazyBackend:
    """Loads the real backend on first use, so a finished model is never loaded on resume."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec, self._backend = spec, None
        self.name = spec.backend
        self.load_error: Exception | None = None

    @property
    def backend(self) -> Any:
        if self.load_error is not None:  # a model that failed to load is not loaded again for every batch
            raise self.load_error
        if self._backend is None:
            print(f"r2d eval: loading {self.spec.backend}:{self.spec.model} ...", file=sys.stderr, flush=True)
            try:
                self._backend = get_backend(self.spec.backend, model=self.spec.model, **self.spec.backend_kwargs)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as e:  # noqa: BLE001 - recorded as generation errors of every sample
                self.load_error = RuntimeError(f"loading {self.spec.backend}:{self.spec.model} failed: "
                                               f"{type(e).__name__}: {e}")
                raise self.load_error from None
        return self._backend

    def __getattr__(self, item: str) -> Any:  # supports_logits_processors, tokenizer, ... of the real one
        if item.startswith("_") or item in ("spec", "name"):
            raise AttributeError(item)
        return getattr(self.backend, item)

    def generate(self, chats: list[Chat], params: GenParams) -> list[Completion]:
        return self.backend.generate(chats, params)

    @property
    def loaded(self) -> bool:
        return self._backend is not None


class PolicyBackend:
    """A backend whose completions went through an R2D policy; defenses call it like any backend."""

    def __init__(self, backend: Any, policy: str, policy_params: dict | None = None) -> None:
        self.inner, self.policy, self.policy_params = backend, policy, dict(policy_params or {})
        self.name = getattr(backend, "name", "backend")

    def generate(self, chats: list[Chat], params: GenParams) -> list[Completion]:
        return generate_with_policy(self.inner, chats, params, self.policy, **self.policy_params)


def last_user(messages: Chat) -> str:
    return next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool, type(None)))


def sample_row(key: str, model: ModelSpec, defense: Spec, bench: BenchSpec, attack: Spec, case: TestCase,
               c: Completion) -> dict:
    raw = c.meta.get("raw_text", c.full_text) if c.error is None else ""
    visible = c.text if c.error is None else ""  # what the user sees under the policy
    answer = visible_answer(visible) if c.error is None else ""
    parsed = parse(raw)
    b = case.behavior
    # scalars, and flat records of scalars (the R2D-n record ``r2d_n``); never tensors or long arrays
    meta = {k: v for k, v in c.meta.items() if k != "raw_text" and (_scalar(v) or (
        isinstance(v, dict) and all(isinstance(x, str) and _scalar(y) for x, y in v.items())))}
    return {"key": key, "model": model.label, "model_path": model.model, "backend": model.backend,
            "defense": defense.label, "policy": model.policy_label, "benchmark": bench.spec.label,
            "split": bench.subset,
            "subset": b.subset, "harmful": b.harmful, "attack": attack.label, "attack_name": case.attack,
            "variant": case.variant, "case_id": case.id, "behavior_id": b.id, "goal": b.goal,
            "behavior": b.to_dict(), "prompt": last_user(case.messages), "messages": case.messages,
            "completion": raw, "visible": visible, "answer": answer, "steps": [[s.text, s.pivot] for s in parsed.steps],
            "pivots": parsed.pivots, "well_formed": parsed.well_formed, "finish_reason": c.finish_reason,
            "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
            "words": len(answer.split()), "completion_words": len(raw.split()),
            "reasoning_words": len(parsed.reasoning.split()), "latency_s": c.latency_s,
            "error": c.error, "meta": meta,
            "first_pivot": first_pivot(c.meta.get("pivot_probs")) if c.error is None else None}


def completion_from_row(row: dict) -> Completion:
    """A raw-policy sample row back as the completion it recorded (the model's text; the first pivot's
    probabilities as the only recorded pivot: sample rows keep no more)."""
    meta = dict(row.get("meta") or {})
    if row.get("first_pivot"):
        meta["pivot_probs"] = [row["first_pivot"]]
    return Completion(text=row.get("completion") or "", prompt_tokens=row.get("prompt_tokens"),
                      completion_tokens=row.get("completion_tokens"), finish_reason=row.get("finish_reason"),
                      latency_s=0.0, error=row.get("error"), meta=meta)


def visible_text(row: dict) -> str:
    """What the user saw for a sample row; rows written before ``visible`` was recorded are
    re-derived from the completion through the row's policy."""
    if "visible" in row:
        return row["visible"] or ""
    from r2d.infer.policies import get_policy

    name = (row.get("policy") or "raw").split("(", 1)[0]  # the cell label may carry knobs: r2d-n(words=30)
    return get_policy(name).visible(Completion(text=row.get("completion") or ""))


def judge_input(row: dict) -> JudgeInput:
    return JudgeInput(Behavior(**row["behavior"]), row["prompt"], row["completion"], row["answer"],
                      visible=visible_text(row))


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled or total == 0, file=sys.stderr, leave=False)


class Runner:
    def __init__(self, cfg: EvalConfig, out_dir: str | Path | None = None,
                 backends: dict[str, Any] | None = None) -> None:
        """``backends``: model label -> an already built backend (tests, notebooks)."""
        self.cfg = cfg
        # the code that runs is the code at the start: a commit landing during a long run must not be recorded
        self._started = base_provenance()
        self.out = Path(out_dir or cfg.output)
        if cfg.data_dir:
            from r2d.paths import set_data_dir

            set_data_dir(cfg.data_dir)
        if not cfg.models:
            raise ValueError("config: no models given")
        if not cfg.benchmarks and not cfg.ability:
            raise ValueError("config: no benchmarks given")
        unknown = sorted(set(cfg.ability) - {"mmlu"})
        if unknown:
            raise ValueError(f"config: unknown ability benchmark(s) {', '.join(unknown)}; known: mmlu")
        self.models = [ModelSpec.parse(m) for m in cfg.models]
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"config: model labels must be unique, got {labels}")
        self.defenses = [Spec.parse(d, "defense") for d in cfg.defenses or ["none"]]
        self.benches = [BenchSpec.parse(b) for b in cfg.benchmarks]
        known_defenses = {d.label for d in self.defenses}
        for m in self.models:
            bad = set(m.defenses or []) - known_defenses
            if bad:
                raise ValueError(f"config: model {m.label!r} names defenses not in the grid: {', '.join(sorted(bad))}")
        for b in self.benches:
            bad = set(b.models or []) - set(labels)
            if bad:
                raise ValueError(f"config: benchmark {b.spec.label!r} names unknown models: {', '.join(sorted(bad))}")
        self.judges = [Spec.parse(j, "judge") for j in cfg.judges or []]
        n = cfg.stop_after_answer_words
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"config: stop_after_answer_words must be an integer >= 1 or null, got {n!r}")
        self.given_backends = dict(backends or {})
        self.params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                seed=cfg.seed, batch_size=cfg.batch_size)
        self.samples_path = self.out / "samples.jsonl"
        self.judgments_path = self.out / "judgments.jsonl"
        self._components: dict[tuple[str, str], Any] = {}
        self._behaviors: dict[str, list[Behavior]] = {}
        self.keys: list[str] = []
        self.expected: dict[str, str] = {}  # sample key -> the fingerprint its row must carry
        self._identity: dict[Any, dict] = {}
        self.key_judges: dict[str, list[str]] = {}  # sample key -> judge labels of the entries that made it
        self._judge_ids: dict[str, str] = {}  # judge label -> fingerprint of its resolved params
        self._search_ids: dict[Any, dict] = {}  # model -> its identity for attack searches
        self.stats = {"generated": 0, "derived": 0, "skipped": 0, "stale": 0, "judged": 0, "judgments_skipped": 0,
                      "searched": 0, "searches_reused": 0}

    # --- components --------------------------------------------------------------------------
    def component(self, kind: str, spec: Spec) -> Any:
        k = (kind, spec.label)
        if k not in self._components:
            self._components[k] = spec.create(kind)
        return self._components[k]

    def behaviors(self, b: BenchSpec) -> list[Behavior]:
        k = f"{b.spec.label}|{b.subset}|{b.limit}|{b.sample}"
        if k not in self._behaviors:
            bench = self.component("benchmark", b.spec)
            if b.sample == "stratified":
                self._behaviors[k] = stratified(bench.load(subset=b.subset), b.limit)
            else:
                self._behaviors[k] = bench.load(subset=b.subset, limit=b.limit)
        return self._behaviors[k]

    def judges_for(self, b: BenchSpec) -> list[Spec]:
        return b.judges if b.judges is not None else self.judges

    def row_judges(self, row: dict) -> list[str]:
        """Judge labels for one sample: those of the config entry (entries) that made it, never those of
        another entry of the same benchmark. Without this run's keys (results read back only): every entry
        with the sample's benchmark label and subset."""
        if row["key"] in self.key_judges:
            return self.key_judges[row["key"]]
        labels: list[str] = []
        for b in self.benches:
            if b.spec.label == row["benchmark"] and (b.subset or None) == (row.get("split") or None):
                labels += [s.label for s in self.judges_for(b) if s.label not in labels]
        return labels

    def backend_for(self, m: ModelSpec, cache: dict[str, Any]) -> Any:
        if m.label in self.given_backends:
            return self.given_backends[m.label]
        return cache.setdefault(m.backend_key(), LazyBackend(m))

    # --- stage (a): generation ---------------------------------------------------------------
    def cases(self, m: ModelSpec, backend: Any) -> list[tuple[BenchSpec, Spec, TestCase]]:
        out = []
        for b in self.benches:
            if b.models is not None and m.label not in b.models:
                continue
            behaviors = self.behaviors(b)
            for a in b.attacks:
                attack = self.component("attack", a)
                if getattr(attack, "caches_searches", False):
                    searches = self.search_cache(m)
                    cases = attack.generate(behaviors, target=backend, searches=searches)
                    self.stats["searched"] += searches.searched
                    self.stats["searches_reused"] += searches.reused
                else:
                    cases = attack.generate(behaviors, target=backend)
                out += [(b, a, case) for case in cases]
        return out

    def search_cache(self, m: ModelSpec) -> Any:
        """Where an optimising attack keeps its searches against ``m`` (``searches.jsonl``), keyed by the
        model's identity (weights, tokenizer files), backend and options (``r2d.eval.attacks.searches``)."""
        from r2d.eval.attacks import searches

        if m.model not in self._search_ids:
            self._search_ids[m.model] = searches.model_identity(m.model)
        return searches.SearchCache(self.out / searches.FILE,
                                    {"model": m.model, "weights": self._search_ids[m.model], "backend": m.backend,
                                     "backend_kwargs": m.backend_kwargs})

    @staticmethod
    def key(m: ModelSpec, d: Spec, b: BenchSpec, a: Spec, case: TestCase) -> str:
        return "|".join([m.label, d.label, m.policy_label, b.spec.label, str(b.subset or ""), a.label, case.id])

    def model_identity(self, m: ModelSpec) -> dict:
        """What identifies the weights: an alias is pinned by its package version and sha256 (r2d.models);
        a local path by its config and a sampled digest of every weight file (a retrained model differs)."""
        if m.model not in self._identity:
            from r2d.models import ALIASES

            self._identity[m.model] = {"alias": m.model} if m.model in ALIASES else model_fingerprint(m.model)
        return self._identity[m.model]

    def run_fingerprint(self, m: ModelSpec, d: Spec, b: BenchSpec, a: Spec) -> str:
        """Everything that changes a sample of this (model, defense, benchmark, attack) besides its prompt."""
        gen = {k: getattr(self.params, k) for k in ("max_new_tokens", "temperature", "top_p", "seed", "stop")
               if hasattr(self.params, k)}
        return fingerprint({"model": m.model, "weights": self.model_identity(m), "backend": m.backend,
                            "backend_kwargs": m.backend_kwargs, "policy": [m.policy, m.policy_params], "defense": [d.name, d.params],
                            "benchmark": [b.spec.name, b.spec.params, b.subset], "attack": [a.name, a.params],
                            "generation": gen})

    def raw_twin(self, m: ModelSpec, d: Spec, b: BenchSpec) -> ModelSpec | None:
        """The entry whose samples ``m``'s cells in (defense ``d``, benchmark entry ``b``) are derived from, or
        None: derivation on, greedy, a policy other than raw that can be derived (``Policy.derive``), a single-pass
        defense, and a raw entry of the same weights, backend and options that runs the same cell."""
        if not self.cfg.derive_policy_samples or self.params.temperature > 0 or (m.policy or "raw") == "raw":
            return None
        from r2d.infer.policies import get_policy

        if not get_policy(m.policy, **m.policy_params).derivable() \
                or not getattr(self.component("defense", d), "single_pass", False):
            return None
        for t in self.models:
            if t is not m and (t.policy or "raw") == "raw" and not t.policy_params and t.model == m.model \
                    and t.backend == m.backend and t.backend_kwargs == m.backend_kwargs \
                    and (t.defenses is None or d.label in t.defenses) and (b.models is None or t.label in b.models):
                return t
        return None

    def generate(self) -> None:
        store = JsonlStore(self.samples_path)
        store.repair()
        done = store.latest("key")
        cache: dict[str, Any] = {}
        self.keys = []
        deferred: list[tuple[ModelSpec, Spec, Any, dict, list]] = []  # cells derived from raw twins, done last
        for m in self.models:
            backend = self.backend_for(m, cache)
            cases = self.cases(m, backend)
            for d in self.defenses:
                if m.defenses is not None and d.label not in m.defenses:
                    continue
                todo, derive = [], []
                run_fps: dict[tuple[str, str], str] = {}
                early: dict[int, bool] = {}  # id(bench) -> early stopping applies (see early_stop_ok)
                twins: dict[int, ModelSpec | None] = {}  # id(bench) -> the raw entry samples are derived from
                seen: set[str] = set()
                for b, a, case in cases:
                    if id(b) not in early:
                        early[id(b)] = self.cfg.stop_after_answer_words is not None and \
                            self.early_stop_ok(m, self.component("defense", d), b)
                        twins[id(b)] = self.raw_twin(m, d, b)
                    k = self.key(m, d, b, a, case)
                    own = self.key_judges.setdefault(k, [])
                    own += [s.label for s in self.judges_for(b) if s.label not in own]
                    if k in seen:  # the same case from two entries of one benchmark: one sample, both judges
                        continue
                    seen.add(k)
                    self.keys.append(k)
                    rfp = run_fps.get((b.spec.label, a.label))
                    if rfp is None:
                        rfp = run_fps[(b.spec.label, a.label)] = self.run_fingerprint(m, d, b, a)
                    want = self.cfg.stop_after_answer_words if early[id(b)] else None
                    twin = twins[id(b)]
                    # the early-stop and derivation settings change the sample, so they are part of its fingerprint
                    # (and so of its judgments'); left out when off, so runs without them keep their fingerprints
                    fp = self.expected[k] = fingerprint([rfp, case.messages] + ([want] if want is not None else [])
                                                        + ([{"derived_from_raw": True}] if twin is not None else []))
                    row = done.get(k)
                    if row is not None and row.get("fingerprint") == fp \
                            and not (self.cfg.retry_errors and row.get("error")):
                        self.stats["skipped"] += 1
                        continue
                    if row is not None and row.get("fingerprint") != fp:
                        self.stats["stale"] += 1  # made under other settings/weights: regenerated
                    if twin is not None:
                        derive.append((k, b, a, case, self.key(twin, d, b, a, case)))
                    else:
                        todo.append((k, b, a, case))
                if derive:
                    deferred.append((m, d, backend, early, derive))
                self._generate_cells(store, m, d, backend, early, todo)
        if deferred:  # after every raw arm has its samples: read them once
            done = store.latest("key")
            for m, d, backend, early, derive in deferred:
                self._derive_cells(store, done, m, d, backend, early, derive)

    def _derive_cells(self, store: JsonlStore, done: dict[str, dict], m: ModelSpec, d: Spec, backend: Any,
                      early: dict, items: list[tuple]) -> None:
        """``m``'s samples from its raw twin's rows in ``done`` (the store's latest row per key: same prompt, made
        under the twin's current fingerprint, no error, no early stop); the rest are generated."""
        from r2d.infer.policies import get_policy

        policy = get_policy(m.policy, **m.policy_params)
        rows, rest = [], []
        for k, b, a, case, twin_key in items:
            src = done.get(twin_key)
            c = None
            if src is not None and src.get("fingerprint") == self.expected.get(twin_key) and not src.get("error") \
                    and src.get("stop_after_answer_words") is None and src.get("messages") == case.messages:
                c = policy.derive(completion_from_row(src))
            if c is None:
                rest.append((k, b, a, case))
                continue
            c.meta["derived_from"] = twin_key
            rows.append({**sample_row(k, m, d, b, a, case, policy.apply(c)), "fingerprint": self.expected[k],
                         "stop_after_answer_words": None})
        if rows:
            store.append(rows)
            self.stats["derived"] += len(rows)
        self._generate_cells(store, m, d, backend, early, rest)

    def _generate_cells(self, store: JsonlStore, m: ModelSpec, d: Spec, backend: Any, early: dict,
                        todo: list[tuple]) -> None:
        """Generate ``todo`` ((key, bench, attack, case), ...) for model ``m`` under defense ``d``, in
        length-sorted batches, appending each batch's rows as it ends."""
        if not todo:
            return
        defense = self.component("defense", d)
        wrapped = PolicyBackend(backend, m.policy, m.policy_params)
        todo = sorted(todo, key=lambda t: -sum(len(x["content"]) for x in t[3].messages))
        groups = [(n, [t for t in todo if early[id(t[1])] == on]) for on, n in
                  ((True, self.cfg.stop_after_answer_words), (False, None))]  # each still length-sorted
        bs = max(1, self.cfg.batch_size)
        with _progress(len(todo), f"{m.label}/{d.label}", self.cfg.progress) as bar:
            for chunk, params in ((g[s:s + bs], dataclasses.replace(self.params, stop_after_answer_words=n))
                                  for n, g in groups for s in range(0, len(g), bs)):
                try:
                    comps = defense.generate(wrapped, [t[3].messages for t in chunk], params)
                    if len(comps) != len(chunk):
                        raise RuntimeError(f"defense returned {len(comps)} completions for {len(chunk)}")
                except (KeyboardInterrupt, MemoryError):
                    raise
                except Exception as e:  # noqa: BLE001 - recorded as generation errors, retried later
                    msg = f"{type(e).__name__}: {e}"
                    comps = [Completion(finish_reason="error", error=msg) for _ in chunk]
                rows = [{**sample_row(k, m, d, b, a, case, c), "fingerprint": self.expected[k],
                         "stop_after_answer_words": params.stop_after_answer_words}
                        for (k, b, a, case), c in zip(chunk, comps)]
                store.append(rows)
                self.stats["generated"] += len(rows)
                bar.update(len(rows))

    def early_stop_ok(self, m: ModelSpec, defense: Any, b: BenchSpec) -> bool:
        """Whether ``stop_after_answer_words`` applies to a cell: set, the raw policy, and every judge of the
        benchmark and the defense's own checker (SmoothLLM's vote) reading at most that many answer words."""
        n = self.cfg.stop_after_answer_words
        if n is None or (m.policy or "raw") != "raw":
            return False
        readers = [self.component("judge", j) for j in self.judges_for(b)]
        if getattr(defense, "checker", None) is not None:
            readers.append(defense.checker)
        reads = [getattr(r, "answer_words_read", None) for r in readers]
        return bool(readers) and all(k is not None and k <= n for k in reads)

    # --- stage (b): judging ------------------------------------------------------------------
    def current_samples(self) -> dict[str, dict]:
        """The last sample row per key of this grid, only when made under the current fingerprint."""
        rows = JsonlStore(self.samples_path).latest("key")
        if not self.expected:
            return rows
        return {k: r for k, r in rows.items() if k in self.expected and r.get("fingerprint") == self.expected[k]}

    def judge_fingerprint(self, j: Spec, sample: dict) -> str:
        """A judgment is current when made by the same judge (its resolved params: weights' sha256,
        thresholds, rules) on the same sample."""
        if j.label not in self._judge_ids:
            judge = self.component("judge", j)
            self._judge_ids[j.label] = fingerprint([j.name, j.params, judge.params() if hasattr(judge, "params") else None])
        return fingerprint([self._judge_ids[j.label], sample.get("fingerprint")])

    def judge(self) -> None:
        samples = self.current_samples()
        store = JsonlStore(self.judgments_path)
        store.repair()
        done = store.latest(("key", "judge"))
        keyset = set(self.keys) if self.keys else set(samples)
        for j in {s.label: s for b in self.benches for s in self.judges_for(b)}.values():
            # what this judge reads is what its instance reads: the class attribute may differ from the
            # constructor's default (the default judge: class ``visible``, instance ``answer``), and comparing
            # with it redid every judgment of such a judge on every resume
            saw = getattr(self.component("judge", j), "saw", None)
            todo = []
            for k, row in samples.items():
                if k not in keyset or row.get("error"):
                    continue
                if j.label not in self.row_judges(row):
                    continue
                prev = done.get((k, j.label))
                stale = prev is not None and saw is not None and (prev.get("verdict") or {}).get("saw") != saw
                if prev is not None and not stale and prev.get("fingerprint") == self.judge_fingerprint(j, row) \
                        and not (self.cfg.retry_errors and (prev.get("verdict") or {}).get("error")):
                    self.stats["judgments_skipped"] += 1
                    continue
                todo.append(row)
            if not todo:
                continue
            judge = self.component("judge", j)
            bs = max(1, self.cfg.batch_size)
            with _progress(len(todo), f"judge {j.label}", self.cfg.progress) as bar:
                for s in range(0, len(todo), bs):
                    chunk = todo[s:s + bs]
                    items = [judge_input(r) for r in chunk]
                    verdicts = judge.judge(items)
                    if len(verdicts) != len(items):
                        raise RuntimeError(f"judge {j.label} returned {len(verdicts)} verdicts for {len(items)}")
                    store.append([Judgment(r["key"], j.label, v.to_dict(), self.judge_fingerprint(j, r)).to_dict()
                                  for r, v in zip(chunk, verdicts)])
                    self.stats["judged"] += len(chunk)
                    bar.update(len(chunk))

    # --- stage (c): metrics ------------------------------------------------------------------
    def results(self) -> dict:
        samples = self.current_samples()
        keyset = set(self.keys) if self.keys else set(samples)
        rows = [samples[k] for k in self.keys if k in samples] if self.keys else list(samples.values())
        specs = {s.label: s for b in self.benches for s in self.judges_for(b)}
        judg = {(k, jl): r["verdict"] for (k, jl), r in JsonlStore(self.judgments_path).latest(("key", "judge")).items()
                if k in samples and jl in specs and r.get("fingerprint") == self.judge_fingerprint(specs[jl], samples[k])}
        missing = len(keyset - set(samples))
        gen_errors = [r["error"] for r in rows if r.get("error")]
        original = [r for r in rows if r["behavior"].get("benchmark") == "jbb"
                    and (r["behavior"].get("meta") or {}).get("source") == "Original"]
        xs = {s.label for b in self.benches for s in self.judges_for(b)
              if getattr(registry.get("judge", s.name), "xstest_classes", False)}
        res = {"cells": compute_cells(rows, judg, self.row_judges, xs),
               "cells_jbb_original": [{**c, "source": "Original"}
                                      for c in compute_cells(original, judg, self.row_judges, xs)],
               "words": words_summary(rows),
               "samples": len(rows), "samples_missing": missing, "sample_errors": len(gen_errors),
               "first_error": gen_errors[0] if gen_errors else None, "overlap": self.overlap(rows),
               "general_ability": self.general_ability(), "pivot_score": pivot_scores(rows),
               "provenance": self.provenance()}
        return res

    def overlap(self, rows: list[dict]) -> dict:
        from r2d.eval.overlap import overlap_report

        pairs = list({r["behavior_id"]: r["goal"] for r in rows}.items())
        return overlap_report(pairs, list(self.cfg.train_data or []), self.cfg.overlap_ngram,
                              self.cfg.overlap_threshold)

    def general_ability(self) -> dict:
        out: dict[str, Any] = {}
        if "mmlu" in self.cfg.ability:
            out["mmlu"] = self.mmlu(**(self.cfg.ability["mmlu"] or {}))
        if self.cfg.lm_eval and self.cfg.lm_eval.get("tasks"):
            from r2d.eval.lm_eval_hook import run_lm_eval

            out["lm_eval"] = {m.label: run_lm_eval(m, **self.cfg.lm_eval) for m in self.models}
        return out or {"skipped": "no ability benchmark (ability.mmlu) or lm_eval tasks in the config"}

    def mmlu(self, n: int = 1000, seed: int = 0, batch_size: int = 16, reference: str | None = None,
             models: list[str] | None = None) -> dict:
        """MMLU for every hf-backend model, or only the labels in ``models`` (see ``r2d.eval.ability``),
        resumable via ``ability.jsonl``."""
        from r2d.eval import ability

        labels = [m.label for m in self.models]
        unknown = sorted(set(models or ()) - set(labels))
        if unknown:
            raise ValueError(f"config: ability.mmlu.models: unknown model label(s) {', '.join(unknown)}; "
                             f"known: {', '.join(labels)}")

        questions, prov = ability.load_mmlu()
        sample = ability.stratified_sample(questions, int(n), int(seed))
        store = JsonlStore(self.out / "ability.jsonl")
        store.repair()
        done = store.latest("key")
        per_model: dict[str, list[dict]] = {}
        skipped: dict[str, str] = {}
        cache: dict[str, Any] = {}
        for m in self.models:
            if models is not None and m.label not in models:
                skipped[m.label] = "not in ability.mmlu.models"
                continue
            if m.backend != "hf" and m.label not in self.given_backends:
                skipped[m.label] = f"needs model weights; backend {m.backend!r} is not hf"
                continue
            # keyed by the weights (not the label): two entries of one model (r2d, r2d@policy) score once
            fp = fingerprint([ability.PROTOCOL, m.model, self.model_identity(m)])
            keys = {q["id"]: f"{fp}|{q['id']}" for q in sample}
            todo = [q for q in sample if keys[q["id"]] not in done]
            if todo:
                backend = self.backend_for(m, cache)
                with _progress(len(todo), f"mmlu {m.label}", self.cfg.progress) as bar:
                    for s in range(0, len(todo), 64):
                        chunk = todo[s:s + 64]
                        rows = ability.score(backend.model, backend.tokenizer, chunk, batch_size=int(batch_size))
                        rows = [{"key": keys[r["id"]], "model": m.label, "model_path": m.model, **r} for r in rows]
                        store.append(rows)
                        done.update((r["key"], r) for r in rows)
                        bar.update(len(chunk))
            per_model[m.label] = [done[keys[q["id"]]] for q in sample]
        ref = reference or next(iter(per_model), None)
        if ref is not None and ref not in per_model:
            raise ValueError(f"config: ability.mmlu.reference {ref!r} is not an evaluated hf model")
        return {"protocol": ability.PROTOCOL, "n": len(sample), "seed": int(seed), "sample": "stratified by category",
                "data": prov, "models": ability.summarize(per_model, ref), "skipped": skipped}

    def provenance(self) -> dict:
        def params(kind: str, spec: Spec) -> dict:
            obj = self._components.get((kind, spec.label))
            p = obj.params() if obj is not None and hasattr(obj, "params") else None
            return {"name": spec.name, "label": spec.label, "config": spec.params, "params": p}

        benches = []
        for b in self.benches:
            obj = self._components.get(("benchmark", b.spec.label))
            benches.append({"name": b.spec.name, "label": b.spec.label, "subset": b.subset, "limit": b.limit,
                            "sample": b.sample, "config": b.spec.params, "provenance": obj.provenance() if obj is not None else None,
                            "attacks": [params("attack", a) for a in b.attacks],
                            "judges": [s.label for s in self.judges_for(b)]})
        judges = {s.label: params("judge", s) for b in self.benches for s in self.judges_for(b)}
        models = [{**dataclasses.asdict(m), **model_fingerprint(m.model)} for m in self.models]
        from r2d.eval.attacks import searches
        from r2d.provenance import now

        return {**self._started, "finished": now(), "config": dataclasses.asdict(self.cfg), "models": models,
                "defenses": [params("defense", d) for d in self.defenses], "benchmarks": benches,
                "judges": judges, "generation": self.params.provenance(),
                "data_dir": str(__import__("r2d.paths", fromlist=["data_dir"]).data_dir()),
                "files": {"samples": self.samples_path.name, "judgments": self.judgments_path.name,
                          **({"searches": searches.FILE} if (self.out / searches.FILE).is_file() else {})}}

    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(self.cfg), indent=2, default=str))
        self.generate()
        self.judge()
        res = self.results()
        res["run_stats"] = dict(self.stats)
        tmp = self.out / "results.json.tmp"
        tmp.write_text(json.dumps(res, indent=2, default=str))
        tmp.replace(self.out / "results.json")
        return res


def run_eval(cfg: EvalConfig, out_dir: str | Path | None = None, backends: dict[str, Any] | None = None) -> dict:
    return Runner(cfg, out_dir, backends).run()
