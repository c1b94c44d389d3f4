"""SmoothLLM (Robey et al. 2023): answer N randomly perturbed copies of the prompt and take the
majority vote of a jailbreak check, returning one reply that agrees with the majority.

Perturbation: RandomSwap, q% of the characters of the last user turn replaced by random printable
characters (the JailbreakBench defaults are N=10, q=10; smaller N keeps CPU runs short). The vote's check
is a registered judge (default ``refusal-jbb``, the JBB/SmoothLLM test-prefix list): a copy counts as
jailbroken iff the judge says ``jailbroken`` (a ``no_answer`` copy is not jailbroken). Failed copies are
left out of the vote; if every copy failed the result is an error.

N must be odd, so the vote over N copies has a strict majority, as in the paper (with failed copies left
out a tie can still happen; it counts as not jailbroken and is recorded). The random generator is
seeded once per defense instance: every call draws fresh perturbations from one reproducible stream,
instead of repeating the same perturbation pattern for each batch.
"""

from __future__ import annotations

import random
import string

from r2d import registry
from r2d.backends.base import Backend, Chat, Completion, GenParams
from r2d.eval.defenses.base import last_user, replace_last_user
from r2d.eval.types import Behavior, JudgeInput
from r2d.reasoning import visible_answer

ALPHABET = string.printable


def random_swap(text: str, q: float, rng: random.Random) -> str:
    """Replace ``round(len * q/100)`` distinct character positions with random printable characters."""
    chars = list(text)
    k = int(round(len(chars) * q / 100))
    for i in rng.sample(range(len(chars)), min(k, len(chars))):
        chars[i] = rng.choice(ALPHABET)
    return "".join(chars)


@registry.register("defense", "smoothllm")
class SmoothLLM:
    name = "smoothllm"

    def __init__(self, n: int = 10, q: float = 10.0, checker: str = "refusal-jbb", checker_params: dict | None = None,
                 seed: int = 0) -> None:
        if n < 1 or not 0 <= q <= 100:
            raise ValueError(f"smoothllm: need n >= 1 and 0 <= q <= 100, got n={n}, q={q}")
        if int(n) % 2 == 0:
            raise ValueError(f"smoothllm: n must be odd so the majority vote has no tie (the paper's vote), got n={n}")
        self.n, self.q, self.seed = int(n), float(q), int(seed)
        self.rng = random.Random(self.seed)  # one stream per instance, not reset per call
        self.checker_name, self.checker_params = checker, dict(checker_params or {})
        self.checker = registry.create("judge", checker, **self.checker_params)

    def generate(self, backend: Backend, chats: list[Chat], params: GenParams) -> list[Completion]:
        rng = self.rng
        copies: list[Chat] = []
        for chat in chats:
            user = last_user(chat)
            copies += [replace_last_user(chat, random_swap(user, self.q, rng)) for _ in range(self.n)]
        comps = backend.generate(copies, params)
        harm = Behavior(id="smoothllm", goal="", benchmark="smoothllm", subset="harmful")
        items = [JudgeInput(harm, last_user(ch), c.full_text, visible_answer(c.full_text))
                 for ch, c in zip(copies, comps)]
        verdicts = self.checker.judge(items)
        out = []
        for i in range(len(chats)):
            group = list(zip(comps[i * self.n:(i + 1) * self.n], verdicts[i * self.n:(i + 1) * self.n]))
            ok = [(c, bool(v.jailbroken)) for c, v in group if c.error is None and v.error is None]
            if not ok:
                errs = "; ".join(sorted({c.error or v.error or "" for c, v in group}))
                out.append(Completion(finish_reason="error", error=f"smoothllm: every copy failed ({errs})"))
                continue
            votes = sum(jb for _, jb in ok)
            majority = votes / len(ok) > 0.5
            pick = rng.choice([c for c, jb in ok if jb == majority])
            pick.meta = {**pick.meta, "smoothllm_votes": votes, "smoothllm_copies": len(ok),
                         "smoothllm_tie": votes * 2 == len(ok),
                         "smoothllm_majority_jailbroken": majority}
            out.append(pick)
        return out

    def params(self) -> dict:
        return {"name": self.name, "n": self.n, "q": self.q, "perturbation": "RandomSwap", "seed": self.seed,
                "checker": self.checker.params()}
