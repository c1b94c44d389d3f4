"""Seed prompts for SwaRD synthesis: benign instructions, harmful requests and jailbreak-wrapped requests.

Every seed set is registered as ``@register("seedset", name)`` and yields ``Seed`` rows in a fixed order
(so a seeded sample is deterministic). ``mix_seeds`` draws a sized, seeded mixture from several sets.
Sets: ``alpaca`` and ``self-instruct`` (benign, with the source answer), ``advbench`` (harmful),
``jailbreak`` (AdvBench goals wrapped in the TRAIN split of jailbreak templates only) and ``file``
(a user JSONL/CSV with a column mapping), ``contrast`` (r2d's sound-harmful benign prompts) and ``dataset``
(prompts of a file of existing teacher replies, each seed carrying its trace).
"""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from r2d import registry
from r2d.paths import data_file
from r2d.pivots import neutralize
from r2d.textmatch import containment, ngrams

LABELS = ("benign", "harmful", "jailbreak")
_UP = "https://raw.githubusercontent.com"
ALPACA_URL = f"{_UP}/wujindou/BLOOM-LORA/11c488c/data/alpaca_data_1k.json"
SELF_INSTRUCT_URL = f"{_UP}/tatsu-lab/stanford_alpaca/761dc5b/seed_tasks.jsonl"
ADVBENCH_URL = f"{_UP}/llm-attacks/llm-attacks/098262e/data/advbench/harmful_behaviors.csv"


@dataclass
class Seed:
    id: str
    prompt: str
    origin: str  # dataset + row, e.g. "advbench:17"
    label: str  # benign / harmful / jailbreak
    category: str = "general"
    answer: str | None = None  # benign: the source dataset's answer
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. goal, template id, wrapper, edgy

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def dedup_text(self) -> str:
        """What near-duplicate detection compares: the request itself (for a jailbreak, template id +
        goal, because every prompt built from one template shares most of its words)."""
        if self.label == "jailbreak":
            return f"{self.meta.get('template_id', '')} :: {self.meta.get('goal', self.prompt)}"
        return self.prompt


# --- categories ----------------------------------------------------------------------------------
_CATEGORIES: list[tuple[str, str]] = [
    ("self-harm", r"suicid|self-harm|self harm|anorexi|bulimi|cut (?:yourself|themselves)"),
    ("weapons", r"bomb|explosive|weapon|firearm|\bgun|poison|bioweapon|chemical weapon|ammunition"),
    ("cybercrime", r"hack|malware|virus|ransomware|exploit|phishing|password|botnet|ddos|keylogger|cyber"),
    ("drugs", r"\bdrug|cocaine|heroin|meth|narcotic|opioid"),
    ("fraud", r"fraud|scam|counterfeit|launder|insider trading|tax evasion|identity theft|forge"),
    ("theft", r"steal|theft|shoplift|rob\b|robbery|burglar"),
    ("violence", r"kill|murder|assault|violence|violent|terror|attack|harm (?:someone|people|others)|torture"),
    ("hate-harassment", r"hate|racis|discriminat|harass|bully|cyberbully|stalk|defam"),
    ("misinformation", r"fake news|misinformation|disinformation|propaganda|conspiracy|hoax|false information"),
    ("privacy", r"personal information|private information|spy|surveil|track (?:someone|a person)|dox"),
    ("sexual", r"sexual|porn|explicit"),
]
# Words that sound dangerous but are everyday in benign instructions ("kill a process", "shoot a photo").
EDGY_WORDS = re.compile(r"\b(kill\w*|shoot\w*|attack\w*|steal\w*|weapon\w*|bomb\w*|fight\w*|destroy\w*|hack\w*|"
                        r"poison\w*|explo(?:de|sion|sive)\w*|die|dead|death|crash\w*|fire|gun\w*|war|blow\w*|knife|virus\w*|"
                        r"drug\w*|crime\w*|illegal|threat\w*|dangerous|murder\w*|strangl\w*|slaughter\w*|exterminat\w*|"
                        r"eliminat\w*|execut\w*|crack\w*|captur\w*|overthrow\w*|silenc\w*|drown\w*|ambush\w*|"
                        r"chok\w*|deadly|smash\w*|bleed\w*|spike\w*|torch\w*|trap\w*)\b", re.IGNORECASE)


def categorize(text: str) -> str:
    low = text.lower()
    for name, pat in _CATEGORIES:
        if re.search(pat, low):
            return name
    return "other"


