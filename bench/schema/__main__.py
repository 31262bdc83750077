"""`python -m bench.schema [--check]`: write docs/results-format.md from the models (or check it is current)."""
import argparse
import sys

from bench import PROJECT_ROOT
from bench.schema.doc import render

PAGE = PROJECT_ROOT / "docs" / "results-format.md"

parser = argparse.ArgumentParser(prog="python -m bench.schema", description=__doc__)
parser.add_argument("--check", action="store_true", help="exit 1 if the committed page differs from the models")
args = parser.parse_args()
if args.check:
    if not PAGE.is_file() or PAGE.read_text() != render():
        print(f"{PAGE} is out of date: run `python -m bench.schema` and commit it", file=sys.stderr)
        sys.exit(1)
    print(f"{PAGE} matches bench/schema")
else:
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(render())
    print(f"written: {PAGE}")
