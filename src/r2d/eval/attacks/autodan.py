"""AutoDAN (Liu et al. 2024), HarmBench-style genetic search without an LLM mutator.

Population: ``population`` prompts sampled from the 128 AutoDAN references
(``templates/autodan_references.json``; ``[PROMPT]`` -> the request, ``ChatGPT``/``ModelKeeper`` ->
``model_display``/``developer`` when given). Fitness: the target model's mean per-token loss on the
behaviour's target string. Each generation keeps the elites, picks parents by a softmax over
``-loss``, crosses them over sentence by sentence and mutates words by synonym swaps from a small
built-in table. The best prompt and its loss trajectory (best loss per generation) are recorded; given the
run directory's ``SearchCache`` a behaviour evolved before under the same settings is reused
(``r2d.eval.attacks.searches``).
"""

from __future__ import annotations

import json
import math
import random
import re

from r2d.backends.base import Backend
from r2d.eval.attacks.base import OptimizingAttack, make_case, request_text, target_text, user
from r2d.eval.attacks.searches import SearchCache
from r2d.eval.attacks.whitebox import answer_target, model_and_tokenizer, target_losses
from r2d.eval.types import Behavior, TestCase
from r2d.paths import data_file
from r2d.provenance import sha256_file
from r2d.registry import register

REFERENCES = "templates/autodan_references.json"
SEARCH_VERSION = 1  # bump when a change to the search changes its results (stored searches are then redone)
SYNONYMS: dict[str, list[str]] = {
    "ignore": ["disregard", "forget", "overlook"], "instructions": ["directions", "guidelines", "orders"],
    "act": ["behave", "perform", "operate"], "enabled": ["activated", "switched on", "turned on"],
    "policies": ["rules", "guidelines", "regulations"], "respond": ["reply", "answer"],
    "answer": ["reply", "response"], "generate": ["produce", "create", "write"], "always": ["invariably", "constantly"],
    "never": ["not ever", "at no time"], "must": ["should", "have to"], "content": ["material", "text"],
    "normal": ["regular", "standard", "usual"], "response": ["reply", "answer"], "responses": ["replies", "answers"],
    "pretend": ["imagine", "simulate"], "opinion": ["view", "stance"], "free": ["unrestricted", "unconstrained"],
    "important": ["crucial", "essential"], "create": ["produce", "make", "build"], "people": ["humans", "individuals"],
    "use": ["employ", "utilize"], "simulate": ["emulate", "imitate"], "remember": ["recall", "keep in mind"],
    "good": ["great", "fine"], "make": ["produce", "create"], "developer": ["creator", "engineer"],
    "mode": ["setting", "state"], "tell": ["inform", "say to"], "stop": ["cease", "halt"],
    "immediately": ["at once", "right away"], "human": ["person", "individual"], "unique": ["distinctive", "singular"],
}
_SENT = re.compile(r"(?<=[.!?])\s+")


def crossover(a: str, b: str, rng: random.Random) -> str:
    """Child of two prompts: each sentence position takes the sentence of a random parent."""
    sa, sb = _SENT.split(a), _SENT.split(b)
    n = max(len(sa), len(sb))
    child = []
    for i in range(n):
        pick = sa if (rng.random() < 0.5 or i >= len(sb)) and i < len(sa) else sb
        child.append(pick[i])
    return " ".join(child)


def mutate(text: str, rng: random.Random, rate: float) -> str:
    """Replace each word that has synonyms, with probability ``rate``, keeping its capitalisation."""
    def swap(m: re.Match) -> str:
        w = m.group(0)
        syn = SYNONYMS.get(w.lower())
        if not syn or rng.random() >= rate:
            return w
        s = rng.choice(syn)
        return s.capitalize() if w[0].isupper() else s
    return re.sub(r"[A-Za-z]+", swap, text)


