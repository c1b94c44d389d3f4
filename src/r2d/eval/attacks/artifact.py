"""JailbreakBench transfer artifacts: the jailbreak prompts an attack found against a source model.

Files: ``jbb/artifacts/<method>/<attack_type>/<source_model>.json`` (``{"parameters", "jailbreaks":
[{"index", "goal", "prompt", ...}]}``). Behaviours are matched by JBB index (``meta["index"]`` of a JBB
behaviour) or else by goal text. A null prompt means the attack found no jailbreak for that behaviour
(18 of the 100 PAIR/vicuna entries): such behaviours get NO test case (sending the plain request instead
would count a direct attack as PAIR's), a count is printed, and ``params()`` records ``n_null_artifact``
and the behaviour ids (``null_artifact_behaviors``) in the run's provenance, so the ASR's denominator
is the behaviours the attack has a prompt for.
"""

from __future__ import annotations

import json
import sys

from r2d.backends.base import Backend
from r2d.eval.attacks.base import make_case, user
from r2d.eval.types import Behavior, TestCase
from r2d.paths import data_file
from r2d.provenance import sha256_file
from r2d.registry import register

METHOD_DIRS = {"PAIR": "black_box", "GCG": "white_box", "JBC": "manual", "prompt_with_random_search": "black_box",
               "DSN": "white_box"}
ARTIFACTS_URL = "https://raw.githubusercontent.com/JailbreakBench/artifacts/main/attack-artifacts"


@register("attack", "artifact")
class ArtifactAttack:
    name = "artifact"

    def __init__(self, method: str = "PAIR", source_model: str = "vicuna-13b-v1.5") -> None:
        if method not in METHOD_DIRS:
            raise ValueError(f"attack artifact: unknown method {method!r}; choose from {', '.join(METHOD_DIRS)}")
        self.method, self.source_model = method, source_model
        self.rel = f"jbb/artifacts/{method}/{METHOD_DIRS[method]}/{source_model}.json"
        self._sha: str | None = None
        self._params: dict = {}
        self.null_behaviors: list[str] = []

    def load(self) -> list[dict]:
        path = data_file(self.rel, url=f"{ARTIFACTS_URL}/{self.rel.removeprefix('jbb/artifacts/')}")
        self._sha = sha256_file(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        if "jailbreaks" not in data:
            raise ValueError(f"{path}: no 'jailbreaks' list (not a JBB artifact file)")
        self._params = data.get("parameters", {})
        return data["jailbreaks"]

    def generate(self, behaviors: list[Behavior], target: Backend | None = None) -> list[TestCase]:
        entries = self.load()
        by_index = {int(e["index"]): e for e in entries}
        by_goal = {e["goal"].strip(): e for e in entries}
        out, null = [], []
        for b in behaviors:
            e = by_index.get(b.meta["index"]) if b.benchmark == "jbb" and b.subset == "harmful" else None
            e = e or by_goal.get(b.goal.strip())
            if e is None:
                raise ValueError(f"attack artifact: behaviour {b.id} has no entry in {self.rel} "
                                 f"(artifacts cover the 100 JBB harmful behaviours)")
            prompt = e.get("prompt")
            if not prompt:
                null.append(b.id)
                continue
            out.append(make_case(b, self.name, user(prompt), variant=f"{self.method}/{self.source_model}",
                                 mode="transfer", method=self.method, source_model=self.source_model,
                                 artifact_index=int(e["index"]), source_jailbroken=e.get("jailbroken")))
        if null and null != self.null_behaviors:
            print(f"r2d eval: artifact {self.method}/{self.source_model}: {len(null)} of {len(behaviors)} behaviours "
                  f"have a null artifact (no jailbreak found by the attack); left out of this attack's cells",
                  file=sys.stderr, flush=True)
        self.null_behaviors = null
        return out

    def params(self) -> dict:
        return {"attack": self.name, "method": self.method, "source_model": self.source_model, "file": self.rel,
                "sha256": self._sha, "artifact_parameters": self._params,
                "n_null_artifact": len(self.null_behaviors), "null_artifact_behaviors": list(self.null_behaviors)}
