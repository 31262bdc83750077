"""A report as a list of blocks (headings, text, tables, figures), written out as Markdown, as one
self-contained HTML page, and as one CSV per table and one PNG per figure.

Keeping the content separate from its formats means the Markdown and the HTML cannot drift apart.
Headings get GitHub's anchors in both (so a `[text](#anchor)` link works on GitHub and in the HTML);
numbers are formatted once, for both; a wide table can be split into topic parts by a Layout, and
in the HTML every table scrolls sideways in its own box with its identifying columns pinned.
"""
from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

MISSING = "–"


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str
    # "p": a paragraph; "note": set apart; "warning": a caveat the reader must not miss.
    kind: str = "p"


@dataclass
class Bullets:
    items: list[str]
    # "": a plain list; "warning": a boxed list of caveats, introduced by ``title``.
    kind: str = ""
    title: str = ""


@dataclass(frozen=True)
class Topic:
    title: str  # shown above the part, with the unit: "Latency (ms)"
    pattern: str  # regular expression searched in column names; the first topic that matches takes the column


@dataclass(frozen=True)
class Layout:
    """How a wide table reads: identifying columns first (repeated in every part, pinned on the left in
    the HTML), then one part per topic. Columns no topic claims form a first part, titled ``rest``.
    Matching column names by pattern keeps a new column (a confidence interval beside its figure) in
    its topic without touching the layout."""
    id_columns: tuple[str, ...]
    topics: tuple[Topic, ...] = ()
    rest: str = "Setup"
    wrap: bool = False  # HTML: let long text cells wrap (a short table of sentences, not of figures)
    rest_last: bool = False  # the unclaimed columns after the topics (context) rather than before (the subject)


@dataclass
class Table:
    name: str  # CSV file stem, unique within the report
    df: pd.DataFrame
    caption: str = ""
    index: bool = False  # matrices keep their row labels
    layout: Layout | None = None  # None: one part, the first column pinned


@dataclass
class Figure:
    name: str  # PNG file stem, unique within the report
    png: bytes
    caption: str


Block = Heading | Text | Bullets | Table | Figure


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


# ----------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------

def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def format_number(value: float | int) -> str:
    """Four significant figures, and no exponent for everyday sizes: 0.9938, 41.88, 606.2, 12,346.
    From 1,000 up, decimals are noise for every figure in the report (QPS, rows, images/s)."""
    if isinstance(value, (int, np.integer)):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def format_cell(value: object) -> str:
    """One cell as both formats show it: MISSING for a gap, numbers by format_number."""
    if _missing(value):
        return MISSING
    return format_number(value) if _is_number(value) else str(value)


def numeric_columns(df: pd.DataFrame) -> list[bool]:
    """Per column: True when it holds numbers (right-aligned in both formats). A word standing in for
    a figure ("no labels") does not turn a column of figures into text."""
    return [any(_is_number(v) for v in df[c]) for c in df.columns]


def table_parts(table: Table) -> list[tuple[str, pd.DataFrame]]:
    """(title, frame) per part of the table: the whole table (title "") when it has no topics."""
    df = table.df.rename_axis(index=table.df.index.name or "").reset_index() if table.index else table.df
    df = df.rename_axis(columns=None)
    layout = table.layout
    if layout is None:
        return [("", df)]
    ids = [c for c in layout.id_columns if c in df.columns]  # first, where they are pinned
    if not layout.topics:
        return [("", df[ids + [c for c in df.columns if c not in ids]])]
    claimed: dict[str, list[str]] = {topic.title: [] for topic in layout.topics}
    rest: list[str] = []
    for column in df.columns:
        if column in ids:
            continue
        topic = next((t for t in layout.topics if re.search(t.pattern, str(column))), None)
        (claimed[topic.title] if topic else rest).append(column)
    parts = list(claimed.items())
    parts = parts + [(layout.rest, rest)] if layout.rest_last else [(layout.rest, rest)] + parts
    return [(title, df[ids + columns]) for title, columns in parts if columns]


def pinned_count(table: Table, df: pd.DataFrame) -> int:
    """How many leading columns identify a row (the layout's id columns, else the first column)."""
    if table.layout is None:
        return 1
    return max(1, sum(1 for c in table.layout.id_columns if c in df.columns))


