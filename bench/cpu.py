"""The CPU features that pick onnxruntime's integer kernels, and a short class name for them.

INT8 results depend on them. Without VNNI, onnxruntime's x86 u8s8 kernels add pairs of u8 x s8
products in 16 bits with saturation, so a model quantized without ``reduce_range`` can lose much of
its fidelity on an AVX2-only CPU and keep it on one with VNNI (onnxruntime's quantization guide names
this and advises ``reduce_range`` or U8U8 there). FP32 results do not depend on the class.

The class is recorded in every run's provenance, and the regression gate compares INT8 rows exactly
only between runs of the same class (see :mod:`bench.gate.cpu_class`).

``BENCH_CPU_CLASS`` overrides the *recorded* class, for tests of that logic only: no session can pick
its machine. It never changes which kernels run, nor what ``model.quant.reduce_range=auto`` resolves
to, which always follow the detected features.
"""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Optional

OVERRIDE_ENV = "BENCH_CPU_CLASS"
# Precisions whose results depend on the CPU class; every other precision (fp32, fp16) does not.
CPU_DEPENDENT_PRECISIONS = ("int8", "int8_dynamic")
# /proc/cpuinfo flag names, by architecture; "amx" is reported for amx_int8 (the one INT8 uses).
X86_FEATURES = {"avx2": "avx2", "avx512f": "avx512f", "avx512_vnni": "avx512_vnni", "avx_vnni": "avx_vnni",
                "amx": "amx_int8"}
ARM64_FEATURES = {"asimddp": "asimddp", "i8mm": "i8mm", "sve": "sve"}


def architecture(machine: Optional[str] = None) -> str:
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64", "i686", "i386"):
        return "x86"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    return machine or "unknown"


def read_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first processor's feature flags (x86 "flags", arm64 "Features"); empty where unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def features_of(arch: str, flags: set[str]) -> dict[str, bool]:
    """The features that matter for INT8 kernels on this architecture, each True or False."""
    table = X86_FEATURES if arch == "x86" else ARM64_FEATURES if arch == "arm64" else {}
    return {name: flag in flags for name, flag in table.items()}


def class_of(arch: str, features: dict[str, bool]) -> str:
    """A short name for the INT8 kernel family: x86-amx, x86-avx512vnni, x86-avxvnni, x86-avx512, x86-avx2, ..."""
    if arch == "x86":
        for feature, name in (("amx", "amx"), ("avx512_vnni", "avx512vnni"), ("avx_vnni", "avxvnni"),
                              ("avx512f", "avx512"), ("avx2", "avx2")):
            if features.get(feature):
                return f"x86-{name}"
        return "x86-sse"
    if arch == "arm64":
        for feature, name in (("i8mm", "i8mm"), ("asimddp", "dotprod")):
            if features.get(feature):
                return f"arm64-{name}"
        return "arm64"
    return arch


def has_int8_dot_product(arch: str, features: dict[str, bool]) -> bool:
    """Whether the CPU multiplies and adds u8 x s8 in 32 bits (VNNI, AMX, or arm64 dot products)."""
    if arch == "x86":
        return any(features.get(f) for f in ("avx512_vnni", "avx_vnni", "amx"))
    return True  # arm64 and others: onnxruntime's kernels do not saturate in 16 bits there


@functools.lru_cache(maxsize=1)
def detect() -> dict:
    """This machine's architecture, INT8-relevant features and class (the detected one, no override)."""
    arch = architecture()
    features = features_of(arch, read_flags())
    return {"arch": arch, "features": features, "class": class_of(arch, features),
            "int8_dot_product": has_int8_dot_product(arch, features)}


def describe() -> dict:
    """What goes into provenance: the detected features, and the class (overridden only by tests)."""
    detected = detect()
    info = {"cpu_class": detected["class"], "cpu_features": dict(detected["features"]),
            "int8_dot_product": detected["int8_dot_product"]}
    override = os.environ.get(OVERRIDE_ENV, "").strip()
    if override:
        info["cpu_class"] = override
        info["cpu_class_detected"] = detected["class"]
        info["cpu_class_override"] = OVERRIDE_ENV
    return info
