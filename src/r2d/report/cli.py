"""``r2d report RUN_DIR [--compare OTHER_RUN_DIR ...] [--output DIR]``: report.md + self-contained report.html."""

from __future__ import annotations

import argparse


def _report(args: argparse.Namespace) -> int:
    from r2d.report.build import ReportOptions, build_report
    from r2d.report.render import write_report
    from r2d.report.rundata import load_run

    if args.traces < 0:
        raise ValueError(f"--traces must be >= 0, got {args.traces}")
    runs = [load_run(args.run_dir)]
    for other in args.compare or []:
        run = load_run(other)
        if run.name in {r.name for r in runs}:  # two dirs with the same basename: keep labels distinct
            run.name = f"{run.name}#{len(runs) + 1}"
        runs.append(run)
    opts = ReportOptions(baseline=args.baseline, traces_model=args.traces_model, traces_per_kind=args.traces)
    blocks = build_report(runs, opts)
    title = "R2D evaluation report: " + " vs ".join(r.name for r in runs)
    _, page = write_report(blocks, args.output or args.run_dir, title)
    print(page)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write report.md and a self-contained report.html for an eval run")
    p.add_argument("run_dir", help="an `r2d eval` output directory (results.json, samples.jsonl, judgments.jsonl)")
    p.add_argument("--compare", nargs="+", action="extend", metavar="OTHER_RUN_DIR",
                   help="other run directories to compare against (repeatable)")
    p.add_argument("--output", metavar="DIR", help="where to write the report (default: RUN_DIR)")
    p.add_argument("--baseline", metavar="SYSTEM", help="system label (or model) that paired tests compare against "
                   "(default: the first system of RUN_DIR)")
    p.add_argument("--traces-model", metavar="SYSTEM", help="system whose reasoning traces to show "
                   "(default: the last system of RUN_DIR)")
    p.add_argument("--traces", type=int, default=1, metavar="N", help="traces per kind (benign, refused, jailbreak)")
    p.set_defaults(func=_report)
