"""What a client sees of a completion under a policy, whole (``present``) or streamed (``StreamFilter``).

The reply has two channels, as in DeepSeek's API and vLLM's reasoning parsers: ``reasoning_content``
(the think block) and ``content`` (the answer). Per policy (the texts come from ``r2d.infer.policies``):

- ``raw``: reasoning and answer as generated, pivots included.
- ``hide-reasoning``: no reasoning; the answer with pivots removed.
- ``drop-unsafe-steps``: each channel through the HarmBench post-filter (``[UNSAFE]`` segments dropped).
- ``refuse-on-unsafe`` / ``pivot-threshold``: if the model flagged ``[UNSAFE]``, the fixed refusal as
  the answer and, as reasoning, only the steps before the first ``[UNSAFE]`` (those the model itself
  tagged ``[SAFE]``/``[RETHINK]``); else as ``raw``.
- any other registered policy: its visible text, split at ``</think>``.

``StreamFilter`` releases text only once it cannot change (and, for the policies without segments, in
pieces of at least 32 characters): a partly arrived R2D token is held back;
under ``hide-reasoning`` nothing is released while the think block is open; under
``drop-unsafe-steps`` text is released a segment at a time, when its pivot has arrived; under the
refusing policies reasoning steps are released when their pivot has arrived and only until the first
``[UNSAFE]``, and the answer only when the whole reply is in, so no answer text of a flagged reply
ever leaves the server. What a stream sends joins up to exactly the whole reply's view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from r2d.backends.base import Completion
from r2d.infer.policies import DropUnsafeSteps, HideReasoning, Policy, RawPolicy, RefuseOnUnsafe, drop_unsafe_segments
from r2d.pivots import PIVOTS, R2D_TOKENS, THINK_CLOSE, THINK_OPEN, UNSAFE, strip_pivots
from r2d.reasoning import parse

_PIVOT_RE = re.compile("|".join(re.escape(p) for p in PIVOTS))
_WS = re.compile(r"\s+")


@dataclass
class View:
    reasoning: str | None
    content: str
    refused: bool = False


def split_think(text: str) -> tuple[str | None, str]:
    """(think body, answer) of a completion; (None, text) when it has no think block. An unclosed
    block is all reasoning; text before ``<think>`` is kept with the reasoning."""
    if THINK_CLOSE in text:
        head, _, answer = text.partition(THINK_CLOSE)
        return head.replace(THINK_OPEN, "").strip(), answer.replace(THINK_CLOSE, "").strip()
    if THINK_OPEN in text:
        return text.replace(THINK_OPEN, "").strip(), ""
    return None, text.strip()


def vetted_prefix(text: str) -> str:
    """``text`` up to the last pivot before the first ``[UNSAFE]``: the steps the model itself passed."""
    head = text.split(UNSAFE, 1)[0]
    ends = [m.end() for m in _PIVOT_RE.finditer(head)]
    return head[:ends[-1]] if ends else ""


def present(policy: Policy, c: Completion) -> View:
    """The two channels the client gets for a successful completion ``c`` under ``policy``."""
    raw = c.full_text
    if isinstance(policy, RefuseOnUnsafe):
        if policy.flagged(c):
            vetted = vetted_prefix(raw)
            reasoning = split_think(vetted)[0] if vetted else None
            return View(reasoning or None, policy.refusal, refused=True)
        return View(*split_think(raw))
    if isinstance(policy, HideReasoning):
        return View(None, policy.apply(c).text)
    if isinstance(policy, DropUnsafeSteps):
        reasoning, answer = split_think(raw)
        return View(drop_unsafe_segments(reasoning) if reasoning else reasoning, drop_unsafe_segments(answer))
    if isinstance(policy, RawPolicy) or type(policy) is Policy:
        return View(*split_think(raw))
    return View(*split_think(policy.apply(c).text))


def policy_changed(c: Completion, view: View) -> bool:
    """Whether the answer the client gets differs from the model's own (pivots and spacing aside)."""
    norm = lambda s: _WS.sub(" ", strip_pivots(s or "")).strip()  # noqa: E731
    return norm(view.content) != norm(parse(c.full_text).answer if THINK_OPEN in c.full_text or THINK_CLOSE in c.full_text
                                      else c.full_text)


def _partial_token(text: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of an R2D token."""
    best = 0
    for tok in R2D_TOKENS:
        for k in range(min(len(tok) - 1, len(text)), best, -1):
            if text.endswith(tok[:k]):
                best = k
                break
    return best


class StreamFilter:
    """Feed the model's text as it arrives; get back (reasoning delta, content delta) to send."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.refusing = isinstance(policy, RefuseOnUnsafe)
        self.by_segment = isinstance(policy, DropUnsafeSteps)
        self.text = ""
        self.sent_reasoning = ""
        self.sent_content = ""
        self.stopped = False  # a refusing policy saw [UNSAFE]: nothing more until the end
        self.diverged = False  # the final view did not extend what was sent (logged by the caller)
        self._evaluated = 0  # text length at the last evaluation

    def _releasable(self) -> str | None:
        text = self.text
        if self.refusing:
            self.stopped = UNSAFE in text
            return vetted_prefix(text)
        if self.by_segment:
            ends = [m.end() for m in _PIVOT_RE.finditer(text)]
            return text[:ends[-1]] if ends else ""
        cut = text[:len(text) - _partial_token(text)]
        if not isinstance(self.policy, RawPolicy) and THINK_CLOSE not in cut:
            head = cut.lstrip()
            if head.startswith(THINK_OPEN) or (head and THINK_OPEN.startswith(head)) or THINK_OPEN in cut:
                return None  # inside the think block: only the final view decides
        return cut

    def _advance(self, view: View) -> tuple[str, str]:
        out = []
        for attr, new in (("sent_reasoning", view.reasoning or ""), ("sent_content", view.content)):
            sent = getattr(self, attr)
            if new.startswith(sent):
                out.append(new[len(sent):])
                setattr(self, attr, new)
            else:
                out.append("")
                self.diverged = self.diverged or not sent.startswith(new)
        return out[0], out[1]

    def feed(self, delta: str) -> tuple[str, str]:
        start = max(0, len(self.text) - 16)  # a pivot may have begun in the previous delta
        self.text += delta
        if self.stopped:
            return "", ""
        if (self.refusing or self.by_segment) and not _PIVOT_RE.search(self.text, start):
            return "", ""  # segment-wise release: nothing new without a new pivot
        if not (self.refusing or self.by_segment):
            # each evaluation reads the whole text: evaluate once enough new text is in (>= 32 chars and
            # >= 1/32 of the text), so a long stream costs O(n), not O(n^2); held text goes out at the end
            if len(self.text) - self._evaluated < max(32, len(self.text) // 32):
                return "", ""
            self._evaluated = len(self.text)
        cut = self._releasable()
        if not cut:
            return "", ""
        view = present(self.policy, Completion(text=cut))
        if self.refusing:  # the answer waits for the whole reply: only vetted reasoning steps go out early
            view.content = self.sent_content
        return self._advance(view)

    def finish(self, c: Completion) -> tuple[str, str, View]:
        """The last deltas from the whole completion ``c`` (its text is what was fed, plus any
        template-opened think block) and its view, which the non-streaming reply would carry."""
        view = present(self.policy, c)
        dr, dc = self._advance(view)
        return dr, dc, view
