"""A report as a list of blocks (headings, text, tables, figures), written out as Markdown, as one
self-contained HTML page, and as one CSV per table and one PNG per figure.

Keeping the content separate from its formats means the Markdown and the HTML cannot drift apart.
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


@dataclass
class Table:
    name: str  # CSV file stem, unique within the report
    df: pd.DataFrame
    caption: str = ""
    index: bool = False  # matrices keep their row labels


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

def _md_cell(value: object) -> object:
    """None for a missing value (tabulate prints MISSING for it), pipes and newlines made table-safe."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, str):
        return value.replace("|", "\\|").replace("\n", " ")
    return value


def table_markdown(table: Table) -> str:
    if table.df.empty:
        return "_(no rows)_"
    df = table.df.reset_index() if table.index else table.df
    rows = [[_md_cell(v) for v in row] for row in df.itertuples(index=False)]
    return tabulate(rows, headers=[str(c) for c in df.columns], tablefmt="pipe", floatfmt=".4g", missingval=MISSING)


def render_markdown(doc: Document) -> str:
    parts = [f"# {doc.title}\n"]
    for block in doc.blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Text):
            prefix = {"warning": "> **Warning:** ", "note": "> "}.get(block.kind, "")
            parts.append(f"{prefix}{block.text}\n")
        elif isinstance(block, Bullets):
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
.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
table.data { border-collapse: collapse; font-size: 13px; }
table.data th, table.data td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; white-space: nowrap;
                                 font-variant-numeric: tabular-nums; }
table.data th { background: #f6f8fa; }
table.data tbody tr:nth-child(even) { background: #fafbfc; }
.caption { color: #57606a; font-size: 13px; margin-bottom: .2rem; }
.note { border-left: 4px solid #54aeff; background: #f1f8ff; padding: .4rem .8rem; }
.warning { border-left: 4px solid #d4a72c; background: #fff8c5; padding: .4rem .8rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 13px; }
nav ul { columns: 2; }
"""


def _inline(text: str) -> str:
    """Escape, then render the two Markdown inline forms the report uses: **bold** and `code`."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _format_cell(value: object) -> str:
    if _md_cell(value) is None:
        return MISSING
    if _is_number(value):
        return f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)
    return str(value)


def table_html(table: Table) -> str:
    """pandas to_html over pre-formatted cells (4 significant digits, MISSING for gaps), with the
    numeric columns right-aligned by a rule scoped to this table's id."""
    if table.df.empty:
        return "<p><em>(no rows)</em></p>"
    df = table.df.rename_axis(index=None, columns=None)
    numeric = [i for i, column in enumerate(df.columns)
               if df[column].notna().any() and all(_is_number(v) for v in df[column] if _md_cell(v) is not None)]
    shown = df.astype(object).map(_format_cell)
    table_id = f"t-{_anchor(table.name)}"
    offset = 2 if table.index else 1  # nth-child is 1-based and counts the row-label cell
    selectors = ", ".join(f"#{table_id} td:nth-child({i + offset}), #{table_id} th:nth-child({i + offset})"
                          for i in numeric)
    style = f"<style>{selectors} {{ text-align: right; }}</style>" if numeric else ""
    return style + shown.to_html(index=table.index, border=0, classes="data", escape=True, table_id=table_id)


def render_html(doc: Document) -> str:
    body, toc = [], []
    for block in doc.blocks:
        if isinstance(block, Heading):
            anchor = _anchor(block.text)
            if block.level == 2:
                toc.append(f'<li><a href="#{anchor}">{html.escape(block.text)}</a></li>')
            body.append(f'<h{block.level} id="{anchor}">{html.escape(block.text)}</h{block.level}>')
        elif isinstance(block, Text):
            css = f' class="{block.kind}"' if block.kind in ("note", "warning") else ""
            label = "<strong>Warning:</strong> " if block.kind == "warning" else ""
            body.append(f"<p{css}>{label}{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            caption = _inline(block.caption) + " " if block.caption else ""
            body.append(f'<div class="caption">{caption}(<code>{html.escape(block.name)}.csv</code>)</div>'
                        f'<div class="scroll">{table_html(block)}</div>')
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_inline(block.caption)}</figcaption></figure>")
    nav = f"<nav><ul>{''.join(toc)}</ul></nav>" if toc else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head>\n"
            f"<body><h1>{html.escape(doc.title)}</h1>{nav}\n" + "\n".join(body) + "\n</body></html>\n")


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
