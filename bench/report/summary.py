"""The summary a decision-maker reads first, above the runs list: the fastest model × index × search
point at each recall floor, which models agree most, the embedding throughput leader, and the
warnings that change how to read the rest.

Every statement is read off a table the report shows below it (operating points, agreement, models,
load, failed runs) and links to that table's section, so the summary can never say what the tables
do not. Where the data cannot decide (nothing reaches a floor, one model only, a lead inside the
noise) it says so instead of naming a winner. The console prints the same lines after a multirun.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.measure.statistics import as_interval, significantly_different
from bench.report.comparison_tables import RECALL_THRESHOLDS
from bench.report.document import (MISSING, Block, Bullets, Document, Heading, Layout, Table, format_cell,
                                   format_number, heading_anchors)
from bench.report.runset import Group, RunSet
from bench.report.serving import summary_line as serving_summary_line
from bench.report.significance import qps_interval, quality_interval
from bench.stores.registry import known_capabilities

TITLE = "Summary"
AGREEMENT_SECTION = "4. Agreement between models"  # build.py's heading, linked when it has no table
# Below this many vectors exact search costs about what an index traversal does (a 10k × 512 inner
# product takes a millisecond or less, the order of one call's overhead in milvus-lite or over gRPC),
# so QPS differences between index types measure per-call overhead, not the index.
SMALL_CORPUS_ROWS = 10_000
# Without intervals, a lead smaller than this is not called: repeated runs on the 2-core machines
# this was built on differ by 15-25 % (measured for onnxruntime throughput and search timings alike).
NOISE_RATIO = 1.25
# The floors table is read, not scanned: its long labels wrap instead of widening it.
FLOORS = Layout(id_columns=(), wrap=True)


def interval(values: dict, key: str, sub: str | None = None) -> tuple[float, float] | None:
    """The interval results.json records for ``values[key]`` (``values[key][sub]`` for a per-thread
    QPS), or None where none was measured: the min–max across timing trials for a QPS, the bootstrap
    interval for a quality figure. How they are stored is :mod:`bench.report.significance`'s to know."""
    if key == "batch_qps":
        return qps_interval(values)
    if key == "concurrent_qps":
        return qps_interval(values, sub)
    if key.startswith("images_per_s"):  # embedding throughput: the interval of its per-batch median
        return as_interval(((values.get("spread") or {}).get(key) or {}).get("median_ci95"))
    return quality_interval(values, key)


@dataclass
class Line:
    text: str  # Markdown inline: **bold**, `code`
    # The report table it is read from, or "§<heading text>" for a section without one: linked.
    table: str | None = None


@dataclass
class Summary:
    floors: pd.DataFrame = field(default_factory=pd.DataFrame)
    floors_caption: str = ""
    lines: list[Line] = field(default_factory=list)
    warnings: list[Line] = field(default_factory=list)
    # The table the floors come from, for the link in the caption.
    floors_table: str | None = None


@dataclass
class _Candidate:
    label: str  # "model · index · search params"
    qps: float
    recall: float | None
    qps_interval: tuple[float, float] | None
    recall_interval: tuple[float, float] | None
    model: str = ""


# ----------------------------------------------------------------------------------------------
# Reading the tables
# ----------------------------------------------------------------------------------------------

def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _ratio(value: float) -> str:
    return f"{value:.3g}×"


def _verdict(best: _Candidate, runner_up: _Candidate | None) -> tuple[bool, str]:
    """(a winner can be called, why): by intervals where both points have one, else by a ratio
    beyond the machine's run-to-run noise."""
    if runner_up is None:
        return True, "only candidate"
    ratio = best.qps / runner_up.qps if runner_up.qps > 0 else float("inf")
    if best.qps_interval and runner_up.qps_interval:
        if not significantly_different(best.qps_interval, runner_up.qps_interval):
            return False, "≈ tie within noise: their measured ranges overlap"
        return True, f"leads by {_ratio(ratio)}; measured ranges apart"
    if ratio < NOISE_RATIO:
        return False, f"too close to call: {_ratio(ratio)}; one measurement each"
    return True, f"leads by {_ratio(ratio)}; one measurement each"


