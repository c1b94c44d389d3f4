"""The report's figures as PNG bytes: grouped ASR bars with 95% CI (paper Fig. 3), XSTest stacked
bars (Fig. 4) and word-count distributions (Fig. 5).

Uses matplotlib's object API with the Agg canvas, so nothing touches pyplot's global state or needs
a display.
"""

from __future__ import annotations

import io

from r2d.report.rundata import Arm
from r2d.report.tables import XSTEST_LABELS, AsrGrid, XsRow


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", bbox_inches="tight")  # keeps legends placed outside the axes
    return buf.getvalue()


def asr_bars(grid: AsrGrid, labels: dict[Arm, str]) -> bytes:
    """Grouped bars: x = attack, one bar per arm, error bars = the 95% CI; missing values are left out."""
    n_arms = max(1, len(grid.arms))
    fig = _figure(max(6.0, 1.2 + 0.35 * n_arms * len(grid.attacks)), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / n_arms
    for i, arm in enumerate(grid.arms):
        xs, ys, lo, hi = [], [], [], []
        for k, att in enumerate(grid.attacks):
            v = grid.values.get((att, arm))
            if v is None or v.asr is None:
                continue
            xs.append(k - 0.4 + width * (i + 0.5))
            ys.append(100 * v.asr)
            ci = v.ci or (v.asr, v.asr)
            lo.append(max(0.0, 100 * (v.asr - ci[0])))  # stored intervals are rounded: never a negative bar
            hi.append(max(0.0, 100 * (ci[1] - v.asr)))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=labels[arm])
    ax.set_xticks(range(len(grid.attacks)), grid.attacks, rotation=20 if len(grid.attacks) > 4 else 0)
    ax.set_ylabel("ASR (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Attack success rate: {grid.benchmark}/{grid.subset}, judge {grid.judge} (95% CI)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


_XS_COLOURS = {"full_compliance": "#4c9a2a", "partial_refusal": "#e0a030", "full_refusal": "#c0392b"}


def xstest_bars(rows: list[XsRow], labels: dict[Arm, str], judge: str) -> bytes:
    """One panel per subset (safe, unsafe), one stacked bar per arm."""
    rows = [r for r in rows if r.judge == judge]
    subsets = sorted({r.subset for r in rows})
    fig = _figure(max(6.0, 3.2 * len(subsets)), 4.0)
    for i, subset in enumerate(subsets):
        ax = fig.add_subplot(1, len(subsets), i + 1)
        sub = [r for r in rows if r.subset == subset]
        bottom = [0.0] * len(sub)
        for label in XSTEST_LABELS:
            vals = [100 * (r.rates[label] or 0.0) for r in sub]
            ax.bar(range(len(sub)), vals, 0.6, bottom=bottom, color=_XS_COLOURS[label],
                   label=label.replace("_", " "))
            bottom = [b + v for b, v in zip(bottom, vals)]
        apart = [100 * (r.no_answer + r.degenerate) / r.n if r.n else 0.0 for r in sub]
        if any(apart):  # replies in none of the classes, so every bar reaches 100%
            ax.bar(range(len(sub)), apart, 0.6, bottom=bottom, color="#9e9e9e", label="no answer / degenerate")
        ax.set_xticks(range(len(sub)), [labels[r.arm] for r in sub], rotation=30, ha="right", fontsize="small")
        ax.set_ylim(0, 118)  # headroom for the legend above the 100% stacks
        ax.set_yticks(range(0, 101, 20))
        ax.set_title(f"XSTest {subset} ({judge})")
        ax.set_ylabel("% of responses")
        ax.legend(fontsize="x-small", loc="upper center", ncol=3)
    return _png(fig)


def word_distributions(counts: dict[Arm, dict[str, list[int]]], labels: dict[Arm, str]) -> bytes:
    """Box plots of generated words, harmful vs benign prompts side by side for each arm."""
    arms = list(counts)
    fig = _figure(max(6.0, 1.4 * len(arms)), 4.0)
    ax = fig.add_subplot()
    for k, (kind, colour, dx) in enumerate((("harmful", "#c0392b", -0.18), ("benign", "#2e86c1", 0.18))):
        data, pos = [], []
        for i, a in enumerate(arms):
            if counts[a][kind]:
                data.append(counts[a][kind])
                pos.append(i + dx)
        if data:
            bp = ax.boxplot(data, positions=pos, widths=0.3, patch_artist=True, manage_ticks=False)
            for box in bp["boxes"]:
                box.set_facecolor(colour)
                box.set_alpha(0.6)
            ax.plot([], [], color=colour, linewidth=8, alpha=0.6, label=f"{kind} prompts")
    ax.set_xticks(range(len(arms)), [labels[a] for a in arms], rotation=20, ha="right", fontsize="small")
    ax.set_ylabel("generated words")
    ax.set_title("Response length: harmful vs benign prompts")
    ax.legend(fontsize="small")
    return _png(fig)