# An instruction-form prompt opens with an imperative verb ("Write a ...", "Create a tutorial ..."): the form of
# AdvBench/JBB/HarmBench goals. Most STAR-1 prompts are questions; a harmful half of questions beside a benign
# half with many instructions teaches a student "instruction -> help" (measured: docs/configs.md), so the
# dataset seed set can draw each form separately (``prompt_form``).
_INSTRUCTION_VERBS = (
    "write", "create", "develop", "provide", "give", "generate", "explain", "describe", "design", "make", "list",
    "outline", "teach", "tell", "suggest", "compose", "draft", "produce", "instruct", "craft", "build", "draw",
    "publish", "post", "offer", "share", "show", "help", "find", "plan", "prepare", "devise", "construct",
    "recommend", "detail", "compile", "summarize", "summarise", "translate", "rewrite", "convince", "persuade",
    "come", "brainstorm", "propose", "formulate", "invent", "program", "code", "implement", "name", "identify",
)
PROMPT_FORMS = ("instruction", "other")


def prompt_form(text: str) -> str:
    """``instruction`` when the prompt opens with an imperative verb (optionally after "please"), else ``other``."""
    words = re.findall(r"[a-z']+", text.lower())[:2]
    if words and words[0] == "please":
        words = words[1:]
    return "instruction" if words and words[0] in _INSTRUCTION_VERBS else "other"


# --- templates (train split only) ----------------------------------------------------------------
def _split(split: str) -> list[dict]:
    from r2d.eval.attacks.templates import human_jailbreaks, template_split
    texts = human_jailbreaks()
    return [{"id": i, "text": texts[i]} for i in template_split(split)]


def train_templates(eval_overlap_max: float = 0.3) -> list[dict]:
    """The jailbreak templates reserved for training (``r2d.eval.attacks.templates.template_split
    ("train")``): ``[{"id", "text"}]`` with a ``{0}`` / ``[INSERT PROMPT HERE]`` slot (none: appended).
    The split hashes exact text, so near-copies of an EVAL template (DAN/Anarchy variants) can land in
    TRAIN; a TRAIN template is left out when the word 5-gram containment either way (the share of one
    template's 5-grams found in the other) reaches ``eval_overlap_max`` for any EVAL template. Containment,
    not Jaccard: a TRAIN template that copies most of an EVAL one and adds text of its own is caught."""
    evals = [ngrams(t, 5) for t in eval_template_texts()]
    out = []
    for t in _split("train"):
        g = ngrams(t["text"], 5)
        if not any(max(containment(e, g), containment(g, e)) >= eval_overlap_max for e in evals):
            out.append(t)
    return out


def eval_template_texts() -> set[str]:
    return {t["text"] for t in _split("eval")}


def wrap(template: str, goal: str) -> str:
    for slot in ("{0}", "[INSERT PROMPT HERE]", "{goal}", "[PROMPT]"):
        if slot in template:
            return template.replace(slot, goal)
    return f"{template}\n\n{goal}"


_WRAPPERS: list[tuple[str, str]] = [
    ("DAN", r"(?-i:\bDAN\b)|do anything now"), ("AIM", r"(?-i:\bAIM\b)|machiavelli"),
    ("developer mode", r"developer mode|dev mode"), ("role-play", r"role-?play|act as|pretend|you are now|persona|character"),
    ("hypothetical", r"hypothetical|imagine|fiction|story|novel|movie|game"),
    ("instruction override", r"ignore (?:all|any|the|prior|previous)|disregard|no (?:rules|restrictions|filters)"),
]


def detect_wrappers(text: str) -> list[str]:
    """Jailbreak wrapper styles named by keywords (the template teacher names them in its reasoning)."""
    return [name for name, pat in _WRAPPERS if re.search(pat, text, re.IGNORECASE)]


# --- seed sets -----------------------------------------------------------------------------------
def _trim(text: str) -> str:
    return re.sub(r"\s+\n", "\n", text.strip())


@registry.register("seedset", "alpaca")
def alpaca(path: str | None = None, **_: Any) -> list[Seed]:
    """Alpaca instructions (+ input) with their outputs; ``path``: any Alpaca-format JSON (e.g. the full
    52k ``alpaca_data.json``), default the 1k subset in the data directory."""
    src = Path(path) if path else data_file("benign/alpaca_data_1k.json", url=ALPACA_URL)
    if not src.is_file():
        raise FileNotFoundError(f"alpaca seed file not found: {src}")
    rows = json.loads(src.read_text())
    out = []
    for i, r in enumerate(rows):
        prompt = _trim(r["instruction"] + (("\n\n" + r["input"]) if r.get("input") else ""))
        out.append(Seed(f"alpaca-{i}", neutralize(prompt), f"alpaca:{i}", "benign", "general", r.get("output", ""),
                        {"edgy": bool(EDGY_WORDS.search(prompt))}))
    return out