@register("attack", "autodan")
class AutoDAN(OptimizingAttack):
    name = "autodan"
    caches_searches = True

    def __init__(self, steps: int = 5, population: int = 8, elite_frac: float = 0.25, crossover_rate: float = 0.5,
                 mutation_rate: float = 0.05, model_display: str | None = None, developer: str | None = None,
                 batch_size: int = 4, transfer: Backend | str | None = None, seed: int = 0) -> None:
        super().__init__(transfer, seed)
        if population < 2 or steps < 0:
            raise ValueError("attack autodan: population must be >= 2 and steps >= 0")
        self.steps, self.population, self.elite_frac = steps, population, elite_frac
        self.crossover_rate, self.mutation_rate = crossover_rate, mutation_rate
        self.model_display, self.developer, self.batch_size = model_display, developer, batch_size
        self.mode: str | None = None
        self._sha: str | None = None

    def references(self) -> list[str]:
        path = data_file(REFERENCES)
        self._sha = sha256_file(path)
        refs = json.loads(path.read_text(encoding="utf-8"))["references"]
        if self.model_display:
            refs = [r.replace("ChatGPT", self.model_display) for r in refs]
        if self.developer:
            refs = [r.replace("ModelKeeper", self.developer) for r in refs]
        return refs

    def _evolve(self, backend: Backend, b: Behavior, refs: list[str], rng: random.Random) -> dict:
        req = request_text(b)
        tgt = answer_target(model_and_tokenizer(backend)[1], target_text(b))  # the answer after </think>
        pop = rng.sample(refs, min(self.population, len(refs)))
        fill = lambda p: p.replace("[PROMPT]", req) if "[PROMPT]" in p else f"{p}\n\n{req}"  # noqa: E731
        score = lambda ps: target_losses(backend, [user(fill(p)) for p in ps], [tgt] * len(ps),  # noqa: E731
                                          batch_size=self.batch_size)
        losses = score(pop)
        best = min(range(len(pop)), key=losses.__getitem__)
        best_prompt, best_loss, traj = pop[best], losses[best], [losses[best]]
        n_elite = max(1, int(self.elite_frac * len(pop)))
        for _ in range(self.steps):
            order = sorted(range(len(pop)), key=losses.__getitem__)
            elites = [pop[i] for i in order[:n_elite]]
            weights = [math.exp(-(x - min(losses))) for x in losses]
            children = []
            while len(children) < len(pop) - n_elite:
                p1, p2 = rng.choices(pop, weights=weights, k=2)
                child = crossover(p1, p2, rng) if rng.random() < self.crossover_rate else p1
                children.append(mutate(child, rng, self.mutation_rate))
            child_losses = score(children)
            pop, losses = elites + children, [losses[i] for i in order[:n_elite]] + child_losses
            i = min(range(len(pop)), key=losses.__getitem__)
            if losses[i] < best_loss:
                best_prompt, best_loss = pop[i], losses[i]
            traj.append(best_loss)
        return {"prompt": fill(best_prompt), "loss": best_loss, "losses": traj}

    def search_key(self, b: Behavior) -> dict:
        """Everything besides the target model that changes one behaviour's search (``r2d.eval.attacks.searches``)."""
        return {"attack": self.name, "version": SEARCH_VERSION, "steps": self.steps, "population": self.population,
                "elite_frac": self.elite_frac, "crossover_rate": self.crossover_rate,
                "mutation_rate": self.mutation_rate, "model_display": self.model_display, "developer": self.developer,
                "batch_size": self.batch_size, "seed": self.seed, "behavior_id": b.id, "request": request_text(b),
                "target": target_text(b), "references_sha256": self._sha}

    def generate(self, behaviors: list[Behavior], target: Backend | None = None,
                 searches: SearchCache | None = None) -> list[TestCase]:
        """One case per behaviour; with ``searches`` a behaviour evolved before under the same key is reused."""
        if self.transfer is None and target is None:
            self.search_target(target)  # raises: needs a target or a transfer model
        self.mode = "transfer" if self.transfer is not None else "adaptive"
        refs = self.references()
        cache = self.search_cache(searches)
        out = []
        backend = None
        for b in behaviors:
            key = self.search_key(b)
            r = cache.get(key) if cache is not None else None
            how = "reused"
            if r is None:
                if backend is None:
                    backend, self.mode = self.search_target(target)
                r = self._evolve(backend, b, refs, random.Random(f"{self.seed}:{b.id}"))
                r["loss_target"] = answer_target(model_and_tokenizer(backend)[1], target_text(b))
                if cache is not None:
                    cache.put(key, r, attack=self.name, behavior_id=b.id, mode=self.mode)
                how = "searched"
            out.append(make_case(b, self.name, user(r["prompt"]), mode=self.mode, best_loss=r["loss"],
                                 losses=r["losses"], target_string=target_text(b), loss_target=r["loss_target"],
                                 search=how))
        return out

    def params(self) -> dict:
        return {"attack": self.name, "steps": self.steps, "population": self.population,
                "elite_frac": self.elite_frac, "crossover_rate": self.crossover_rate,
                "mutation_rate": self.mutation_rate, "model_display": self.model_display,
                "developer": self.developer, "mode": self.mode, "transfer": self.transfer_name(),
                "seed": self.seed, "references_sha256": self._sha}