def _floor_rows(group: Group, op: pd.DataFrame, search: pd.DataFrame, measure: str, at: str,
                qps_key: tuple[str, str | None], small_corpus: int | None) -> list[dict]:
    """One row per recall floor: the operating-points row with the highest ``measure`` (column), at
    the search point named in column ``at``, and the runner-up among the other model × index pairs.
    ``qps_key`` says where results.json keeps that QPS, for its interval. On a corpus too small to
    rank index speed (``small_corpus`` rows), two indexes of the same model are not ranked."""
    k = group.top_k
    points = {(run.model_label, run.index_setting, p["label"]): p for run in group.runs for p in run.data["search"]["points"]}
    floor_column = f"min recall@{k}"
    rows = []
    for floor in RECALL_THRESHOLDS:
        reached = op[(op[floor_column] == floor) & op[measure].notna()].sort_values(measure, ascending=False)
        candidates = []
        for _, row in reached.iterrows():
            point = points.get((row["model"], row["index"], row[at]), {})
            candidates.append(_Candidate(f"{row['model']} · {row['index']} · {row[at]}", float(row[measure]),
                                         point.get("recall_at_k"), interval(point, *qps_key),
                                         interval(point, "recall_at_k"), row["model"]))
        if not candidates:
            recall_column = f"recall@{k}"
            top = search.sort_values(recall_column, ascending=False).head(1) if recall_column in search else search.head(0)
            highest = (f"highest recall@{k}: {format_cell(top.iloc[0][recall_column])} "
                       f"({top.iloc[0]['model']} · {top.iloc[0]['index']} · {top.iloc[0]['search params']})"
                       if len(top) else "no recall measured")
            rows.append({f"min recall@{k}": floor, "fastest": "not reached", f"recall@{k}": None, measure: None,
                         "next best": MISSING, "verdict": f"nothing reaches it; {highest}", "called": False})
            continue
        best, runner_up = candidates[0], (candidates[1] if len(candidates) > 1 else None)
        called, verdict = _verdict(best, runner_up)
        if called and runner_up and small_corpus and best.model == runner_up.model:
            called, verdict = False, (f"the two differ only in index type, and {small_corpus:,} vectors cannot rank "
                                      f"index speed ({verdict.removeprefix('leads by ')})")
        if best.recall_interval and best.recall_interval[0] < floor:
            verdict += f"; its recall interval reaches below {floor:g}"
        rows.append({f"min recall@{k}": floor, "fastest": best.label, f"recall@{k}": best.recall, measure: best.qps,
                     "next best": f"{runner_up.label}: {format_number(runner_up.qps)}" if runner_up else MISSING,
                     "verdict": verdict, "called": called})
    return rows


def _floors_table(rows: list[dict]) -> pd.DataFrame:
    """The rows as the summary shows them: a winner is named only where one can be called."""
    df = pd.DataFrame(rows)
    df["winner?"] = [("yes, " if called else "no, ") + verdict for called, verdict in zip(df["called"], df["verdict"])]
    return df.drop(columns=["verdict", "called"]).rename(columns={
        "fastest": "highest batch QPS at (model · index · search params)", "best batch QPS": "batch QPS (queries/s)",
        "next best": "next best model × index: batch QPS"})


def _upper_pairs(matrix: pd.DataFrame) -> list[tuple[str, str, float]]:
    names = list(matrix.index)
    return [(a, b, float(matrix.loc[a, b])) for i, a in enumerate(names) for b in names[i + 1:]
            if pd.notna(matrix.loc[a, b])]


def _agreement_lines(tables: dict[str, pd.DataFrame], k: int, random: list[str]) -> list[Line]:
    matrix = tables.get("agreement_exact_overlap")
    if matrix is None:
        return [Line("**Agreement:** only one model with top-K results, so there is nothing to compare.",
                     f"§{AGREEMENT_SECTION}")]
    pairs = sorted(_upper_pairs(matrix), key=lambda p: -p[2])
    if not pairs:
        return [Line("**Agreement:** no pair of models could be compared.", "agreement_exact_overlap")]
    a, b, value = pairs[0]
    text = f"**Agreement:** **{a}** and **{b}** agree most: overlap@{k} = {format_number(value)} on the exact top-{k}"
    ties = [p for p in pairs[1:] if p[2] == value]
    if ties:
        text += f" (tied with {', '.join(f'{x} and {y}' for x, y, _ in ties)})"
    if len(pairs) > 1:
        low = pairs[-1]
        text += f"; least: {low[0]} and {low[1]}, {format_number(low[2])}"
    if matrix.shape[0] > 2:
        closest = []
        for name in matrix.index:
            partners = matrix.loc[name].drop(name).dropna()
            if len(partners):
                closest.append(f"{name} → {partners.idxmax()} ({format_number(float(partners.max()))})")
        text += f". Closest partner: {'; '.join(closest)}"
    text += "."
    if random:
        text += " With random weights this compares untrained networks, not what the architectures learn."
    return [Line(text, "agreement_exact_overlap")]