def _part_markdown(df: pd.DataFrame) -> str:
    # Pipes and newlines would end the cell or the row.
    rows = [[format_cell(v).replace("|", "\\|").replace("\n", " ") for v in row] for row in df.itertuples(index=False)]
    align = ["right" if numeric else "left" for numeric in numeric_columns(df)]
    return tabulate(rows, headers=[str(c) for c in df.columns], tablefmt="pipe", colalign=align,
                    disable_numparse=True)


def table_markdown(table: Table) -> str:
    if table.df.empty:
        return "_(no rows)_"
    return "\n\n".join((f"**{title}**\n\n" if title else "") + _part_markdown(df) for title, df in table_parts(table))


def render_markdown(doc: Document) -> str:
    parts = [f"# {doc.title}\n"]
    for block in doc.blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Text):
            prefix = {"warning": "> **Warning:** ", "note": "> "}.get(block.kind, "")
            parts.append(f"{prefix}{block.text}\n")
        elif isinstance(block, Bullets):
            if block.kind == "warning":
                parts.append("\n".join([f"> **{block.title}**", ">"] + [f"> - {item}" for item in block.items]) + "\n")
            else:
                parts.append("\n".join(f"- {item}" for item in block.items) + "\n")
        elif isinstance(block, Table):
            caption = f"{block.caption} " if block.caption else ""
            parts.append(f"{caption}(`{block.name}.csv`)\n\n{table_markdown(block)}\n")
        elif isinstance(block, Figure):
            parts.append(f"![{block.caption}]({block.name}.png)\n\n_{block.caption}_\n")
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { margin-top: 1.6rem; }
code { background: #f6f8fa; padding: 0 .25rem; border-radius: 4px; font-size: 90%; }
.scroll { overflow-x: auto; max-width: 100%; margin: .3rem 0 1rem; border: 1px solid #d0d7de; width: fit-content; }
.part { font-size: 13px; font-weight: 600; margin-top: .6rem; }
table.data { border-collapse: separate; border-spacing: 0; font-size: 13px; }
table.data th, table.data td { border-right: 1px solid #d0d7de; border-bottom: 1px solid #d0d7de; padding: 3px 8px;
                               text-align: left; white-space: nowrap; font-variant-numeric: tabular-nums;
                               background: #fff; }
table.data th { background: #f6f8fa; }
table.data tbody tr:nth-child(even) td { background: #fafbfc; }
table.data tr > :last-child { border-right: none; }
table.data tbody tr:last-child > * { border-bottom: none; }
table.data .num { text-align: right; }
table.data.wrap th, table.data.wrap td { white-space: normal; min-width: 5em; max-width: 24em; }
table.data .pin { position: sticky; z-index: 1; }
table.data .pin-last { box-shadow: 2px 0 3px -1px rgba(31, 35, 40, .25); }
.caption { color: #57606a; font-size: 13px; margin-bottom: .2rem; }
.note { border-left: 4px solid #54aeff; background: #f1f8ff; padding: .4rem .8rem; }
.warning { border-left: 4px solid #d4a72c; background: #fff8c5; padding: .4rem .8rem; }
div.warning { margin-bottom: 1rem; }
div.warning ul { margin: .2rem 0; padding-left: 1.4rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 13px; }
nav ul { columns: 2; }
"""

# Sticky cells need a left offset: the rendered width of the pinned columns before them, known only
# once the page is laid out. Without scripts the tables still scroll, with nothing pinned.
PIN_SCRIPT = """
function pinColumns() {
  for (const table of document.querySelectorAll("table.data[data-pinned]")) {
    const count = Number(table.dataset.pinned);
    const widths = Array.from(table.rows[0].cells).slice(0, count).map(c => c.getBoundingClientRect().width);
    for (const row of table.rows) {
      let left = 0;
      for (let i = 0; i < count && i < row.cells.length; i++) {
        row.cells[i].style.left = left + "px";
        row.cells[i].classList.add("pin");
        if (i === count - 1) row.cells[i].classList.add("pin-last");
        left += widths[i];
      }
    }
  }
}
window.addEventListener("load", pinColumns);
"""


def _inline(text: str) -> str:
    """Escape, then render the Markdown inline forms the report uses: **bold**, `code` and
    [links](#anchor) to the report's own headings."""
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return re.sub(r"\[([^\]]+)\]\(#([\w-]+)\)", r'<a href="#\2">\1</a>', out)


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def github_slug(text: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation and symbols dropped,
    each space a hyphen (github-slugger, before the duplicate suffix)."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def heading_anchors(blocks: list[Block], title: str = "") -> dict[int, str]:
    """id(heading) -> its anchor, as GitHub numbers repeated headings: x, x-1, x-2 (the document's
    title, rendered as the first heading, counts too)."""
    seen: dict[str, int] = {}
    anchors: dict[int, str] = {}

    def unique(slug: str) -> str:
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        return slug if count == 0 else f"{slug}-{count}"

    if title:
        unique(github_slug(title))
    for block in blocks:
        if isinstance(block, Heading):
            anchors[id(block)] = unique(github_slug(block.text))
    return anchors


def _part_html(df: pd.DataFrame, table_id: str, pinned: int, wrap: bool) -> str:
    numeric = numeric_columns(df)
    head = "".join(f'<th{" class=num" if n else ""}>{html.escape(str(c))}</th>' for c, n in zip(df.columns, numeric))
    rows = []
    for row in df.itertuples(index=False):
        cells = "".join(f'<td{" class=num" if n else ""}>{html.escape(format_cell(v))}</td>'
                        for v, n in zip(row, numeric))
        rows.append(f"<tr>{cells}</tr>")
    css = "data wrap" if wrap else "data"
    return (f'<div class="scroll"><table class="{css}" id="{table_id}" data-pinned="{pinned}">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def table_html(table: Table) -> str:
    """Each part in its own horizontally scrolling box, numbers right-aligned, the identifying
    columns pinned (PIN_SCRIPT)."""
    if table.df.empty:
        return "<p><em>(no rows)</em></p>"
    out = []
    parts = table_parts(table)
    for number, (title, df) in enumerate(parts, start=1):
        table_id = f"t-{_anchor(table.name)}" + (f"-{number}" if len(parts) > 1 else "")
        label = f'<div class="part">{html.escape(title)}</div>' if title else ""
        wrap = bool(table.layout and table.layout.wrap)
        out.append(label + _part_html(df.rename(columns=str), table_id, pinned_count(table, df), wrap))
    return "".join(out)


def render_html(doc: Document) -> str:
    body, toc = [], []
    anchors = heading_anchors(doc.blocks, doc.title)
    for block in doc.blocks:
        if isinstance(block, Heading):
            anchor = anchors[id(block)]
            if block.level == 2:
                toc.append(f'<li><a href="#{anchor}">{html.escape(block.text)}</a></li>')
            body.append(f'<h{block.level} id="{anchor}">{html.escape(block.text)}</h{block.level}>')
        elif isinstance(block, Text):
            css = f' class="{block.kind}"' if block.kind in ("note", "warning") else ""
            label = "<strong>Warning:</strong> " if block.kind == "warning" else ""
            body.append(f"<p{css}>{label}{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>"
            if block.kind == "warning":
                items = f'<div class="warning"><strong>{_inline(block.title)}</strong>{items}</div>'
            body.append(items)
        elif isinstance(block, Table):
            caption = _inline(block.caption) + " " if block.caption else ""
            body.append(f'<div class="caption">{caption}(<code>{html.escape(block.name)}.csv</code>)</div>'
                        + table_html(block))
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_inline(block.caption)}</figcaption></figure>")
    nav = f"<nav><ul>{''.join(toc)}</ul></nav>" if toc else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head>\n"
            f"<body><h1>{html.escape(doc.title)}</h1>{nav}\n" + "\n".join(body)
            + f"\n<script>{PIN_SCRIPT}</script>\n</body></html>\n")


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

def write_document(doc: Document, outdir: Path) -> dict[str, Path]:
    """report.md, report.html, one CSV per table and one PNG per figure; returns the two report paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    names = [b.name for b in doc.blocks if isinstance(b, (Table, Figure))]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:  # a programming error: two blocks would overwrite each other's file
        raise ValueError(f"duplicate table/figure names in the report: {sorted(duplicates)}")
    for block in doc.blocks:
        if isinstance(block, Table):
            block.df.to_csv(outdir / f"{block.name}.csv", index=block.index)
        elif isinstance(block, Figure):
            (outdir / f"{block.name}.png").write_bytes(block.png)
    paths = {"markdown": outdir / "report.md", "html": outdir / "report.html"}
    paths["markdown"].write_text(render_markdown(doc))
    paths["html"].write_text(render_html(doc))
    return paths
