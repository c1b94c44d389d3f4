"""From a raw teacher reply to a SwaRD target: split into steps, repair what is safely repairable,
re-tag every step's pivot with a judge.

Splitting: at the teacher's pivots; a reasoning block without pivots is split at blank lines
(paragraphs), or at sentence ends when it is one paragraph.

Repairs (anything else is dropped with a logged reason):
- ``[UN-SAFE]``/``[Unsafe]``/``[ SAFE ]`` spellings (the paper's prompt itself says ``[UN-SAFE]``) ->
  the canonical pivot; other bracketed words (``[Name]`` placeholders) -> ``(Name)``;
- a missing ``</think>`` when the reasoning's last pivot is followed by a pivot-less paragraph: that
  paragraph is the answer;
- a missing final pivot (steps and answer get one from the judge).
Dropped: no reasoning at all, text before ``<think>``, an empty answer, a truncated reply
(``finish_reason == "length"``), an unclosed ``<think>`` with no answer after it.

Re-tagging rule (``retag``), applied to each step and to the answer, given the judge's verdict on
that piece of text and the seed's label:
1. the judge failed or gave no harmfulness decision -> the ROW IS REJECTED (never tagged [SAFE]);
2. judged unsafe -> ``[UNSAFE]`` (an unsafe answer rejects the row: it would teach compliance);
3. judged safe, benign prompt -> ``[SAFE]`` (teacher over-caution is overwritten), except that a teacher's
   ``[RETHINK]`` on a step is kept (a step that hesitates and then reconsiders is deliberation, not a refusal);
4. judged safe, harmful/jailbreak prompt -> the teacher's own pivot is kept (a guard reading a step
   like "this asks for a bomb recipe" sees no harmful content, but the teacher recognised the danger);
   a step without a teacher pivot -> ``[RETHINK]``; the answer -> ``[SAFE]``.
A verdict is "unsafe" when its ``label`` starts with "unsafe" (Llama Guard), or ``jailbroken`` is True, or,
when ``jailbroken`` is None, ``score >= 0.5``
(e.g. the ``pivot`` judge, which reads the teacher's own pivot: the offline identity tagging).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from r2d.pivots import PIVOTS, RETHINK, SAFE, THINK_CLOSE, THINK_OPEN, UNSAFE
from r2d.reasoning import parse, render_parts

_VARIANT = re.compile(r"\[\s*(un-?\s*safe|safe|rethink)\s*\]", re.IGNORECASE)
_CANON = {"safe": SAFE, "unsafe": UNSAFE, "rethink": RETHINK}


@dataclass
class Split:
    """A teacher reply cut into steps: (text, teacher pivot or None), the answer and its pivot."""

    steps: list[tuple[str, str | None]]
    answer: str
    answer_pivot: str | None
    repairs: list[str] = field(default_factory=list)
    pivots_from: str = "teacher"  # "teacher" or "split" (no pivots in the reasoning)


class Dropped(ValueError):
    """The reply cannot be turned into a valid example; the message is the logged reason."""


_BRACKET_WORD = re.compile(r"\[([A-Za-z][A-Za-z_ -]{1,30})\]")


def canonical_pivots(text: str) -> tuple[str, bool]:
    """Pivot spellings -> canonical pivots; any other bracketed word (a ``[Name]`` placeholder in an
    answer) -> ``(Name)`` so it cannot be mistaken for an unknown pivot."""
    new = _VARIANT.sub(lambda m: _CANON[re.sub(r"[\s-]", "", m.group(1).lower())], text)
    new = _BRACKET_WORD.sub(lambda m: m.group(0) if m.group(0) in PIVOTS else f"({m.group(1)})", new)
    return new, new != text


def _sentences(text: str) -> list[str]:
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paras) > 1:
        return paras
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def split_reply(text: str, finish_reason: str | None = None) -> Split:
    """Cut ``text`` into steps and answer, applying the repairs above; raise ``Dropped`` otherwise."""
    if finish_reason == "length":
        raise Dropped("teacher reply truncated (finish_reason=length)")
    repairs: list[str] = []
    text, changed = canonical_pivots(text or "")
    if changed:
        repairs.append("pivot spelling normalised")
    if THINK_OPEN not in text and THINK_CLOSE not in text:
        raise Dropped("no <think> reasoning in the teacher reply")
    if text.split(THINK_OPEN)[0].strip() and THINK_OPEN in text:
        raise Dropped("text before <think>")
    if THINK_CLOSE not in text:
        body = text.split(THINK_OPEN, 1)[1]
        ends = [m.end() for m in re.finditer("|".join(re.escape(p) for p in PIVOTS), body)]
        tail = body[ends[-1]:] if ends else ""
        if not ends or not tail.strip() or "\n" not in tail.rstrip():
            raise Dropped("unclosed <think> and no answer after the reasoning")
        text = f"{THINK_OPEN}{body[:ends[-1]]}\n{THINK_CLOSE}\n\n{tail.strip()}"
        repairs.append("missing </think> inserted before the answer")
    p = parse(text)
    if "repeated <think>" in p.problems or "repeated </think>" in p.problems:
        raise Dropped("repeated think tags")
    if not p.answer.strip():
        raise Dropped("empty answer after </think>")
    steps = [(s.text, s.pivot) for s in p.steps if s.text.strip()]
    if not steps:
        raise Dropped("empty reasoning")
    pivots_from = "teacher"
    if all(piv is None for _, piv in steps):
        steps = [(s, None) for s in _sentences("\n\n".join(t for t, _ in steps))]
        pivots_from = "split"
        repairs.append("no pivots in reasoning: split at paragraphs/sentences")
    elif any(piv is None for _, piv in steps):
        repairs.append("pivot-less step tagged by the judge")
    if p.answer_pivot is None:
        repairs.append("missing final pivot appended")
    # Pivots inside the answer (several answer pivots) are merged: the last one is the answer's.
    return Split(steps, p.answer, p.answer_pivot, repairs, pivots_from)


def verdict_unsafe(v: Any) -> bool | None:
    """True/False from a Verdict; None when the judge failed or decided nothing."""
    if v is None or getattr(v, "error", None):
        return None
    if isinstance(v.label, str) and v.label.lower().startswith("unsafe"):
        return True  # e.g. Llama Guard "unsafe:S9" on a benign prompt (jailbroken needs a harmful behaviour)
    if v.jailbroken is not None:
        return bool(v.jailbroken)
    if v.score is not None:
        return v.score >= 0.5
    return None


def retag(label: str, teacher_pivot: str | None, unsafe: bool, is_answer: bool = False) -> str:
    """The documented mapping (module docstring) for one judged piece of text."""
    if unsafe:
        return UNSAFE
    if is_answer:
        return SAFE
    if label == "benign":
        return RETHINK if teacher_pivot == RETHINK else SAFE
    return teacher_pivot or RETHINK


def judge_split(judge: Any, items: list[tuple[Any, str, Split]]) -> list[str | Exception]:
    """Judge every step and answer of many rows in ONE ``judge.judge`` call; per row, the rendered
    assistant text or a ``Dropped`` error (judge failure / unsafe answer). ``items``: (seed, prompt, split)."""
    from r2d.eval.types import Behavior, JudgeInput

    inputs, owners = [], []
    for r, (seed, prompt, sp) in enumerate(items):
        beh = Behavior(id=seed.id, goal=seed.meta.get("goal", prompt), benchmark="sward",
                       subset="benign" if seed.label == "benign" else "harmful", category=seed.category)
        pieces = sp.steps + [(sp.answer, sp.answer_pivot)]
        for k, (txt, piv) in enumerate(pieces):
            comp = f"{txt} {piv}" if piv else txt
            inputs.append(JudgeInput(behavior=beh, prompt=prompt, completion=comp, answer=txt))
            owners.append((r, k))
    try:
        verdicts = judge.judge(inputs) if inputs else []
        if len(verdicts) != len(inputs):
            raise RuntimeError(f"judge returned {len(verdicts)} verdicts for {len(inputs)} inputs")
    except Exception as e:  # noqa: BLE001 - any judge failure rejects the rows, it is never "safe"
        return [Dropped(f"judge error: {type(e).__name__}: {e}") for _ in items]
    tags: dict[int, list[str | None]] = {r: [] for r in range(len(items))}
    errors: dict[int, str] = {}
    for (r, k), v in zip(owners, verdicts):
        unsafe = verdict_unsafe(v)
        if unsafe is None:
            errors.setdefault(r, f"judge error on piece {k}: {getattr(v, 'error', None) or 'no decision'}")
        tags[r].append(None if unsafe is None else unsafe)
    out: list[str | Exception] = []
    for r, (seed, _, sp) in enumerate(items):
        if r in errors:
            out.append(Dropped(errors[r]))
            continue
        flags = tags[r]
        if flags[-1]:
            out.append(Dropped("answer judged unsafe (harmful compliance)"))
            continue
        steps = [(t, retag(seed.label, piv, bool(f))) for (t, piv), f in zip(sp.steps, flags[:-1])]
        out.append(render_parts(steps, sp.answer, retag(seed.label, sp.answer_pivot, False, is_answer=True)))
    return out


# --- offline pivot tagging of real (pivot-less) reasoning -----------------------------------------
# A transparent cue-phrase + position rule set that follows the paper's meaning of the pivots (App. A.1):
# [UNSAFE] "you already find this sentence unsafe and need to modify your strategy", [RETHINK] "you are
# suspective that things are going unsafe and need to be careful ... try to figure out a safe way",
# [SAFE] "this sentence is safe". Before counting harm cues, policy NAMES ("the Illicit/Criminal Behavior
# policy") and negated clauses ("without violating any policies", "doesn't encourage self-harm") are masked:
# naming a policy or promising not to harm is not recognising harm. Rules, first that applies wins
# (``tag_step`` returns the rule's name):
#   U-decide  the step decides to refuse ("the best course of action is to refuse", "I must decline")
#   U-refuse  it refuses (can't / won't / refuse ...) and names a harm or policy conflict
#   R-alt     it names a (single) harm but turns to a safe alternative (instead, redirect, summary, ...)
#   R-weigh   it names a (single) harm while weighing intent / context / whether ("might be", "intent")
#   U-harm    it names harm, illegality or a policy conflict (a strong cue, or two weaker ones)
#   U-refuse  it refuses with no plan of the reply around it
#   S-ok      it checks the policies and finds no conflict ("none of the policies are violated")
#   R-delib   it hesitates: hmm / wait / tricky / figure out how to respond / careful / whether / intent
#   R-policy  it turns to the policies to make sure the answer stays within them (a careful check)
#   R-alt     it proposes a safe alternative that is not yet part of a reply plan
#   S-plan    it plans the reply (tone, structure, what it will include), even a refusal's
#   S-plain   anything else: restating, benign facts -> [SAFE]
# The cue lists were written from the paper's definitions and then tuned on the ``dev`` hand labels only
# (``r2d.data.tagger_eval``); the ``test`` labels were made before the tagger was run on them.
_NAME = (r"(?:illicit|criminal|self-harm|harassment|hate|discrimination|privacy|personal data|intellectual property|"
         r"misinformation|disinformation|sexual|adult|violence|violent|physical harm|health|extremism|weapons?|"
         r"behaviou?r|activities|activity|content|speech|pii)")
_NAMES = rf"{_NAME}(?:\s*(?:/|,|\bor\b|\band\b)?\s*{_NAME})*"
_POLICY_NAME = re.compile(rf"\b{_NAMES}\s+(?:policy|policies|section|rules?|guidelines?|category)\b|"
                          rf"\b(?:policy|policies|section|ones?|category)\s+(?:on|about|related to|regarding|for|under)\s+"
                          rf"{_NAMES}|\bunder\s+{_NAMES}\b", re.IGNORECASE)
_NEGATED = re.compile(r"(?:\b(?:without|avoid\w*|not|no|none|never|prevent\w*)\b|\w+n't\b)"
                      r"(?:\s+(?!because\b|but\b|since\b|so\b|which\b)[\w'/-]+){0,5}", re.IGNORECASE)
_CUES = {
    "decide": r"\bbest (?:course of action|approach|option|thing to do|response|way)\b(?: \w+){0,3} (?:is|would be) "
              r"to (?:\w+ ){0,2}(?:refus|declin)\w*|\b(?:so|therefore|thus),? I (?:must|should|have to|need to|will) "
              r"(?:definitely |just |politely |simply |firmly )?(?:refus|declin)\w*|\bI (?:must|should) definitely (?:refus|declin)\w*|"
              r"\bthe safest (?:and \w+ )?(?:response|option|approach) is to",
    "refuse": r"\brefus\w*|\bdeclin\w*|\b(?:can(?:no|')t|won't|shouldn't|should not|must not|will not|unable to|"
              r"not going to|not able to)\s+(?:\w+\s+){0,2}(?:help|assist|provid\w*|compl\w*|fulfil\w*|generat\w*|"
              r"creat\w*|writ\w*|shar\w*|giv\w*|engag\w*|support\w*|produc\w*|reproduc\w*|list\w*|offer\w*)",
    "strong_harm": r"\billegal\w*|\bunlawful|\bcriminal\b|\bcrimes?\b|\bred flag|\bno-no\b|\bprohibit\w*|"
                   r"\bdisallow\w*|\bviolat\w*|against (?:the |our |my |these )?(?:safety )?(?:polic\w*|guidelines|rules|law)|"
                   r"\bnot allowed\b|\bunethical\b|\bdangerous\b|\bharmful\b|\bmalicious\b|\binfring\w*|"
                   r"\bdefamat\w*|\bhate speech\b|\bexploit\w*|\bfraud\w*|\bscams?\b|\babus\w*|\bunsafe\b|"
                   r"\bfalls? under\b|\bserious (?:harm|risk|concern)|\binjur\w*|\baccidents?\b|\bdoxx?\w*|"
                   r"\bwithout (?:their |his |her )?consent\b|\bmisinformation\b|\bdisinformation\b|\bfalse (?:claims?|"
                   r"statements?|information)\b|\bhacking\b|\btheft\b|\btax evasion\b",
    "weak_harm": r"\bharm\w*|\brisk\w*|\bsensitive\b|\boffensive\b|\binappropriate\b|\bcopyright\w*|"
                 r"\bstereotyp\w*|\bdiscriminat\w*|\bharass\w*|\bviolen\w*|\bweapon\w*|\bsuicid\w*|\bself-harm\b|"
                 r"\bPII\b|\bprivate\b|\bexplicit\b|\bconcerning\b|\bproblematic\b|\bmisus\w*|"
                 r"\bnegative (?:consequences|outcomes)\b|\bconsequences\b|\bdeceptive\b|\bmislead\w*",
    "alt": r"\binstead\b|\bredirect\w*|\balternativ\w*|\bsummar\w*|\bgeneral (?:information|overview|advice|tips)|"
           r"\beducational\b|\bsafe (?:way|approach|response|alternative)|\bpublic(?:ly available)? (?:resources|sources)|"
           r"\bhistorical context\b|\bofficial (?:sources|channels|resources)\b|\bpoint (?:them|the user) to|"
           r"\bbetter way\b|\blegal (?:alternatives|options|ways|resources|advice)\b",
    "plan": r"\bI'll\b|\bI will\b|\bstructure\b|\bconcise\b|\btone\b|\bempath\w*|\backnowledg\w*|\brespond by\b|"
            r"\bstart by\b|\bresources\b|\bhelpline\w*|\bhotline\w*|\bmake sure (?:the|my) (?:response|reply|answer)|"
            r"putting it all together|\bcraft\w*|\boutline\b|\bpolite\w*|\bfirm\w*\b|\bsupportive\b|\bfriendly\b|"
            r"\b(?:the|my) (?:response|reply|answer) should\b|\bmy (?:response|reply|answer)\b|\bkeep (?:it|the response)\b|"
            r"\bclear(?:ly)?\b|\binformative\b|\bhelpful\b|\bI should (?:also )?(?:mention|include|explain|list|"
            r"address|start|present|suggest)\b",
    "ok": r"\bnone of (?:the|these) (?:policies|suggestions|points)\b|\b(?:no|any other) polic(?:y|ies) (?:\w+ ){0,3}"
          r"(?:violated|relevant|apply)|\bany other polic(?:y|ies)\b[\w, ]{0,60}?\b(?:violated|relevant|apply)\b|"
          r"\bentirely appropriate\b|\b(?:which|that) is compliant\b|\bcompliant with (?:the|all)\b",
    "delib": r"\bwait\b|\bhmm+\b|\bmaybe\b|\bperhaps\b|\bon the other hand\b|\balternatively\b|"
             r"\bmight be (?:in|trying|asking|curious|a|looking|just)\b|\bintent\w*|\bwhether\b|\bcareful\w*|"
             r"\bcautio\w*|\btricky\b|\bambiguous\b|\bunclear\b|\blegitimate (?:reason|purpose|use|need)\w*|\bcurious\b|"
             r"\bfigure out (?:how|the best|what)\b|\bhow to (?:handle|respond|approach)\b|\bconsider (?:whether|if)\b|"
             r"\bthink about (?:whether|the context|the intent|this)\b|\bnot sure\b|\bhard to say\b|\bI wonder\b|"
             r"\bsensitive\b|\bconcerning\b|\bbold claim\b|\bmight not realize\b|\bwithout more context\b",
    "policy": r"\bpolic(?:y|ies)\b|\bguidelines\b",
}
_CUE_RE = {k: re.compile(v, re.IGNORECASE) for k, v in _CUES.items()}
_MASKED = ("strong_harm", "weak_harm")  # counted on the text with policy names and negated clauses masked
TAGGER_VERSION = 2


def mask_for_harm(text: str) -> str:
    return _NEGATED.sub(" ", _POLICY_NAME.sub(" ", text))


def cue_counts(text: str) -> dict[str, int]:
    masked = mask_for_harm(text)
    return {k: len(r.findall(masked if k in _MASKED else text)) for k, r in _CUE_RE.items()}


def tag_step(text: str, index: int = 0, n_steps: int = 1) -> tuple[str, str]:
    """(pivot, rule name) for one pivot-less reasoning step at position ``index`` of ``n_steps`` (rules above)."""
    c = cue_counts(text)
    strong = c["strong_harm"]
    harm = strong >= 1 or c["weak_harm"] >= 2
    planning = c["plan"] >= 2 or (index == n_steps - 1 and n_steps > 1 and c["plan"] >= 1)
    if c["decide"]:
        return UNSAFE, "U-decide"
    if c["ok"]:
        return SAFE, "S-ok"
    if c["refuse"] and harm:
        return UNSAFE, "U-refuse"
    if harm and c["alt"] and strong <= 1:
        return RETHINK, "R-alt"
    if harm and c["delib"] and strong <= 1:
        return RETHINK, "R-weigh"
    if harm:
        return UNSAFE, "U-harm"
    if c["refuse"] and not planning:
        return UNSAFE, "U-refuse"
    if c["delib"]:
        return RETHINK, "R-delib"
    if c["policy"] and re.search(r"\bmake sure\b|\bensure\b|\bcautious\b|\bconsider\b", text, re.IGNORECASE) \
            and not planning:
        return RETHINK, "R-policy"
    if c["alt"] and not planning:
        return RETHINK, "R-alt"
    if planning:
        return SAFE, "S-plan"
    return SAFE, "S-plain"


def split_reasoning(reasoning: str, max_words: int = 90) -> list[str]:
    """Steps of pivot-less reasoning: paragraphs (blank-line separated); a paragraph longer than
    ``max_words`` is cut at sentence boundaries into pieces of at most ``max_words`` (a single longer
    sentence stays whole)."""
    steps: list[str] = []
    for para in re.split(r"\n\s*\n", reasoning.strip()):
        para = re.sub(r"\s+", " ", para).strip()
        if not para:
            continue
        if len(para.split()) <= max_words:
            steps.append(para)
            continue
        cur: list[str] = []
        n = 0
        for s in re.split(r"(?<=[.!?])\s+", para):
            w = len(s.split())
            if cur and n + w > max_words:
                steps.append(" ".join(cur))
                cur, n = [], 0
            cur.append(s)
            n += w
        if cur:
            steps.append(" ".join(cur))
    return steps


def tag_reasoning(steps: list[str]) -> list[tuple[str, str, str]]:
    """(step, pivot, rule) for every step of one trace."""
    return [(s, *tag_step(s, i, len(steps))) for i, s in enumerate(steps)]