def _throughput_line(models: pd.DataFrame, runs: dict[str, dict]) -> Line:
    column = "e2e img/s"
    ranked = models[models[column].notna()].sort_values(column, ascending=False) if column in models else models.head(0)
    if ranked.empty:
        return Line("**Embedding throughput:** not measured.", "models")
    first = ranked.iloc[0]
    rate = f"{format_number(float(first[column]))} images/s end to end ({format_cell(first.get('infer img/s'))} inference alone)"
    if len(ranked) == 1:
        return Line(f"**Embedding throughput:** {first['model']}, {rate}; the only model, so nothing is compared.", "models")
    second = ranked.iloc[1]
    best, other = (_Candidate(row["model"], float(row[column]), None,
                              interval(runs.get(row["model"], {}), "images_per_s_end_to_end"), None)
                   for row in (first, second))
    called, why = _verdict(best, other)
    if not called:
        return Line(f"**Embedding throughput:** no clear leader: {first['model']} {rate}, {second['model']} "
                    f"{format_number(other.qps)} images/s; {why}.", "models")
    return Line(f"**Embedding throughput:** **{first['model']}** is fastest, {rate}, against {second['model']}'s "
                f"{format_number(other.qps)}: {why}.", "models")


def _outcome(row: dict) -> str:
    """One floor's outcome in words: a winner named only where one is called."""
    if row["fastest"] == "not reached":
        return row["verdict"]
    if not row["called"]:
        return f"highest is {row['fastest']}, but {row['verdict']}"
    if row["verdict"] == "only candidate":
        return f"{row['fastest']}, the only candidate"
    return f"{row['fastest']} {row['verdict']}"


def _qps1_line(rows_batch: list[dict], rows_one: list[dict], k: int) -> Line | None:
    """How the ranking changes with one query per call; floors with the same outcome share a sentence."""
    if all(r["best QPS@1thr"] is None for r in rows_one):
        return None
    if all(r["fastest"] == b["fastest"] for r, b in zip(rows_one, rows_batch)):
        return Line("**One query per call** (QPS@1thr): the same points are fastest.", "operating_points")
    outcomes: dict[str, list[str]] = {}
    for row in rows_one:
        outcomes.setdefault(_outcome(row), []).append(f"{row[f'min recall@{k}']:g}")
    sentences = [f"At {_join(floors)}: {outcome}." for outcome, floors in outcomes.items()]
    return Line("**One query per call** (QPS@1thr) ranks differently. " + " ".join(sentences), "operating_points")


def _random_models(tables: dict[str, pd.DataFrame]) -> list[str]:
    models = tables.get("models")
    if models is None or "weights" not in models:
        return []
    return models.loc[models["weights"].astype(str).str.startswith("random"), "model"].tolist()


def _too_small(tables: dict[str, pd.DataFrame]) -> int | None:
    """The corpus size where it is too small to rank index types by speed, else None."""
    load = tables.get("load")
    if load is None or "rows" not in load or not load["rows"].notna().any():
        return None
    rows = int(load["rows"].max())
    return rows if rows < SMALL_CORPUS_ROWS else None


def _warnings(tables: dict[str, pd.DataFrame]) -> list[Line]:
    warnings = []
    load = tables.get("load")
    if random := _random_models(tables):
        warnings.append(Line(f"**Random weights** ({', '.join(random)}): precision, mAP and agreement between "
                                 "models say nothing about the architectures; speed and recall figures stand.",
                                 "quality" if "quality" in tables else "models"))
    if load is not None and "rows" in load and load["rows"].notna().any():
        if rows := _too_small(tables):
            warnings.append(Line(f"**Corpus too small to rank index speed:** {rows:,} vectors. Exact search over so "
                                 "few costs about what an index does, so QPS and latency differences between index "
                                 f"types measure per-call overhead; rank indexes on {SMALL_CORPUS_ROWS:,}+ vectors "
                                 "(dataset=coco).", "load"))
        warnings += _store_warnings(load)
    return warnings


