"""`python -m bench.compare`: kept at the top level because it is a documented command.

The command line is :mod:`bench.gate.compare_cli`; the comparison is :mod:`bench.gate.compare`.
"""
import sys

from bench.gate.compare_cli import main

if __name__ == "__main__":
    sys.exit(main())