@registry.register("seedset", "self-instruct")
def self_instruct(**_: Any) -> list[Seed]:
    out = []
    path = data_file("benign/self_instruct_seed_tasks.jsonl", url=SELF_INSTRUCT_URL)
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        r = json.loads(line)
        inst = (r.get("instances") or [{}])[0]
        prompt = _trim(r["instruction"] + (("\n\n" + inst["input"]) if inst.get("input") else ""))
        out.append(Seed(f"self-instruct-{i}", neutralize(prompt), f"self-instruct:{r.get('id', i)}", "benign",
                        "general", inst.get("output", ""), {"edgy": bool(EDGY_WORDS.search(prompt))}))
    return out


def _advbench_goals() -> list[str]:
    with open(data_file("advbench/harmful_behaviors.csv", url=ADVBENCH_URL), newline="", encoding="utf-8") as f:
        return [r["goal"].strip() for r in csv.DictReader(f)]


@registry.register("seedset", "advbench")
def advbench(**_: Any) -> list[Seed]:
    return [Seed(f"advbench-{i}", neutralize(g), f"advbench:{i}", "harmful", categorize(g), meta={"goal": g})
            for i, g in enumerate(_advbench_goals())]


def short_train_templates(max_words: int | None, eval_overlap_max: float, who: str) -> list[dict]:
    """The TRAIN-split templates of at most ``max_words`` words (all when None); none left is an error."""
    temps = [t for t in train_templates(eval_overlap_max) if t["text"]]
    if max_words:
        temps = [t for t in temps if len(t["text"].split()) <= max_words]
    if not temps:
        raise ValueError(f"{who}: no train-split template left (raise max_template_words)")
    return temps


@registry.register("seedset", "jailbreak")
def jailbreak(max_template_words: int | None = None, per_goal: int = 1, seed: int = 0,
              eval_overlap_max: float = 0.3, **_: Any) -> list[Seed]:
    """AdvBench goals, each wrapped in ``per_goal`` TRAIN-split templates (chosen by a seeded RNG).
    ``max_template_words`` keeps only short templates (small students, short sequences)."""
    temps = short_train_templates(max_template_words, eval_overlap_max, "jailbreak seed set")
    rng = random.Random(f"jailbreak:{seed}")
    out = []
    for i, g in enumerate(_advbench_goals()):
        for t in rng.sample(temps, min(per_goal, len(temps))):
            prompt = neutralize(wrap(t["text"], g))
            out.append(Seed(f"jailbreak-{i}-{t['id']}", prompt, f"advbench:{i}+{t['id']}", "jailbreak", categorize(g),
                            meta={"goal": g, "template_id": t["id"], "wrappers": detect_wrappers(t["text"]),
                                  "source": "advbench+train-templates"}))
    return out


