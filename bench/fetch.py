"""`python -m bench.fetch coco --split val2017`: a documented command, kept at the top level.

The download, checksum and unpack logic is :mod:`bench.data.fetch`.
"""
import sys

from bench.data.fetch import main

if __name__ == "__main__":
    sys.exit(main())
