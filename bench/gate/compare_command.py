"""`python -m bench.compare`: compare two sets of results, or a git revision with the working tree.

    python -m bench.compare BASELINE CURRENT [--gate NAME|PATH] [--set KEY=VALUE] [--only KIND] [--out DIR]
    python -m bench.compare --against REV [--pairs N] [--current-override KEY=VALUE] [--out DIR]

The comparison itself is :mod:`bench.gate.comparison`; ``--against`` runs both sides through
:mod:`bench.gate.revisions`. This command line sits above both, so neither imports the other back.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from bench.errors import BenchError
from bench.gate.comparison import ONLY_CHOICES, compare_paths
from bench.gate.config import load_gate_config
from bench.gate.revisions import compare_against


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", nargs="?", type=Path, help="results.json or folder of runs (the reference)")
    p.add_argument("current", nargs="?", type=Path, help="results.json or folder of runs (the change)")
    p.add_argument("--against", metavar="REV", help="run git revision REV and this working tree interleaved, "
                   "and compare them (timings included)")
    p.add_argument("--pairs", type=int, help="--against: A/B pairs to run (default: the gate's against.pairs)")
    p.add_argument("--current-override", action="append", default=[], metavar="KEY=VALUE",
                   help="--against: a `python -m bench` override for the current side only "
                        "(e.g. to show what a config change costs)")
    p.add_argument("--keep", action="store_true", help="--against: keep the runs' temporary folder")
    p.add_argument("--gate", metavar="NAME|PATH", help="gate settings: conf/gate/NAME.yaml or a YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one gate setting, e.g. --set thresholds.latency=0.5 (repeatable)")
    p.add_argument("--only", choices=ONLY_CHOICES, default="all",
                   help="metrics to compare: all (default), deterministic (quality, parity) or timing")
    p.add_argument("--out", type=Path, help="write compare.md and compare.json into this folder")
    return p


def main(argv: Optional[Sequence[str]] = None, print_fn: Callable[[str], None] = print) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = load_gate_config(args.gate, args.overrides)
        if args.against:
            if args.baseline or args.current:
                raise BenchError("--against REV compares REV with the working tree: drop BASELINE and CURRENT")
            comparison = compare_against(args.against, cfg, pairs=args.pairs, only=args.only,
                                         current_overrides=args.current_override, keep=args.keep)
        else:
            if args.baseline is None or args.current is None:
                raise BenchError("pass BASELINE and CURRENT (results.json files or run folders), or --against REV")
            comparison = compare_paths([args.baseline], [args.current], cfg, only=args.only)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_fn(comparison.markdown())
    if args.out:
        md, js = comparison.write(args.out)
        print_fn(f"written: {md} and {js}")
    return comparison.exit_code

