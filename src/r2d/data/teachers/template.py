"""The ``template`` teacher: offline, label-driven SwaRD targets. NOT a reasoning model.

It writes short step-wise safety reasoning from each seed's label and category (2-3 one-sentence steps,
each ending in a pivot), then an answer:
- harmful: step 1 names the harm and ends ``[UNSAFE]``; step 2 decides to refuse (``[SAFE]``); a
  short refusal with a safe alternative.
- jailbreak: step 1 names the wrapper (role-play, DAN, AIM, hypothetical... detected by keywords)
  and ends ``[RETHINK]``; step 2 names the harmful request underneath (``[UNSAFE]``); step 3
  decides to refuse (``[SAFE]``); a refusal.
- benign: one or two ``[SAFE]`` steps (one says that an alarming-sounding word is used in a harmless
  sense when the prompt has one), then a helpful answer: the source dataset's answer
  (``answers="source"``) or the student's own greedy answer (``answers="self"``, self-distillation
  through the ``hf`` backend, batched), cut at a sentence boundary to at most ``max_answer_words``.
The flagging pivot comes in the FIRST step so a student learns to emit ``[UNSAFE]``/``[RETHINK]``
early. Wording is picked per seed from several phrasings by a hash of the seed id (deterministic).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

from r2d.data.seeds import EDGY_WORDS, Seed, detect_wrappers
from r2d.data.teachers.base import TeacherReply
from r2d.pivots import RETHINK, SAFE, UNSAFE, neutralize
from r2d.reasoning import render_parts
from r2d.registry import register

HARM = {
    "weapons": "instructions for weapons or explosives", "cybercrime": "hacking or malicious software",
    "drugs": "making or dealing illegal drugs", "fraud": "fraud or deception for profit",
    "theft": "stealing from others", "violence": "hurting or killing people",
    "hate-harassment": "harassment or hateful content", "misinformation": "spreading false information",
    "privacy": "violating someone's privacy", "sexual": "sexual content that could cause harm",
    "self-harm": "content that encourages self-harm", "other": "something harmful or illegal",
}
ALTERNATIVE = {
    "weapons": "I can talk about safety rules or the history of arms control instead.",
    "cybercrime": "I can explain how to protect systems and report vulnerabilities responsibly.",
    "drugs": "I can share information on drug safety and where to find support.",
    "fraud": "I can explain how to recognise and report scams instead.",
    "theft": "I can suggest legal ways to get what you need.",
    "violence": "If someone is in danger, please contact local emergency services.",
    "hate-harassment": "I can help write something respectful instead.",
    "misinformation": "I can help you find reliable sources on the topic.",
    "privacy": "I can explain how people protect their personal data.",
    "sexual": "I can point you to respectful, educational resources.",
    "self-harm": "If you are struggling, please reach out to someone you trust or a local crisis line.",
    "other": "I am happy to help with a safe, legal alternative.",
}
_HARM_STEP = [
    "The user is asking for {harm}, which could cause real harm. " + UNSAFE,
    "This request seeks {harm}; answering it would be dangerous. " + UNSAFE,
    "Helping here would mean providing {harm}, which is unsafe. " + UNSAFE,
]
_WRAP_STEP = [
    "The message uses a {wrapper} framing to get around my safety rules. " + RETHINK,
    "This looks like a {wrapper} jailbreak that tries to switch off my guidelines. " + RETHINK,
    "The prompt sets up a {wrapper} scenario, so I need to be careful. " + RETHINK,
]
_UNDER_STEP = [
    "Underneath, it asks for {harm}, which is harmful. " + UNSAFE,
    "The real request is {harm}, and that is unsafe. " + UNSAFE,
    "Stripped of the framing, it wants {harm}. " + UNSAFE,
]
_REFUSE_STEP = [
    "I should refuse and offer a safe alternative. " + SAFE,
    "The safe choice is to decline clearly and briefly. " + SAFE,
    "I will not help with this, but I can redirect politely. " + SAFE,
]
_REFUSAL = [
    "I'm sorry, but I can't help with that.",
    "I can't assist with this request.",
    "Sorry, I won't help with that.",
]
_BENIGN_STEP = [
    "This is an ordinary request with no harmful intent. " + SAFE,
    "The user wants everyday help, and nothing here is dangerous. " + SAFE,
    "This is a harmless task that I can help with. " + SAFE,
]
_EDGY_STEP = [
    'The word "{w}" is used in a harmless sense here. ' + SAFE,
    'Although it mentions "{w}", the request is benign. ' + SAFE,
]
_ANSWER_STEP = [
    "I can answer it directly and helpfully. " + SAFE,
    "I will give a clear, useful answer. " + SAFE,
]


def _pick(options: list[str], seed_id: str, salt: str) -> str:
    h = int(hashlib.sha256(f"{salt}:{seed_id}".encode()).hexdigest(), 16)
    return options[h % len(options)]


def truncate_answer(text: str, max_words: int = 60) -> str:
    """At most ``max_words`` words, cut at a sentence boundary (a single over-long sentence is cut at
    a word and closed with "..."); pivots/think tags in the source are neutralised."""
    text = neutralize(re.sub(r"\s+", " ", (text or "")).strip())
    sentences = re.split(r"(?<=[.!?])\s+", text)
    out: list[str] = []
    n = 0
    for s in sentences:
        w = len(s.split())
        if n + w > max_words:
            break
        out.append(s)
        n += w
    if not out and text:
        return " ".join(text.split()[:max_words]).rstrip(",;:") + "..."
    return " ".join(out)


def _split_step(step: str) -> tuple[str, str]:
    text, _, piv = step.rpartition(" ")
    return text, piv


@register("teacher", "template")
class TemplateTeacher:
    """Offline label-driven teacher (see module docstring). ``answers``: ``source`` or ``self``."""

    name = "template"

    def __init__(self, answers: str = "source", model: str | None = "smollm2-135m", max_answer_words: int = 60,
                 self_max_new_tokens: int = 80, batch_size: int = 32, backend: str = "hf",
                 version: int = 1, **_: Any) -> None:
        if answers not in ("source", "self"):
            raise ValueError(f"template teacher: answers must be 'source' or 'self', got {answers!r}")
        self.answers, self.model, self.max_answer_words = answers, model, max_answer_words
        self.self_max_new_tokens, self.batch_size, self.backend = self_max_new_tokens, batch_size, backend
        self.version = version
        self.calls = 0
        self._backend_obj = None

    def cache_params(self) -> dict:
        d = {"teacher": "template", "version": self.version, "answers": self.answers,
             "max_answer_words": self.max_answer_words}
        if self.answers == "self":
            d |= {"model": self.model, "max_new_tokens": self.self_max_new_tokens, "greedy": True}
        return d

    def provenance(self) -> dict:
        return self.cache_params() | {"kind": "template (label-driven wording, not a reasoning model)"}

    def reasoning(self, seed: Seed) -> list[str]:
        harm = HARM.get(seed.category, HARM["other"])
        if seed.label == "harmful":
            return [_pick(_HARM_STEP, seed.id, "h").format(harm=harm), _pick(_REFUSE_STEP, seed.id, "r")]
        if seed.label == "jailbreak":
            wrappers = seed.meta.get("wrappers") or detect_wrappers(seed.prompt)
            wrapper = wrappers[0] if wrappers else "role-play or instruction-override"
            return [_pick(_WRAP_STEP, seed.id, "w").format(wrapper=wrapper),
                    _pick(_UNDER_STEP, seed.id, "u").format(harm=harm), _pick(_REFUSE_STEP, seed.id, "r")]
        m = EDGY_WORDS.search(seed.prompt)
        first = _pick(_EDGY_STEP, seed.id, "e").format(w=m.group(0).lower()) if m else _pick(_BENIGN_STEP, seed.id, "b")
        return [first, _pick(_ANSWER_STEP, seed.id, "a")]

    def refusal(self, seed: Seed) -> str:
        return f"{_pick(_REFUSAL, seed.id, 'x')} {ALTERNATIVE.get(seed.category, ALTERNATIVE['other'])}"

    def compose(self, seed: Seed, answer: str | None) -> TeacherReply:
        steps = [_split_step(s) for s in self.reasoning(seed)]
        if seed.label in ("harmful", "jailbreak"):
            return TeacherReply(render_parts(steps, self.refusal(seed), SAFE))
        ans = truncate_answer(answer or "", self.max_answer_words)
        if not ans:
            return TeacherReply(error=f"no {self.answers} answer for benign seed {seed.id}")
        return TeacherReply(render_parts(steps, ans, SAFE))

    def _self_answers(self, prompts: list[str]) -> list[str | Exception]:
        from r2d.backends.base import GenParams, get_backend

        params = GenParams(max_new_tokens=self.self_max_new_tokens, temperature=0.0, batch_size=self.batch_size)
        chats = [[{"role": "user", "content": p}] for p in prompts]
        if self._backend_obj is None:
            self._backend_obj = get_backend(self.backend, model=self.model)
        outs = self._backend_obj.generate(chats, params)
        return [RuntimeError(c.error) if c.error else c.text for c in outs]

    async def agenerate(self, seeds: list[Seed]) -> list[TeacherReply]:
        self.calls += len(seeds)  # one teacher "call" per seed (what the cache saves)
        answers: dict[str, str | Exception | None] = {s.id: s.answer for s in seeds}
        if self.answers == "self":
            benign = [s for s in seeds if s.label == "benign"]
            if benign:
                got = await asyncio.to_thread(self._self_answers, [s.prompt for s in benign])
                answers |= {s.id: a for s, a in zip(benign, got)}
        out = []
        for s in seeds:
            a = answers[s.id]
            if isinstance(a, Exception):
                out.append(TeacherReply(error=f"self-answer generation failed: {a}", retryable=True))
            else:
                out.append(self.compose(s, a))
        return out
