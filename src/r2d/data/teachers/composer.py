"""Reasoning for BENIGN prompts with the shape of a real reasoning model's trace (several steps, each tens of
words, ending in ``[SAFE]``), written offline from the prompt itself. NOT a reasoning model.

Why: STAR-1 has only harmful prompts, where R1 deliberates for several paragraphs and then refuses. A student
that sees long deliberation only before refusals learns "long deliberation -> refuse". The composer gives the
benign half reasoning of comparable length that ends in help, including a step that weighs an alarming word
(``EDGY_WORDS``) and dismisses it in the prompt's own context.

Each trace is built from the prompt's content: step 1 restates the task (its first sentence, in the user's
words, after one of the openers R1 itself uses) and names the detected domain; step 2 weighs the alarming word with its context window, or asks
whether the answer could be misused and says why not, naming the topic; step 3 plans the answer from the
answer's own shape (a list, a short fact, a rewrite, code, a longer explanation), quoting how it begins;
an optional step 4 settles it. Every step has several phrasings, picked by a hash of the seed id and a salt
(deterministic). All steps end in ``[SAFE]`` (with ``shared_forks``, a hesitating first step ends in ``[RETHINK]``).
"""

from __future__ import annotations

import hashlib
import re

from r2d.data.seeds import EDGY_WORDS, Seed
from r2d.pivots import RETHINK, SAFE, UNSAFE, neutralize

DOMAINS: list[tuple[str, str]] = [
    ("programming", r"\b(?:code|program|python|java|sql|function|algorithm|script|html|css|regex|compile|bug|api|linux|"
                    r"process|database|software)\b"),
    ("maths", r"\b(?:calculat\w*|equation|sum|multiply|divide|percent\w*|number|math\w*|solve|area|average|fraction)\b"),
    ("cooking", r"\b(?:recipe|cook\w*|bake|baking|dish|ingredient\w*|meal|food|kitchen|sauce|dessert)\b"),
    ("health and fitness", r"\b(?:health\w*|exercise|diet|sleep|doctor|symptom\w*|fitness|workout|medical|disease)\b"),
    ("history", r"\b(?:history|historical|war|century|ancient|empire|revolution|president|king|queen)\b"),
    ("science", r"\b(?:science|scientific|physics|chemistry|biology|cell|atom|energy|planet|climate|evolution|species)\b"),
    ("language and writing", r"\b(?:sentence|grammar|word|synonym|rewrite|paraphrase|poem|essay|story|headline|"
                             r"translate|tweet|letter|email|slogan|title|adjective|verb|noun|article|blog|speech|joke|satire|summar\w*)\b"),
    ("business and money", r"\b(?:business|market\w*|company|customer|sales|budget|invest\w*|finance|money|price|"
                           r"product|brand|startup)\b"),
    ("games and sport", r"\b(?:game|games|chess|football|soccer|player|team|sport\w*|match)\b"),
    ("travel and places", r"\b(?:travel|city|country|countries|trip|vacation|visit|capital)\b"),
]

# The opening step uses the openers R1 uses in STAR-1 ("Okay, so the user is asking ...", "Okay, so I need to ...").
# Openers of its own would leak the label into the first tokens: a student then picks "benign reasoning" or
# "harmful reasoning" from the prompt's surface form before any deliberation (measured: a 2-epoch student that
# opened with the composer's own phrasings on 10 of 12 direct harmful dev goals and helped; docs/configs.md).
_RESTATE = [
    "Okay, so the user is asking me to {task}. This is a {domain} request, so the first thing is to be sure what is "
    "wanted.",
    "Okay, so the user wants me to {task}. It reads as a {domain} task, and I want to get the details right.",
    "Okay, so I need to {task}. That is a {domain} question; let me think about what a good answer needs.",
    "Okay, I need to figure out how to {task}. I would file this under {domain}, and the goal is a correct, useful "
    "reply.",
]
_EDGY = [
    'The word "{w}" stands out, so I should check whether it points to harm. In context ("{ctx}") it is used in an '
    'everyday sense, and nothing here would help anyone hurt people or break the law.',
    'One word, "{w}", could sound alarming on its own. Reading it in place ("{ctx}"), it is ordinary {domain} '
    'language, not a request to cause damage, so there is no reason to hold back.',
    'Does "{w}" make this risky? Looking at how it is used ("{ctx}"), it is figurative or technical, the intent is '
    'plainly benign, and an answer gives no one a way to cause harm.',
    'The request mentions "{w}", which in other settings could signal danger. Here ("{ctx}") it is part of a normal '
    '{domain} question; refusing because of one word would only be unhelpful.',
]
_MISUSE = [
    "Could an answer here be misused? The subject (\"{topic}\") is ordinary {domain} knowledge; sharing it helps the "
    "user and puts no one at risk.",
    "Is there anything sensitive in this? \"{topic}\" is everyday {domain} material with no dangerous use, so "
    "I can answer it fully.",
    "Nothing in the request asks for harm, private data or deception: it is about \"{topic}\", and a clear answer is "
    "simply useful.",
    "Before answering I check the request for risk. It only concerns \"{topic}\"; there is no harmful intent and no "
    "misuse to worry about.",
]
_PLAN = {
    "list": ["A short list will work best. I will give the main points in order, starting with \"{start}\".",
             "I will answer with a few clear points, one per line, beginning with \"{start}\"."],
    "short": ["The answer is short and factual: \"{start}\". I will state it plainly.",
              "This needs only a brief, direct reply, namely \"{start}\"."],
    "rewrite": ["I will write the new version directly, keeping the meaning, starting \"{start}\".",
                "The best reply is the rewritten text itself, which begins \"{start}\"."],
    "code": ["I will give the code with a line of explanation, starting with \"{start}\".",
             "A small, correct piece of code answers this; it starts \"{start}\"."],
    "creative": ["I will write the piece itself, in a fitting voice, opening with \"{start}\".",
                 "The reply should simply be the requested text; it can begin \"{start}\"."],
    "explain": ["I will explain it in a few sentences, opening with \"{start}\" and then adding the key details.",
                "A compact explanation is right here. I will begin with \"{start}\" and keep it focused."],
}
_CLOSE = [
    "Nothing here calls for caution, so I will help fully.",
    "This is safe to answer, and being thorough is the helpful choice.",
    "So the request is benign and I can give a complete answer.",
]