def _store_warnings(load: pd.DataFrame) -> list[Line]:
    """What each store kind in the load table says about its own figures (its capabilities): an index it
    did not build for too few rows, and how its timings must be read."""
    # The table's store label is "<kind> <version>".
    kinds = (load["store"].astype(str).str.split(" ").str[0] if "store" in load
             else pd.Series("", index=load.index))
    warnings = []
    for kind in dict.fromkeys(kinds):
        caps = known_capabilities(kind)
        if caps is None:
            continue
        unindexed = load[(kinds == kind) & (load["rows"] < caps.min_rows_to_index)]
        if len(unindexed):
            which = ", ".join(f"{r['model']} · {r['index']} ({int(r['rows'])} rows)" for _, r in unindexed.iterrows())
            warnings.append(Line(f"**No index built:** {kind} builds no index under {caps.min_rows_to_index:,} rows "
                                 f"and searches by brute force whatever the index type says: {which}.", "load"))
        if caps.caveat:
            warnings.append(Line(caps.caveat, "load"))
    return warnings


def _group_summary(group: Group, tables: dict[str, pd.DataFrame]) -> Summary:
    k = group.top_k
    summary = Summary(floors_table="operating_points")
    op, search = tables.get("operating_points"), tables.get("search", pd.DataFrame())
    if op is None or op.empty:
        summary.lines.append(Line("**Recall floors:** no search point was measured, so nothing is ranked."))
    else:
        small = _too_small(tables)
        batch = _floor_rows(group, op, search, "best batch QPS", "batch: search params", ("batch_qps", None), small)
        one = (_floor_rows(group, op, search, "best QPS@1thr", "1thr: search params", ("concurrent_qps", "1"), small)
               if "best QPS@1thr" in op else [])
        summary.floors = _floors_table(batch)
        batch_size = group.runs[0].data["config"].get("search", {}).get("query_batch_size", "?")
        summary.floors_caption = (f"The fastest model × index × search point reaching each recall@{k} floor, by batch "
                                  f"QPS ({batch_size} queries per call), and the next best model × index.")
        if small:
            summary.floors_caption += " The corpus is too small to rank index types by speed (see above)."
        if one and (line := _qps1_line(batch, one, k)):
            summary.lines.append(line)
    summary.lines += _agreement_lines(tables, k, _random_models(tables))
    if "models" in tables:
        runs = {run.model_label: run.data["model"].get("embedding", {}) for run in group.runs}
        summary.lines.append(_throughput_line(tables["models"], runs))
    summary.warnings = _warnings(tables)
    return summary


def summarize(doc: Document, runset: RunSet) -> Summary:
    """The summary of ``runset`` read from ``doc``'s tables (build.py names a group's tables with
    the prefix ``group<N>_`` when runs fall into several groups); with workload=serve runs, the pipeline
    with the highest QPS at the latency bound, read off the Serving table."""
    summary = _summarize_groups(doc, runset)
    if line := serving_summary_line(next((b.df for b in doc.blocks if isinstance(b, Table) and b.name == "serving"),
                                         None)):
        summary.lines.append(Line(line, "serving"))
    return summary


