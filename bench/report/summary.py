"""The summary a decision-maker reads first, above the runs list: the fastest model × index × search
point at each recall floor, which models agree most, the embedding throughput leader, and the
warnings that change how to read the rest.

Every statement is computed from the runs' results (through bench.schema, with the same functions the
tables below use: operating points, agreement, models, load, failed runs) and links to the section of
the table that shows it, so a renamed column cannot change what the summary says. Where the data cannot
decide (nothing reaches a floor, one model only, a lead inside the noise) it says so instead of naming a
winner. The console prints the same lines after a multirun.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.measure.statistics import significantly_different
from bench.report import agreement
from bench.report.cross_run_tables import RECALL_THRESHOLDS, OperatingPoint, operating_points
from bench.report.document import (MISSING, Block, Bullets, Document, Heading, Layout, Table, format_cell,
                                   format_number, heading_anchors)
from bench.report.runset import Group, RunSet
from bench.report.serving import summary_line as serving_summary_line
from bench.schema import Section
from bench.schema.sections import Embedding, SearchPoint
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


def interval(values: Section, key: str, sub: str | None = None) -> tuple[float, float] | None:
    """The interval results.json records for figure ``key`` of a search point or an embedding section
    (``sub``: the thread count of a concurrent QPS), or None where none was measured: the min–max across
    timing trials for a QPS, the interval of the per-batch median for an embedding rate, the bootstrap
    interval for a quality figure."""
    if isinstance(values, SearchPoint) and key in ("batch_qps", "concurrent_qps"):
        return values.qps_range(sub if key == "concurrent_qps" else None)
    if isinstance(values, Embedding) and key.startswith("images_per_s"):
        spread = getattr(values.spread, key, None) if values.spread else None
        return spread.interval("median") if spread is not None else None
    return values.interval(key)


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


def _highest_recall(group: Group) -> str:
    """The search point with the highest recall, for a floor that nothing reaches."""
    points = [(p.recall_at_k, f"{run.model_label} · {run.index_setting} · {p.label}")
              for run in group.runs for p in run.data.search.points if p.recall_at_k is not None]
    if not points:
        return "no recall measured"
    recall, where = max(points, key=lambda rp: rp[0])
    return f"highest recall@{group.top_k}: {format_cell(recall)} ({where})"


def _floor_rows(group: Group, threads: str | None, small_corpus: int | None) -> list[dict]:
    """One row per recall floor: the model × index whose best point has the highest QPS (batch for ``threads``
    None, else with that many threads), and the runner-up among the other model × index pairs. On a corpus
    too small to rank index speed (``small_corpus`` rows), two indexes of the same model are not ranked."""
    k = group.top_k
    measure = "best batch QPS" if threads is None else f"best QPS@{threads}thr"
    by_floor: dict[float, list[OperatingPoint]] = {}
    for op in operating_points([run.labelled() for run in group.runs], RECALL_THRESHOLDS):
        by_floor.setdefault(op.floor, []).append(op)
    rows = []
    for floor in RECALL_THRESHOLDS:
        reached = sorted((op for op in by_floor.get(floor, []) if op.best(threads).qps is not None),
                         key=lambda op: -op.best(threads).qps)
        candidates = [_Candidate(f"{op.model} · {op.index} · {op.best(threads).label}", float(op.best(threads).qps),
                                 op.best(threads).point.recall_at_k, op.best(threads).point.qps_range(threads),
                                 op.best(threads).point.interval("recall_at_k"), op.model) for op in reached]
        if not candidates:
            rows.append({f"min recall@{k}": floor, "fastest": "not reached", f"recall@{k}": None, measure: None,
                         "next best": MISSING, "verdict": f"nothing reaches it; {_highest_recall(group)}",
                         "called": False})
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


def _overlap_matrix(group: Group) -> pd.DataFrame | None:
    """overlap@K between every two models on the exact top-K (the agreement section's first matrix)."""
    by_model = group.first_with_topk()
    if len(by_model) < 2:
        return None
    exact = {m: (run.topk()["query_ids"], run.topk()["exact_ids"]) for m, run in by_model.items()}
    return agreement.agreement_matrices(exact, group.top_k)["overlap"]


def _agreement_lines(group: Group, random: list[str]) -> list[Line]:
    k = group.top_k
    matrix = _overlap_matrix(group)
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


def _throughput_line(group: Group) -> Line:
    models = {}  # model label -> its embedding section (the first run of each model, as the models table)
    for run in group.runs:
        models.setdefault(run.model_label, run.data.model.embedding)
    ranked = sorted(((m, e) for m, e in models.items() if e.images_per_s_end_to_end is not None),
                    key=lambda me: -me[1].images_per_s_end_to_end)
    if not ranked:
        return Line("**Embedding throughput:** not measured.", "models")
    (first, first_emb) = ranked[0]
    rate = (f"{format_number(first_emb.images_per_s_end_to_end)} images/s end to end "
            f"({format_cell(first_emb.images_per_s_inference)} inference alone)")
    if len(ranked) == 1:
        return Line(f"**Embedding throughput:** {first}, {rate}; the only model, so nothing is compared.", "models")
    second, second_emb = ranked[1]
    best, other = (_Candidate(name, float(emb.images_per_s_end_to_end), None,
                              interval(emb, "images_per_s_end_to_end"), None)
                   for name, emb in ((first, first_emb), (second, second_emb)))
    called, why = _verdict(best, other)
    if not called:
        return Line(f"**Embedding throughput:** no clear leader: {first} {rate}, {second} "
                    f"{format_number(other.qps)} images/s; {why}.", "models")
    return Line(f"**Embedding throughput:** **{first}** is fastest, {rate}, against {second}'s "
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


def _random_models(group: Group) -> list[str]:
    return list(dict.fromkeys(run.model_label for run in group.runs
                              if run.data.model.weights and run.data.model.weights.kind == "random"))


def _too_small(group: Group) -> int | None:
    """The corpus size where it is too small to rank index types by speed, else None."""
    rows = [run.data.index.load.rows for run in group.runs if run.data.index and run.data.index.load.rows is not None]
    return max(rows) if rows and max(rows) < SMALL_CORPUS_ROWS else None


def _warnings(group: Group) -> list[Line]:
    warnings = []
    if random := _random_models(group):
        warnings.append(Line(f"**Random weights** ({', '.join(random)}): precision, mAP and agreement between "
                             "models say nothing about the architectures; speed and recall figures stand.", "quality"))
    if rows := _too_small(group):
        warnings.append(Line(f"**Corpus too small to rank index speed:** {rows:,} vectors. Exact search over so "
                             "few costs about what an index does, so QPS and latency differences between index "
                             f"types measure per-call overhead; rank indexes on {SMALL_CORPUS_ROWS:,}+ vectors "
                             "(dataset=coco).", "load"))
    return warnings + _store_warnings(group)


def _store_warnings(group: Group) -> list[Line]:
    """What each store kind in the runs says about its own figures (its capabilities): an index it did not
    build for too few rows, and how its timings must be read."""
    indexed = [run for run in group.runs if run.data.index is not None and run.data.index.load.rows is not None]
    warnings = []
    for kind in dict.fromkeys(str(run.data.provenance.store.kind) for run in indexed):
        caps = known_capabilities(kind)
        if caps is None:
            continue
        unindexed = [run for run in indexed if run.data.provenance.store.kind == kind
                     and run.data.index.load.rows < caps.min_rows_to_index]
        if unindexed:
            which = ", ".join(f"{run.model_label} · {run.data.index.type} ({run.data.index.load.rows} rows)"
                              for run in unindexed)
            warnings.append(Line(f"**No index built:** {kind} builds no index under {caps.min_rows_to_index:,} rows "
                                 f"and searches by brute force whatever the index type says: {which}.", "load"))
        if caps.caveat:
            warnings.append(Line(caps.caveat, "load"))
    return warnings


def _group_summary(group: Group) -> Summary:
    k = group.top_k
    summary = Summary(floors_table="operating_points")
    if not any(run.data.search.points for run in group.runs):
        summary.lines.append(Line("**Recall floors:** no search point was measured, so nothing is ranked."))
    else:
        small = _too_small(group)
        batch = _floor_rows(group, None, small)
        one = _floor_rows(group, "1", small)
        summary.floors = _floors_table(batch)
        batch_size = group.runs[0].data.config.search.query_batch_size or "?"
        summary.floors_caption = (f"The fastest model × index × search point reaching each recall@{k} floor, by batch "
                                  f"QPS ({batch_size} queries per call), and the next best model × index.")
        if small:
            summary.floors_caption += " The corpus is too small to rank index types by speed (see above)."
        if line := _qps1_line(batch, one, k):
            summary.lines.append(line)
    summary.lines += _agreement_lines(group, _random_models(group))
    summary.lines.append(_throughput_line(group))
    summary.warnings = _warnings(group)
    return summary


def summarize(doc: Document, runset: RunSet) -> Summary:
    """The summary of ``runset``; ``doc`` is the report it goes into (its tables are linked, never read;
    build.py names a group's tables with the prefix ``group<N>_`` when runs fall into several groups). With
    workload=serve runs, the pipeline with the highest QPS at the latency bound."""
    summary = _summarize_groups(runset)
    if line := serving_summary_line([run.labelled() for run in runset.ok]):
        summary.lines.append(Line(line, "serving"))
    return summary


def _summarize_groups(runset: RunSet) -> Summary:
    warnings = []
    if runset.not_ok:
        names = ", ".join(runset.name(run) for run in runset.not_ok)
        warnings.append(Line(f"**{len(runset.not_ok)} run(s) failed** and are left out of every table: "
                             f"{names}.", "failed_runs"))
    if runset.unreadable:
        warnings.append(Line(f"**{len(runset.unreadable)} results.json file(s) unreadable** and left out.", None))
    if not runset.groups:
        return Summary(lines=[Line("No run finished, so there is nothing to rank.")], warnings=warnings)
    if len(runset.groups) == 1:
        summary = _group_summary(runset.groups[0])
        summary.warnings = warnings + summary.warnings
        return summary
    warnings.append(Line(f"**Runs fall into {len(runset.groups)} groups** that differ in "
                         f"{', '.join(runset.differing)}; "
                         "their figures are compared only within a group.", "groups"))
    merged = Summary(warnings=warnings, floors_table="group1_operating_points")
    frames, group_warnings = [], []
    for number, group in enumerate(runset.groups, start=1):
        prefix = f"group{number}_"
        part = _group_summary(group)
        if not part.floors.empty:
            # Groups may differ in top_k: one column per figure, with K beside it.
            floors = part.floors.rename(columns=lambda c: re.sub(r"@\d+$", "@K", c))
            floors.insert(0, "group", number)
            floors.insert(1, "K", group.top_k)
            frames.append(floors)
        merged.floors_caption = re.sub(r"@\d+ ", "@K ", part.floors_caption) or merged.floors_caption
        merged.lines += [Line(f"Group {number}: {line.text}", line.table and prefix + line.table)
                         for line in part.lines]
        group_warnings.append((number, prefix, part.warnings))
    # A caveat that holds in every group is said once.
    everywhere = set.intersection(*({w.text for w in found} for _, _, found in group_warnings))
    merged.warnings += [Line(w.text, w.table and "group1_" + w.table) for w in group_warnings[0][2]
                        if w.text in everywhere]
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
