"""INT8 rows across CPU classes: exact against a baseline of the same class, floor checks against another.

onnxruntime picks its INT8 kernels by CPU features (:mod:`bench.cpu`): without VNNI, u8 x s8 products are
added in 16 bits with saturation, so the same INT8 model gives other embeddings on an AVX2-only CPU than on
one with VNNI. FP32 results are the same on both. So a baseline measured on one class cannot judge the
INT8 rows of another exactly; what it can still catch is broken quantization, which falls far below the
floors that every class reaches (``cpu_class_floors`` in the gate config).
"""
from __future__ import annotations

from typing import Optional

from bench.cpu import CPU_DEPENDENT_PRECISIONS
from bench.schema import Results

NOT_COMPARED = "not compared"


def depends_on_cpu_class(result: Optional[Results]) -> bool:
    """Whether this run's quality rows depend on the CPU class: an INT8 variant's do, FP32 and FP16 do not."""
    return result is not None and result.precision in CPU_DEPENDENT_PRECISIONS


def classes(base: Optional[Results], cur: Optional[Results]) -> Optional[tuple[str, str]]:
    """(baseline class, current class) when the two runs' classes differ and the rows depend on them, else None."""
    if base is None or cur is None or not (depends_on_cpu_class(base) or depends_on_cpu_class(cur)):
        return None
    pair = (base.cpu_class, cur.cpu_class)
    return pair if pair[0] != pair[1] else None


def floor_note(baseline_class: str, floor: Optional[float]) -> str:
    how = f"floor check ≥ {floor:g}" if floor is not None else f"{NOT_COMPARED} (no floor set for it)"
    return f"other CPU class (baseline {baseline_class}): {how}"
