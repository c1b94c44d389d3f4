"""Jailbreak templates: JailbreakChat/AIM, the 114 HarmBench human jailbreaks and user template files.

Template ids: ``hj-<n>`` for HarmBench human jailbreak ``n``; ``aim`` is the "Niccolo Machiavelli"
AIM template (``hj-0``); ``jbc-aim`` is the exact AIM text JailbreakBench's JBC artifacts used;
``user-<n>`` are templates from a ``--templates`` file.

Train/eval split (:func:`template_split`): a human jailbreak is in TRAIN when the first 8 hex digits
of sha256("r2d-template-split:" + whitespace-normalised text) / 16**8 < 0.7, else EVAL. Hashing the
text (not the id) keeps duplicated templates on one side. All AIM/Niccolo templates are forced into
EVAL, because the paper's JailbreakChat attack is AIM. The data pipeline may only use TRAIN;
evaluation should use EVAL (or ``aim``).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from r2d.backends.base import Backend
from r2d.eval.attacks.base import make_case, request_text, user
from r2d.eval.types import Behavior, TestCase
from r2d.paths import data_file
from r2d.provenance import sha256_file
from r2d.registry import register

HUMAN_JAILBREAKS = "templates/harmbench_human_jailbreaks.json"
JBC_ARTIFACT = "jbb/artifacts/JBC/manual/vicuna-13b-v1.5.json"
JBC_URL = ("https://raw.githubusercontent.com/JailbreakBench/artifacts/main/attack-artifacts/"
           "JBC/manual/vicuna-13b-v1.5.json")
SLOTS = ("{0}", "[INSERT PROMPT HERE]", "{goal}")
TRAIN_FRACTION = 0.7


@lru_cache(maxsize=4)
def _human(path: str) -> dict[str, str]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        return {f"hj-{t['id']}": t["text"] for t in data["templates"]}
    except (KeyError, TypeError):
        raise ValueError(f"{path}: expected {{'templates': [{{'id', 'text'}}]}}") from None


def human_jailbreaks() -> dict[str, str]:
    """id -> template text for the HarmBench human jailbreaks (slot ``{0}`` or ``[INSERT PROMPT HERE]``)."""
    return _human(str(data_file(HUMAN_JAILBREAKS)))


def _is_aim(text: str) -> bool:
    return "Niccolo" in text and "AIM" in text


def _in_train(text: str) -> bool:
    if _is_aim(text):
        return False
    h = hashlib.sha256(("r2d-template-split:" + " ".join(text.split())).encode()).hexdigest()
    return int(h[:8], 16) / 16**8 < TRAIN_FRACTION


def template_split(name: str) -> list[str]:
    """The human-jailbreak template ids in split ``train`` or ``eval`` (disjoint, deterministic)."""
    if name not in ("train", "eval"):
        raise ValueError(f"unknown template split {name!r}; choose train or eval")
    return [i for i, t in human_jailbreaks().items() if _in_train(t) == (name == "train")]


def fill(template: str, goal: str, mode: str = "insert") -> str:
    """Put ``goal`` into ``template``: ``insert`` replaces the slot (plain string replace, never
    str.format; no slot -> appended), ``append`` is HarmBench's ``template + "\\n\\n" + goal``."""
    if mode == "append":
        return f"{template}\n\n{goal}"
    if mode != "insert":
        raise ValueError(f"unknown template mode {mode!r}; choose insert or append")
    for slot in SLOTS:
        if slot in template:
            return template.replace(slot, goal)
    return f"{template}\n\n{goal}"


def load_user_templates(path: str | Path) -> dict[str, str]:
    """A JSON list of template strings (or ``{"id", "text"}`` objects), each holding ``{goal}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"template file {path} not found")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of templates")
    out = {}
    for n, t in enumerate(items):
        tid, text = (t.get("id", f"user-{n}"), t.get("text")) if isinstance(t, dict) else (f"user-{n}", t)
        if not isinstance(text, str) or "{goal}" not in text:
            raise ValueError(f"{path}: template {n} has no {{goal}} placeholder")
        out[str(tid)] = text
    return out


@register("attack", "template")
class TemplateAttack:
    """One TestCase per (behaviour, template). Choose templates by ``templates`` (ids), ``split``
    (train / eval / all human jailbreaks) and/or ``templates_file``; default: ``aim``."""

    name = "template"

    def __init__(self, templates: list[str] | str | None = None, split: str | None = None,
                 templates_file: str | None = None, mode: str = "insert") -> None:
        self.ids = [templates] if isinstance(templates, str) else list(templates or [])
        self.split, self.templates_file, self.mode = split, templates_file, mode
        if not (self.ids or split or templates_file):
            self.ids = ["aim"]
        if split not in (None, "train", "eval", "all"):
            raise ValueError(f"attack template: unknown split {split!r}; choose train, eval or all")
        fill("", "", mode)  # validate mode early
        self._files: dict[str, str] = {}

    def templates(self) -> dict[str, str]:
        """id -> text, in a stable order."""
        chosen: dict[str, str] = {}
        if self.ids or self.split:
            hj = human_jailbreaks()
            self._files[HUMAN_JAILBREAKS] = sha256_file(data_file(HUMAN_JAILBREAKS))
            if self.split:
                ids = list(hj) if self.split == "all" else template_split(self.split)
                chosen.update({i: hj[i] for i in ids})
            for i in self.ids:
                if i == "aim":
                    chosen[i] = hj["hj-0"]
                elif i == "jbc-aim":
                    path = data_file(JBC_ARTIFACT, url=JBC_URL)
                    self._files[JBC_ARTIFACT] = sha256_file(path)
                    params = json.loads(path.read_text(encoding="utf-8"))["parameters"]["method_parameters"]
                    chosen[i] = params["prompt_template"]
                elif i in hj:
                    chosen[i] = hj[i]
                else:
                    raise ValueError(f"attack template: unknown template id {i!r} (ids: aim, jbc-aim, hj-0..hj-"
                                     f"{len(hj) - 1})")
        if self.templates_file:
            self._files[str(self.templates_file)] = sha256_file(self.templates_file)
            chosen.update(load_user_templates(self.templates_file))
        return chosen

    def generate(self, behaviors: list[Behavior], target: Backend | None = None) -> list[TestCase]:
        temps = self.templates()
        return [make_case(b, self.name, user(fill(text, request_text(b), self.mode)), variant=tid,
                          mode="static", template=tid, fill=self.mode)
                for b in behaviors for tid, text in temps.items()]

    def params(self) -> dict:
        return {"attack": self.name, "templates": self.ids, "split": self.split, "fill": self.mode,
                "templates_file": self.templates_file, "files": dict(self._files)}
