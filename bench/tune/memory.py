"""Index memory, estimated from the index's layout: milvus-lite and pymilvus report no index size.

The formulas follow faiss's and hnswlib's in-memory layouts (float32 vectors, int64 ids, int32 links):

* FLAT: N·d·4.
* IVF_FLAT: N·(d·4 + 8) for the inverted lists' vectors and ids, plus nlist·d·4 for the centroids.
* IVF_SQ8: N·(d + 8), plus the centroids and two float32 per dimension for the quantiser's range.
* HNSW: N·d·4 for the vectors, N·(2M + 1)·4 for the level-0 links and their count, and the upper levels:
  a node reaches level l with probability M^-l, so N/(M − 1) upper-level slots of (M + 1)·4 bytes.

An estimate, labelled as such in every table. A store that measures its index (``index_bytes()``) wins.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional


def estimate_index_bytes(index_type: str, build: Mapping[str, Any], rows: int, dim: int) -> Optional[int]:
    """Bytes the index holds in memory by its layout, or None for a type without a formula here."""
    vectors = rows * dim * 4
    if index_type == "FLAT":
        return vectors
    if index_type == "IVF_FLAT":
        return vectors + rows * 8 + int(build["nlist"]) * dim * 4
    if index_type == "IVF_SQ8":
        return rows * (dim + 8) + int(build["nlist"]) * dim * 4 + 2 * dim * 4
    if index_type == "HNSW":
        m = int(build["M"])
        upper = rows / (m - 1) * (m + 1) * 4 if m > 1 else 0
        return int(vectors + rows * (2 * m + 1) * 4 + upper)
    return None
