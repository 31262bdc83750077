"""`python -m bench.fetch coco|fashion-mnist ...`: documented commands, kept at the top level.

COCO's download, checksum and unpack logic is :mod:`bench.data.fetch`; Fashion-MNIST's, which
reuses its resumable download, is :mod:`bench.data.fetch_fashion_mnist`.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from bench.data import fetch, fetch_fashion_mnist


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fashion-mnist"]:
        return fetch_fashion_mnist.main(argv[1:])
    return fetch.main(argv)


if __name__ == "__main__":
    sys.exit(main())
