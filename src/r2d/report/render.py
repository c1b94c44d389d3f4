"""A tiny document model (headings, paragraphs, tables, figures, code) rendered to Markdown and to a
self-contained HTML page (figures embedded as base64 PNGs), so both files carry the same content
without a Markdown-to-HTML dependency.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str  # plain text; ``**x**`` bold is honoured in both outputs


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, col) cells to emphasise
    caption: str = ""


@dataclass
class Figure:
    png: bytes
    name: str  # file stem, e.g. "asr_jbb_refusal"
    caption: str = ""


@dataclass
class Code:
    text: str


Block = Heading | Para | Bullets | Table | Figure | Code


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block], figure_dir: str = "figures") -> str:
    """Markdown; figures are referenced as ``figure_dir/<name>.png`` (see ``write_report``)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {_md_cell(i)}" for i in b.items))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(h) for h in b.header) + " |",
                     "|" + "---|" * len(b.header)]
            for r, row in enumerate(b.rows):
                cells = [f"**{_md_cell(c)}**" if (r, j) in b.bold else _md_cell(c) for j, c in enumerate(row)]
                lines.append("| " + " | ".join(cells) + " |")
            if b.caption:
                lines.append("\n" + b.caption)
            out.append("\n".join(lines))
        elif isinstance(b, Figure):
            out.append(f"![{b.caption or b.name}]({figure_dir}/{b.name}.png)")
            if b.caption:
                out.append(f"*{b.caption}*")
        elif isinstance(b, Code):
            out.append("```\n" + b.text.rstrip("\n") + "\n```")
    return "\n\n".join(out) + "\n"


def _inline(s: str) -> str:
    """Escape text, then turn ``**x**`` into <strong> and ``code`` into <code>."""
    parts = html.escape(str(s)).split("**")
    s = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = s.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #bbb;padding:3px 8px;
text-align:left}th{background:#eee}pre{background:#f6f6f6;padding:0.8em;overflow-x:auto;white-space:pre-wrap}
figure{margin:1em 0}figcaption{font-style:italic;font-size:0.9em}img{max-width:100%}"""


def to_html(blocks: list[Block], title: str) -> str:
    """One self-contained HTML page; every figure is an inline ``data:image/png;base64`` image."""
    out = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.header)
            body = []
            for r, row in enumerate(b.rows):
                tds = "".join(f"<td><strong>{_inline(c)}</strong></td>" if (r, j) in b.bold
                              else f"<td>{_inline(c)}</td>" for j, c in enumerate(row))
                body.append(f"<tr>{tds}</tr>")
            cap = f"<caption>{_inline(b.caption)}</caption>" if b.caption else ""
            out.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        elif isinstance(b, Figure):
            data = base64.b64encode(b.png).decode("ascii")
            cap = f"<figcaption>{_inline(b.caption)}</figcaption>" if b.caption else ""
            out.append(f"<figure><img alt='{html.escape(b.name)}' src='data:image/png;base64,{data}'>{cap}</figure>")
        elif isinstance(b, Code):
            out.append(f"<pre>{html.escape(b.text)}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(blocks: list[Block], out_dir: str | Path, title: str) -> tuple[Path, Path]:
    """Write report.md (+ figures/*.png beside it) and the self-contained report.html; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = [b for b in blocks if isinstance(b, Figure)]
    seen: set[str] = set()
    for f in figs:  # distinct labels can slug to the same file name
        base, k = f.name, 2
        while f.name in seen:
            f.name, k = f"{base}-{k}", k + 1
        seen.add(f.name)
    if figs:
        (out_dir / "figures").mkdir(exist_ok=True)
        for f in figs:
            (out_dir / "figures" / f"{f.name}.png").write_bytes(f.png)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(f"# {title}\n\n" + to_markdown(blocks), encoding="utf-8")
    page.write_text(to_html([Heading(title, 1), *blocks], title), encoding="utf-8")
    return md, page
