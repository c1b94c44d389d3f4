"""The import graph of ``src/r2d``: cycles (0 expected) and upward imports (a lower pipeline layer
importing a higher one), each with the reason it is allowed.

    python scripts/import_graph.py [--json OUT]

Every ``import r2d...`` / ``from r2d... import`` counts, at module level or inside a function (a lazy
import still couples the modules). Layers follow the pipeline on a shared floor:
floor < backends < data < training < infer < serve, eval < report < cli/quickstart.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS = {"floor": 0, "backends": 1, "data": 2, "training": 3, "infer": 4, "serve": 5, "eval": 5, "report": 6,
          "top": 7}
TOP = {"r2d.cli", "r2d.quickstart", "r2d.testing", "r2d"}
# upward imports that are allowed, with the reason (module -> imported module)
ALLOWED_UP = {
    ("r2d.registry", "*"): "the registry imports each kind's built-in modules by name when that kind is first "
                            "looked up (plugin discovery), never at import time",
    ("r2d.data.decontam", "r2d.eval.benchmarks"): "decontamination checks every registered benchmark; the prompts "
                                                   "come from the eval stage by design (issue 12)",
    ("r2d.data.seeds", "r2d.eval.attacks.templates"): "training templates are the TRAIN side of the eval "
                                                       "template split, defined once next to the attack",
    ("r2d.data.seeds", "r2d.eval.benchmarks"): "seed sets read benchmark files (AdvBench harmful goals) "
                                                "through the one benchmark loader",
    ("r2d.data.build", "r2d.eval.benchmarks"): "the build records benchmark data hashes in its provenance",
    ("r2d.data.tagging", "r2d.eval.types"): "re-tagging steps calls a registered judge; the judge interface's "
                                           "input type (Behavior, JudgeInput) is defined with the judges",
    ("r2d.data.teachers.template", "r2d.eval.judges"): "the template teacher uses the refusal-phrase judge",
}


def layer(mod: str) -> int:
    if mod in TOP:
        return LAYERS["top"]
    parts = mod.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 and parts[1] in LAYERS else 0


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted((SRC / "r2d").rglob("*.py")):
        rel = p.relative_to(SRC).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = p
    return out


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name and t.startswith("r2d"):
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    g = {m: imports(p, m, known) for m, p in mods.items()}
    # ``import r2d.x.y`` also runs r2d.x/__init__: a package __init__ is not an edge target we count
    return {m: {t for t in ts if t != "r2d"} for m, ts in g.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index:
            visit(v)
    return out


def upward(g: dict[str, set[str]]) -> list[dict]:
    out = []
    for m, ts in sorted(g.items()):
        for t in sorted(ts):
            if layer(t) > layer(m) and not m.startswith(t + "."):
                reason = ALLOWED_UP.get((m, t)) or ALLOWED_UP.get((m, "*"))
                out.append({"module": m, "imports": t, "reason": reason})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", help="write the result as JSON here")
    a = ap.parse_args(argv)
    g = graph()
    cyc, up = cycles(g), upward(g)
    print(f"modules: {len(g)}  edges: {sum(len(v) for v in g.values())}  cycles: {len(cyc)}")
    for c in cyc:
        print("  cycle: " + " <-> ".join(c))
    print(f"upward imports: {len(up)} ({sum(1 for u in up if not u['reason'])} without a reason)")
    for u in up:
        print(f"  {u['module']} -> {u['imports']}: {u['reason'] or 'NO REASON'}")
    if a.json:
        Path(a.json).write_text(json.dumps({"cycles": cyc, "upward": up}, indent=2))
    return 1 if cyc or any(not u["reason"] for u in up) else 0


if __name__ == "__main__":
    sys.exit(main())
