"""`python -m bench.report DIR [DIR ...] [--out OUTDIR]`: the comparison report over finished runs."""
import sys

from bench.report.build import main

sys.exit(main())
