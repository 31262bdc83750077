"""`python -m bench.compare`: kept at the top level because it is a documented command.

The command line is :mod:`bench.gate.compare_command`; the comparison is :mod:`bench.gate.comparison`.
"""
import sys

from bench.gate.compare_command import main

if __name__ == "__main__":
    sys.exit(main())