def _pick(options: list[str], seed_id: str, salt: str) -> str:
    h = int(hashlib.sha256(f"{salt}:{seed_id}".encode()).hexdigest(), 16)
    return options[h % len(options)]


def detect_domain(text: str) -> str:
    low = text.lower()
    for name, pat in DOMAINS:
        if re.search(pat, low):
            return name
    return "general-knowledge"


def _words(text: str, n: int) -> str:
    w = text.split()
    return " ".join(w[:n]) + (" ..." if len(w) > n else "")


def task_phrase(prompt: str, max_words: int = 22) -> str:
    """The prompt's first sentence as a task ("Give three tips" -> "give three tips"), question marks kept off."""
    first = re.split(r"(?<=[.!?])\s+|\n", prompt.strip())[0].strip().rstrip(".!?:")
    if not first:
        first = prompt.strip()
    if re.match(r"^(?:what|who|when|where|why|how|which|is|are|can|do|does|should|could|would)\b", first, re.I):
        return f'answer the question "{_words(first, max_words)}"'
    else:
        first = first[0].lower() + first[1:]
    return _words(first, max_words)


_LEAD = {"what", "who", "when", "where", "why", "how", "which", "is", "are", "can", "do", "does", "should", "could",
         "would", "give", "write", "describe", "explain", "list", "make", "create", "generate", "find", "tell", "name",
         "me", "please", "you", "i", "identify", "suggest", "provide", "compose", "design", "come", "up", "with"}


def topic_of(prompt: str, max_words: int = 8) -> str:
    """The first sentence without its leading question/imperative words, at most ``max_words`` words."""
    first = re.split(r"(?<=[.!?])\s+|\n", prompt.strip())[0].strip().rstrip(".!?:")
    words = first.split()
    while words and words[0].lower().strip(",") in _LEAD:
        words = words[1:]
    return _words(" ".join(words), max_words).replace('"', "'") or "this subject"


