"""Judges: decide, per (prompt, completion), whether a reply is a jailbreak, a refusal, a class label or a score.

Importing this package registers every built-in judge (``r2d.registry.names("judge")``).
"""

from r2d.eval.judges import default, llm, pivot, refusal  # noqa: F401  (registration side effects)
from r2d.eval.judges.base import JudgeBase, judged_text

__all__ = ["JudgeBase", "judged_text"]