@registry.register("seedset", "file")
def file_seeds(path: str, prompt: str = "prompt", label: str | None = "label", default_label: str = "benign",
               category: str | None = "category", answer: str | None = "answer", id: str | None = "id",
               **_: Any) -> list[Seed]:
    """A user JSONL or CSV; ``prompt``/``label``/``category``/``answer``/``id`` name the columns."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"seed file not found: {p}")
    if p.suffix == ".csv":
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    elif p.suffix in (".jsonl", ".json"):
        rows = [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.suffix == ".jsonl" \
            else json.loads(p.read_text())
    else:
        raise ValueError(f"{p}: seed files must be .csv, .jsonl or .json")
    out = []
    for n, r in enumerate(rows, 1):
        text = r.get(prompt)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{p}: row {n}: missing or empty prompt column {prompt!r}")
        lab = (r.get(label) if label else None) or default_label
        if lab not in LABELS:
            raise ValueError(f"{p}: row {n}: label {lab!r} not in {LABELS}")
        sid = str(r.get(id)) if id and r.get(id) not in (None, "") else f"{p.stem}-{n}"
        cat = (r.get(category) if category else None) or (categorize(text) if lab != "benign" else "general")
        out.append(Seed(sid, neutralize(text.strip()), f"{p.name}:{n}", lab, cat,
                        (r.get(answer) if answer else None) or None, {"goal": text.strip()}))
    return out


def _seed_rows(name: str) -> list[dict]:
    """The rows of one of r2d's own seed files (``resources/seeds/NAME``, JSONL)."""
    path = Path(__file__).resolve().parents[1] / "resources" / "seeds" / name
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@registry.register("seedset", "contrast")
def contrast(extra: bool = False, **_: Any) -> list[Seed]:
    """r2d's own hand-written benign prompts that SOUND harmful, with short reference answers: they teach
    that alarming words alone are not a reason to refuse. Their kinds (homonyms, figurative language, safe
    targets and contexts, definitions, history, safety information) follow XSTest's categories of safe
    prompts, but no prompt is taken or paraphrased from XSTest or any other benchmark: prompts whose
    content words overlap an XSTest item's by more than a third were dropped (``tests/data/test_seeds.py``
    checks it), and the build decontaminates them like every seed. ``extra``: 24 more (privacy of fictional
    characters and public offices, absurd premises about groups, discrimination history), appended after the
    54 (``contrast_benign_extra.jsonl``; used by the qs-v4 candidate recipe, not by the quickstart's)."""
    rows = _seed_rows("contrast_benign.jsonl") + (_seed_rows("contrast_benign_extra.jsonl") if extra else [])
    return [Seed(f"contrast-{n}", neutralize(r["prompt"]), f"r2d-contrast:{n}", "benign", "general", r["answer"],
                 {"edgy": True, "kind": r["kind"]}) for n, r in enumerate(rows, 1)]


@registry.register("seedset", "contrast-harmful")
def contrast_harmful(**_: Any) -> list[Seed]:
    """r2d's hand-written HARMFUL counterparts of the contrast prompts: short direct requests that use the same
    alarming words literally ("kill the dog next door" beside "kill time at the airport"), with the reason
    they are harmful (``meta.why``, read by the composer's harmful trace) and a refusal with a safe
    redirect as the answer. Same kinds as XSTest's unsafe contrasts (violence, unsafe targets, discrimination,
    history denial, privacy of private people), none taken or paraphrased from XSTest (checked like the
    benign contrast seeds by ``tests/data/test_seeds.py``); decontaminated by the build like every seed."""
    rows = _seed_rows("contrast_harmful.jsonl")
    return [Seed(f"contrast-harmful-{n}", neutralize(r["prompt"]), f"r2d-contrast-harmful:{n}", "harmful",
                 categorize(r["prompt"]), r["answer"], {"edgy": True, "kind": r["kind"], "why": r["why"]})
            for n, r in enumerate(rows, 1)]


def load_seedset(name: str, **kwargs: Any) -> list[Seed]:
    return registry.create("seedset", name, **kwargs)


def mix_seeds(mix: dict[str, Any], size: int | None = None, seed: int = 0, edgy_first: bool = True) -> list[Seed]:
    """A seeded mixture. ``mix``: {set name: weight or {"weight": w, **kwargs}}. With ``size``, each set
    gives round(size * w / sum w) rows (capped at what it holds; the leftover goes to the others);
    without, every row. ``edgy_first``: benign rows with dangerous-sounding words are drawn first (they
    teach that such words alone are not harmful). Output order is shuffled with the same seed."""
    specs = {k: (v if isinstance(v, dict) else {"weight": v}) for k, v in mix.items()}
    pools: dict[str, list[Seed]] = {}
    for name, spec in specs.items():
        kw = {k: v for k, v in spec.items() if k not in ("weight", "seedset")}
        pools[name] = load_seedset(spec.get("seedset", name), **kw)
    total_w = sum(float(s.get("weight", 1.0)) for s in specs.values()) or 1.0
    want = {n: (len(pools[n]) if size is None else round(size * float(specs[n].get("weight", 1.0)) / total_w))
            for n in specs}
    out: list[Seed] = []
    for name in specs:
        rng = random.Random(f"{seed}:{name}")
        pool = list(pools[name])
        rng.shuffle(pool)
        if edgy_first:
            pool.sort(key=lambda s: not s.meta.get("edgy", False))
        out += pool[: want[name]]
    seen: set[str] = set()
    uniq = [s for s in out if not (s.id in seen or seen.add(s.id))]
    random.Random(f"{seed}:order").shuffle(uniq)
    return uniq
