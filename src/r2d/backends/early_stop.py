"""Early stopping that a judge cannot notice: stop a sequence once its visible answer has more than
``N`` words (``GenParams.stop_after_answer_words``).

A judge that reads only the start of the answer (the string-match prefix judges: ``refusal``, the
paper's Dic-Judge, whose longest prefix has 7 words, and ``xstest-strmatch`` with ``degenerate: false``;
by default it reads the whole answer for its no-content check) gives the same verdict on
the answer cut after its first ``N`` complete words as on the whole answer, for any ``N`` at least the
longest prefix's word count: a text that starts with a ``k``-word prefix shares its first ``k`` words
with it, and the cut keeps those words whole (it waits for word ``N + 1`` to begin). Judges declare what
they read (``answer_words_read``); the evaluation runner only asks for early stopping where every judge
of the cell and the defense's own checker allow it, under the ``raw`` policy (an answer-final pivot that
a policy acts on would be cut off). What changes: answers, word counts and answer pivots of stopped
samples are truncated (``finish_reason="length"``, ``meta["stopped_after_answer_words"] = N``).
"""

from __future__ import annotations

from typing import Any

from r2d.reasoning import visible_answer


def answer_words(text: str) -> int:
    """Whitespace words of the visible answer (``r2d.reasoning.visible_answer``) of ``text``."""
    return len(visible_answer(text).split())


class AnswerWordStop:
    """Decides, row by row, whether a sequence's answer already has more than ``limit`` words.

    ``prefixes[row]``: text the backend puts in front of the completion (the template's opened
    ``<think>``), so the answer is parsed as the judge will see it. ``stopped`` collects stopped rows."""

    def __init__(self, tokenizer: Any, limit: int, prefixes: list[str], end_ids: set[int]) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"stop_after_answer_words must be an integer >= 1, got {limit!r}")
        self.tokenizer, self.limit, self.prefixes, self.end_ids = tokenizer, limit, prefixes, end_ids
        self.stopped: set[int] = set()

    def check(self, row: int, ids: list[int]) -> bool:
        """Whether row ``row`` (its generated ``ids`` so far) stops now; a row that already ended never does."""
        if any(t in self.end_ids for t in ids):
            return False
        text = self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if answer_words(self.prefixes[row] + text) > self.limit:
            self.stopped.add(row)
            return True
        return False

    def criteria(self, width: int):
        """The same rule as a transformers ``StoppingCriteria`` for ``model.generate`` (prompt width ``width``)."""
        import torch
        from transformers import StoppingCriteria

        outer = self

        class _Criteria(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                done = [row in outer.stopped or outer.check(row, input_ids[row, width:].tolist())
                        for row in range(input_ids.shape[0])]
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        return _Criteria()