def _summarize_groups(doc: Document, runset: RunSet) -> Summary:
    tables = {b.name: b.df for b in doc.blocks if isinstance(b, Table)}
    warnings = []
    if "failed_runs" in tables:
        names = ", ".join(tables["failed_runs"]["run"].astype(str))
        warnings.append(Line(f"**{len(tables['failed_runs'])} run(s) failed** and are left out of every table: "
                             f"{names}.", "failed_runs"))
    if runset.unreadable:
        warnings.append(Line(f"**{len(runset.unreadable)} results.json file(s) unreadable** and left out.", None))
    if not runset.groups:
        return Summary(lines=[Line("No run finished, so there is nothing to rank.")], warnings=warnings)
    if len(runset.groups) == 1:
        summary = _group_summary(runset.groups[0], tables)
        summary.warnings = warnings + summary.warnings
        return summary
    warnings.append(Line(f"**Runs fall into {len(runset.groups)} groups** that differ in {', '.join(runset.differing)}; "
                         "their figures are compared only within a group.", "groups"))
    merged = Summary(warnings=warnings, floors_table="group1_operating_points")
    frames, group_warnings = [], []
    for number, group in enumerate(runset.groups, start=1):
        prefix = f"group{number}_"
        own = {name[len(prefix):]: df for name, df in tables.items() if name.startswith(prefix)}
        part = _group_summary(group, own)
        if not part.floors.empty:
            # Groups may differ in top_k: one column per figure, with K beside it.
            floors = part.floors.rename(columns=lambda c: re.sub(r"@\d+$", "@K", c))
            floors.insert(0, "group", number)
            floors.insert(1, "K", group.top_k)
            frames.append(floors)
        merged.floors_caption = re.sub(r"@\d+ ", "@K ", part.floors_caption) or merged.floors_caption
        merged.lines += [Line(f"Group {number}: {line.text}", line.table and prefix + line.table) for line in part.lines]
        group_warnings.append((number, prefix, part.warnings))
    # A caveat that holds in every group is said once.
    everywhere = set.intersection(*({w.text for w in found} for _, _, found in group_warnings))
    merged.warnings += [Line(w.text, w.table and "group1_" + w.table) for w in group_warnings[0][2] if w.text in everywhere]
    merged.warnings += [Line(f"Group {number}: {w.text}", w.table and prefix + w.table)
                        for number, prefix, found in group_warnings for w in found if w.text not in everywhere]
    merged.floors = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return merged


# ----------------------------------------------------------------------------------------------
# Writing it: report blocks with links, and plain text for the console
# ----------------------------------------------------------------------------------------------

def _section_of(doc: Document) -> dict[str, Heading]:
    """Where a statement links to: a table's name -> the heading of the section that shows it (the
    nearest heading above it); and "§<heading text>" -> that heading, with a group's prefix
    ("group2_§4. Agreement between models") where runs fall into groups."""
    found, current, prefix = {}, None, ""
    for block in doc.blocks:
        if isinstance(block, Heading):
            current = block
            if group := re.match(r"Group (\d+):", block.text):
                prefix = f"group{group.group(1)}_"
            found.setdefault(f"{prefix}§{block.text}", block)
        elif isinstance(block, Table) and current is not None:
            found[block.name] = current
    return found


def add_summary(doc: Document, runset: RunSet) -> Summary:
    """Insert the summary into ``doc`` right after its opening line (before the runs list), each
    statement linked to the section of the table it comes from; return it for the console."""
    summary = summarize(doc, runset)
    position = next((i for i, b in enumerate(doc.blocks) if isinstance(b, Heading)), len(doc.blocks))
    heading = Heading(TITLE, 2)
    doc.blocks.insert(position, heading)
    anchors, sections = heading_anchors(doc.blocks, doc.title), _section_of(doc)

    def link(table: str | None) -> str:
        section = sections.get(table) if table else None
        return f" ([→ {section.text}](#{anchors[id(section)]}))" if section else ""

    blocks: list[Block] = []
    if summary.warnings:
        blocks.append(Bullets([w.text + link(w.table) for w in summary.warnings], kind="warning",
                              title="Read the rest with these in mind:"))
    if not summary.floors.empty:
        blocks.append(Table("summary_recall_floors", summary.floors,
                            summary.floors_caption + link(summary.floors_table), layout=FLOORS))
    blocks.append(Bullets([line.text + link(line.table) for line in summary.lines]))
    doc.blocks[position + 1:position + 1] = blocks
    return summary


def _plain(text: str) -> str:
    return re.sub(r"\*\*|`", "", text)


def summary_text(summary: Summary) -> str:
    """The summary for the console: the same statements, without links and Markdown."""
    out = [f"{TITLE}:"]
    if summary.warnings:
        out.append("Read the rest with these in mind:")
        out += [f"  ! {_plain(w.text)}" for w in summary.warnings]
    if not summary.floors.empty:
        out.append(_plain(summary.floors_caption))
        shown = summary.floors.astype(object).map(format_cell)
        out.append(tabulate(shown.values.tolist(), headers=list(shown.columns), tablefmt="simple", disable_numparse=True))
    out += [f"- {_plain(line.text)}" for line in summary.lines]
    return "\n".join(out)


def write_summary(summary: Summary, outdir: Path) -> Path:
    path = Path(outdir) / "summary.txt"
    path.write_text(summary_text(summary) + "\n")
    return path
