"""Erase-and-check (Kumar et al. 2023), suffix mode: the prompt is harmful if it, or any version with
its last 1..``erase_length`` tokens erased, is flagged by a safety checker; harmful prompts are blocked,
the rest answered normally.

Tokens here are whitespace-separated words (backend independent; the original erases the checker
tokenizer's tokens). The checker is any registered judge reading the erased prompt as its text (default
``llama-guard`` with ``role="User"``, i.e. Llama Guard judging the user turn; the R2D paper's JBB runs
used LlamaGuard-7b with erase_length 20). A checker error on a prompt that no other erasure flagged makes
the result an error: a failed check is never taken as "safe".
"""

from __future__ import annotations

from r2d import registry
from r2d.backends.base import Backend, Chat, Completion, GenParams
from r2d.eval.defenses.base import blocked_completion, last_user
from r2d.eval.types import Behavior, JudgeInput


def suffix_erasures(prompt: str, erase_length: int) -> list[str]:
    """The prompt and every version with its last 1..erase_length words erased (at least one word kept)."""
    words = prompt.split()
    out = [prompt]
    for k in range(1, min(erase_length, max(len(words) - 1, 0)) + 1):
        out.append(" ".join(words[:-k]))
    return out


@registry.register("defense", "erase-and-check")
class EraseAndCheck:
    name = "erase-and-check"

    def __init__(self, erase_length: int = 20, checker: str = "llama-guard", checker_params: dict | None = None,
                 mode: str = "suffix") -> None:
        if mode != "suffix":
            raise ValueError(f"erase-and-check: only mode 'suffix' is implemented, got {mode!r}")
        self.erase_length, self.mode = int(erase_length), mode
        self.checker_name = checker
        cp = dict(checker_params or {})
        if checker == "llama-guard":
            cp.setdefault("role", "User")
        self.checker_params = cp
        self.checker = registry.create("judge", checker, **cp)

    def generate(self, backend: Backend, chats: list[Chat], params: GenParams) -> list[Completion]:
        items, owner = [], []
        for i, chat in enumerate(chats):
            for text in suffix_erasures(last_user(chat), self.erase_length):
                b = Behavior(id=f"erase-{i}", goal=text, benchmark="erase-and-check", subset="harmful")
                items.append(JudgeInput(b, text, text, text))
                owner.append(i)
        verdicts = self.checker.judge(items)
        harmful = [False] * len(chats)
        errors: list[list[str]] = [[] for _ in chats]
        checks = [0] * len(chats)
        for i, v in zip(owner, verdicts):
            checks[i] += 1
            if v.error:
                errors[i].append(v.error)
            elif v.jailbroken:
                harmful[i] = True
        keep = [i for i in range(len(chats)) if not harmful[i] and not errors[i]]
        comps = backend.generate([chats[i] for i in keep], params) if keep else []
        out: list[Completion] = []
        for i in range(len(chats)):
            if harmful[i]:
                out.append(blocked_completion("erase-and-check", checks=checks[i]))
            elif errors[i]:
                out.append(Completion(finish_reason="error", error=f"erase-and-check: checker failed: {errors[i][0]}"))
            else:
                out.append(Completion())  # replaced by the model's completion below
        for i, c in zip(keep, comps):
            c.meta = {**c.meta, "erase_and_check_checks": checks[i]}
            out[i] = c
        return out

    def params(self) -> dict:
        return {"name": self.name, "mode": self.mode, "erase_length": self.erase_length, "unit": "whitespace words",
                "checker": self.checker.params()}