def answer_shape(prompt: str, answer: str) -> str:
    if re.search(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+", answer) or answer.count(",") >= 4:
        return "list"
    if re.search(r"\b(?:code|function|program|script|sql|regex)\b", prompt, re.I) and re.search(r"[(){};=]", answer):
        return "code"
    if re.search(r"\b(?:rewrite|rephrase|paraphrase|edit|translate|correct|convert)\b", prompt, re.I):
        return "rewrite"
    if re.search(r"\b(?:write|compose)\b.*\b(?:story|poem|article|essay|letter|speech|song|joke|tweet|post|dialogue)\b",
                 prompt, re.I):
        return "creative"
    return "short" if len(answer.split()) < 15 else "explain"


def _coin(seed_id: str, salt: str) -> bool:
    """A deterministic coin flip per seed and salt."""
    return _pick([False, True], seed_id, salt)


def _in_context(prompt: str, m: re.Match) -> str:
    """The matched word with up to four words either side, as it stands in the prompt."""
    return " ".join(prompt[:m.start()].split()[-4:] + [m.group(0)] + prompt[m.end():].split()[:4]).strip(" ,.;:")


def _answer_start(answer: str) -> str:
    return _words(re.sub(r"\s+", " ", answer).strip(), 6).replace('"', "'")


def benign_reasoning(seed: Seed, answer: str, max_steps: int | None = None) -> list[str]:
    """3-4 step texts (without pivots) for a benign seed and its (already shortened) answer; ``max_steps``
    (>= 3) drops the closing step, as traces are shortened to the same number of steps."""
    prompt = seed.prompt
    domain = detect_domain(prompt)
    steps = [_pick(_RESTATE, seed.id, "restate").format(task=task_phrase(prompt), domain=domain)]
    m = EDGY_WORDS.search(prompt)
    if m:
        steps.append(_pick(_EDGY, seed.id, "edgy").format(w=m.group(0).lower(), ctx=_in_context(prompt, m), domain=domain))
    else:
        steps.append(_pick(_MISUSE, seed.id, "misuse").format(topic=topic_of(prompt), domain=domain))
    shape = answer_shape(prompt, answer)
    steps.append(_pick(_PLAN[shape], seed.id, "plan").format(start=_answer_start(answer)))
    if _coin(seed.id, "close") and (not max_steps or max_steps > 3):
        steps.append(_pick(_CLOSE, seed.id, "close"))
    return [neutralize(s) for s in steps]


# ``shared_forks`` (off by default) closes the two places where a student trained on the default mix picked "harmful"
# or "benign" reasoning from one token, before any deliberation (measured on the main job's evaluation: each of its 7
# JBB-benign refusals opened with [RETHINK], which no benign row had, or began its second step with "First, I should",
# as STAR-1's "First, I need to consider the policies." does): the weighing step opens with STAR-1's own policy
# openers, and a prompt with an alarming word hesitates in its first step and tags it [RETHINK] (the paper's "suspect
# things may go unsafe", dismissed by the next step), on a coin per seed.
_POLICY_OPENER = ["First, I need to consider the policies.", "First, I should consider the policies.",
                  "Looking at the policies, I need to check whether anything here is a problem."]


def benign_steps(seed: Seed, answer: str, max_steps: int | None = None,
                 shared_forks: bool = False) -> list[tuple[str, str]]:
    """(step, pivot) pairs of ``benign_reasoning``, all [SAFE]; ``shared_forks``: see ``_POLICY_OPENER``."""
    texts = benign_reasoning(seed, answer, max_steps)
    pivots = [SAFE] * len(texts)
    if shared_forks:
        texts[1] = neutralize(f"{_pick(_POLICY_OPENER, seed.id, 'policy')} {texts[1]}")
        if EDGY_WORDS.search(seed.prompt) and _coin(seed.id, "hesitate"):
            texts[0] = neutralize(f"{texts[0]} {_pick(_HESITATE, seed.id, 'hesitate')}")
            pivots[0] = RETHINK
    return list(zip(texts, pivots))


# --- harmful contrast seeds (``contrast-harmful``): the minimal-pair counterparts of the benign contrast seeds ---
# Same opener and the same "weigh the alarming word" step as a benign trace, so the two can only be told apart by
# what the word means in place; the step concludes harm with the seed's own hand-written reason (``meta.why``).
_HESITATE = ["Hmm, the wording needs a careful look before I answer.",
             "Hmm, I should read this closely before deciding anything.",
             "Wait, this could mean something serious, so I will not rush it."]
_EDGY_HARM = [
    'The word "{w}" stands out, so I should check whether it points to harm. In context ("{ctx}") it does: {why}.',
    'One word, "{w}", could be harmless in another setting. Reading it in place ("{ctx}"), it is not figurative: '
    '{why}.',
    'Does "{w}" make this risky? Looking at how it is used ("{ctx}"), yes: {why}.',
    'The request mentions "{w}". Here ("{ctx}") it is not a game, a program or a figure of speech: {why}.',
]
_MISUSE_HARM = [
    'Could an answer here be misused? The subject ("{topic}") is not ordinary {domain} material: {why}.',
    'Is there anything sensitive in this? Yes. "{topic}" is the problem: {why}.',
    'Before answering I check the request for risk. It concerns "{topic}", and {why}.',
]
_PLAN_HARM = [
    'So I should not help with this. I will decline briefly and point to something useful instead: "{start}".',
    'Helping would put someone at risk, so I will say no plainly and offer a safer direction, starting "{start}".',
    'The right reply is a short refusal with a constructive alternative; it can begin "{start}".',
]


def harmful_contrast_steps(seed: Seed, answer: str) -> list[tuple[str, str]]:
    """Three (step, pivot) pairs for a harmful contrast seed: the restatement ([SAFE], or [RETHINK] with a
    hesitation, by a hash of the seed id), the weighing step that finds the harm ([UNSAFE], built on
    ``seed.meta["why"]``), the plan to decline ([SAFE])."""
    prompt, why = seed.prompt, seed.meta["why"].rstrip(".")
    domain = detect_domain(prompt)
    first = _pick(_RESTATE, seed.id, "restate").format(task=task_phrase(prompt), domain=domain)
    steps = [(f"{first} {_pick(_HESITATE, seed.id, 'hesitate')}", RETHINK) if _coin(seed.id, "hesitate") else (first, SAFE)]
    m = EDGY_WORDS.search(prompt)
    if m:
        weigh = _pick(_EDGY_HARM, seed.id, "edgy").format(w=m.group(0).lower(), ctx=_in_context(prompt, m), why=why)
    else:
        weigh = _pick(_MISUSE_HARM, seed.id, "misuse").format(topic=topic_of(prompt), domain=domain, why=why)
    plan = _pick(_PLAN_HARM, seed.id, "plan").format(start=_answer_start(answer))
    return [(neutralize(t), p) for t, p in steps + [(weigh, UNSAFE), (plan, SAFE)]]
