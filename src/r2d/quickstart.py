"""``r2d quickstart``: the main job, orchestration only.

    data build -> train (R2D, --no-cpo, --strip-pivots, --no-reasoning) -> select-policy (R2D's pivot
    policy, chosen on a dev set) -> eval (base, baselines, R2D variants, R2D under the chosen policy) -> report

Each stage is the ordinary ``r2d`` command (so every stage can be rerun or swapped by hand), driven by
the YAML files in ``configs/quickstart/``. A finished stage leaves ``OUTPUT/stages/<stage>.json`` (its
command, seconds, time and a fingerprint of command + config) and is skipped on a rerun with the same
fingerprint (a changed config is an error, never a silent reuse); an unfinished one resumes, since every
stage command resumes by itself. ``--smoke`` runs the same pipeline on a tiny slice (the test suite does).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import yaml


def _configs_dir() -> Path:
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (base / "configs" / "quickstart" / "quickstart.yaml").is_file():
            return base / "configs" / "quickstart"
    raise FileNotFoundError("configs/quickstart/quickstart.yaml not found (run from the r2d checkout)")


def _fill(value, out: Path):
    """Substitute ``{output}`` in every string of a nested config."""
    if isinstance(value, str):
        return value.replace("{output}", str(out))
    if isinstance(value, list):
        return [_fill(v, out) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, out) for k, v in value.items()}
    return value


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _smoke_eval(cfg: dict, smoke: dict) -> dict:
    """Shrink an eval grid for --smoke: fewer behaviours, cheaper defenses and attacks."""
    if not smoke:
        return cfg
    cfg = _merge(cfg, smoke.get("eval", {}))
    limit = smoke.get("eval_bench", {}).get("limit")
    dparams, aparams = smoke.get("eval_defense_params", {}), smoke.get("eval_attack_params", {})
    cfg["defenses"] = [_merge(d, dparams.get(d["name"], {})) if isinstance(d, dict) else d for d in cfg["defenses"]]
    for b in cfg["benchmarks"]:
        if limit:
            b["limit"] = min(b.get("limit") or limit, limit)
        b["attacks"] = [_merge(a, aparams.get(a["name"], {})) if isinstance(a, dict) else a for a in b["attacks"]]
    return cfg


SELECTED = "{selected}"  # eval.yaml: a model whose policy is the one select-policy chose on the dev set


def select_policy(st: "Stages", qs: dict, smoke: dict, out: Path, train_data: Path, eval_cfg: dict) -> list:
    """Run the select-policy stage on the model named in quickstart.yaml (dev set only, the eval's
    generation settings) and put its choice into every eval model entry with ``policy: "{selected}"``."""
    sel = _merge(qs.get("select_policy", {}), smoke.get("select_policy", {}))
    choice_file = out / "policy_choice.json"
    argv = ["select-policy", "--model", str(out / "models" / sel.get("model", "r2d")), "--train-data",
            str(train_data), "--output", str(choice_file), "--max-new-tokens", str(eval_cfg["max_new_tokens"]),
            "--batch-size", str(eval_cfg.get("batch_size", 32)), *[str(a) for a in sel.get("args", [])]]
    st.run("select-policy", argv, inputs=(train_data, out / "models" / sel.get("model", "r2d")))
    chosen = json.loads(choice_file.read_text())["policy"]
    return [{**m, "policy": dict(chosen)} if isinstance(m, dict) and m.get("policy") == SELECTED else m
            for m in eval_cfg["models"]]


class Stages:
    def __init__(self, out: Path) -> None:
        self.dir = out / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}

    @staticmethod
    def fingerprint(argv: list[str], inputs: tuple[Path, ...] = ()) -> str:
        """sha256 of the stage's command, the text of its ``--config`` file and the identity of the earlier
        stages' outputs it reads (``inputs``: a file's sha256, a model directory's weights digest), so a
        rebuilt dataset or retrained model is never silently paired with an old downstream stage."""
        from r2d.provenance import model_fingerprint, sha256_file

        h = hashlib.sha256(json.dumps(argv).encode())
        if "--config" in argv:
            h.update(Path(argv[argv.index("--config") + 1]).read_bytes())
        for p in inputs:
            ident = sha256_file(p) if p.is_file() else model_fingerprint(str(p)) if p.is_dir() else "missing"
            h.update(json.dumps([str(p), ident], sort_keys=True, default=str).encode())
        return h.hexdigest()

    def run(self, name: str, argv: list[str], inputs: tuple[Path, ...] = ()) -> None:
        from r2d.cli import R2DError, main

        marker = self.dir / f"{name}.json"
        fp = self.fingerprint(argv, inputs)
        if marker.is_file():
            done = json.loads(marker.read_text())
            if done.get("fingerprint") != fp:  # never reuse a stage finished under another config
                raise R2DError(f"stage {name} in {self.dir.parent} was finished with a different command or config "
                               f"(or on other inputs from an earlier stage); "
                               f"use a new --output, or delete {marker} and that stage's outputs to redo it")
            self.timings[name] = done["seconds"]
            print(f"r2d quickstart: [{name}] already done ({done['seconds']:.0f} s), skipping", file=sys.stderr)
            return
        print(f"\nr2d quickstart: [{name}] r2d {' '.join(argv)}", file=sys.stderr, flush=True)
        t0 = time.time()
        rc = main(argv)
        if rc:
            raise R2DError(f"stage {name} failed (exit {rc}); fix it and rerun quickstart to resume")
        secs = time.time() - t0
        self.timings[name] = secs
        marker.write_text(json.dumps({"command": ["r2d", *argv], "seconds": round(secs, 1), "fingerprint": fp,
                                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}))


def run(args: argparse.Namespace) -> int:
    from r2d.provenance import base_provenance

    cdir = _configs_dir()
    qs = yaml.safe_load((cdir / "quickstart.yaml").read_text())
    out = Path(args.output or (qs["output_smoke"] if args.smoke else qs["output"]))
    out.mkdir(parents=True, exist_ok=True)
    if args.data_dir:
        import os

        os.environ["R2D_DATA_DIR"] = str(Path(args.data_dir).resolve())
    smoke = qs.get("smoke", {}) if args.smoke else {}
    t0 = time.time()
    st = Stages(out)

    data_cfg = _write_yaml(out / "configs" / "data.yaml", _merge(
        yaml.safe_load((cdir / "data.yaml").read_text()), smoke.get("data", {})))
    st.run("data", ["data", "build", "--config", str(data_cfg), "--output", str(out / "data")])
    train_data = out / "data" / "train.jsonl"

    train_cfg = _write_yaml(out / "configs" / "train.yaml", _merge(
        yaml.safe_load((cdir / "train.yaml").read_text()), smoke.get("train", {})))
    for variant, flags in qs["variants"].items():
        st.run(f"train-{variant}", ["train", "--config", str(train_cfg), "--data", str(train_data),
                                    "--output", str(out / "models" / variant), *flags], inputs=(train_data,))

    eval_cfg = _fill(_smoke_eval(yaml.safe_load((cdir / "eval.yaml").read_text()), smoke), out)
    eval_cfg["train_data"] = [str(train_data)]
    if any(isinstance(m, dict) and m.get("policy") == SELECTED for m in eval_cfg["models"]):
        eval_cfg["models"] = select_policy(st, qs, smoke, out, train_data, eval_cfg)
    eval_path = _write_yaml(out / "configs" / "eval.yaml", eval_cfg)
    st.run("eval", ["eval", "--config", str(eval_path), "--output", str(out / "eval")],
           inputs=(train_data, *(out / "models" / v for v in qs["variants"])))

    st.run("report", ["report", str(out / "eval"), *qs.get("report_args", [])])
    report = out / "eval" / "report.html"
    total = time.time() - t0
    (out / "quickstart.json").write_text(json.dumps({
        "smoke": bool(args.smoke), "stage_seconds": {k: round(v, 1) for k, v in st.timings.items()},
        "wall_seconds_this_run": round(total, 1), "report": str(report), "provenance": base_provenance()},
        indent=2))
    print("\nr2d quickstart: stage times " + ", ".join(f"{k} {v:.0f}s" for k, v in st.timings.items()),
          file=sys.stderr)
    print(f"r2d quickstart: done in {total / 60:.1f} min. Report: {report}", file=sys.stderr)
    print(report)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="the main job: build data, train R2D (+ ablations), evaluate "
                       "before/after with baselines, write a report", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", help="output directory (default runs/quickstart, runs/quickstart-smoke with --smoke)")
    p.add_argument("--data-dir", help="benchmark/seed data directory (else $R2D_DATA_DIR, else download)")
    p.add_argument("--smoke", action="store_true", help="the same pipeline on a tiny slice (about 3 minutes)")
    p.set_defaults(func=run)
