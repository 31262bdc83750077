"""onnxruntime sessions as the `runtime` config says: execution provider, threads, graph optimisation.

onnxruntime falls back to the CPU *silently* when a provider cannot load (no onnxruntime-gpu, no
device, missing CUDA libraries): the session then lists only CPUExecutionProvider. So every
session is checked after it is made, and a provider that is not really in use is an error naming
what to install, never a CPU run labelled as a GPU run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any, Optional

import onnxruntime as ort

from bench.config import RuntimeConfig
from bench.errors import BenchError
from bench.provenance import hardware

CPU = "CPUExecutionProvider"
GRAPH_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# What to install for a provider this onnxruntime build lacks.
INSTALL_HINTS = {
    "CUDAExecutionProvider": "install onnxruntime-gpu in place of onnxruntime (pip install -e '.[gpu]', "
                             "see docs/models-and-variants.md, GPU)",
    "TensorrtExecutionProvider": "install onnxruntime-gpu with TensorRT (see onnxruntime.ai/docs/execution-providers)",
}
# Why a provider that is installed may still not load.
LOAD_HINTS = {
    "CUDAExecutionProvider": "no visible NVIDIA GPU, or the CUDA/cuDNN libraries onnxruntime-gpu needs are "
                             "missing (check nvidia-smi and CUDA_VISIBLE_DEVICES)",
}
NVIDIA_SMI_TIMEOUT_S = 5.0
DEFAULT = RuntimeConfig()


def validate_runtime(cfg: RuntimeConfig) -> None:
    """Settings checks, and whether this onnxruntime build has the provider at all (before any work)."""
    if cfg.graph_optimization not in GRAPH_OPTIMIZATION:
        raise BenchError(f"runtime.graph_optimization={cfg.graph_optimization!r}: choose one of "
                         f"{', '.join(GRAPH_OPTIMIZATION)}")
    if cfg.intra_op_threads < 0:
        raise BenchError(f"runtime.intra_op_threads={cfg.intra_op_threads} must be >= 0 (0: onnxruntime's default)")
    available = ort.get_available_providers()
    if cfg.provider not in available:
        hint = INSTALL_HINTS.get(cfg.provider, "install an onnxruntime build that has it")
        raise BenchError(f"runtime.provider={cfg.provider} is not in this onnxruntime {ort.__version__} (it has "
                         f"{', '.join(available)}): {hint}, or use runtime=cpu")


def make_session(onnx_path: Path | str | bytes, cfg: Optional[RuntimeConfig] = None) -> ort.InferenceSession:
    """An InferenceSession on the configured provider, checked to really use it; from a file, or from the model's
    bytes (a Ray actor on another node, which cannot read the driver's models/ folder)."""
    cfg = cfg or DEFAULT
    validate_runtime(cfg)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(cfg.intra_op_threads)
    options.graph_optimization_level = GRAPH_OPTIMIZATION[cfg.graph_optimization]
    # The CPU provider stays last in the list: it runs the nodes a GPU provider has no kernel for.
    providers: list[Any] = [(cfg.provider, dict(cfg.provider_options))]
    if cfg.provider != CPU:
        providers.append(CPU)
    try:
        source = onnx_path if isinstance(onnx_path, bytes) else str(onnx_path)
        session = ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as err:  # onnxruntime raises its own types (Fail, RuntimeException, ...)
        detail = " ".join(str(err).split())[:300]
        name = "the model bytes" if isinstance(onnx_path, bytes) else Path(onnx_path).name
        raise BenchError(f"onnxruntime cannot open {name} with {cfg.provider}: {detail}"
                         f"{_load_hint(cfg)}") from err
    check_provider(session, cfg)
    return session


def check_provider(session: ort.InferenceSession, cfg: RuntimeConfig) -> None:
    """The session's first provider must be the one asked for: onnxruntime's fallback is silent."""
    in_use = session.get_providers()
    if not in_use or in_use[0] != cfg.provider:
        raise BenchError(f"runtime.provider={cfg.provider} did not load: onnxruntime fell back to "
                         f"{', '.join(in_use) or 'nothing'}{_load_hint(cfg)}; or use runtime=cpu")


def describe_session(session: ort.InferenceSession, cfg: Optional[RuntimeConfig] = None) -> dict:
    """What ran the model, for embedding stats and tables: provider, device, threads, optimisation."""
    cfg = cfg or DEFAULT
    return {"execution_provider": session.get_providers()[0], "providers": session.get_providers(),
            **describe_runtime(cfg)}


def describe_runtime(cfg: Optional[RuntimeConfig] = None) -> dict:
    """The configured runtime with its device's name and the thread count it means, for provenance."""
    cfg = cfg or DEFAULT
    threads = int(cfg.intra_op_threads)
    return {"runtime": cfg.name, "provider": cfg.provider, "device": device_name(cfg),
            # 0 is onnxruntime's default: one thread per physical core.
            "intra_op_threads": threads, "threads_in_use": threads or physical_cores(),
            "graph_optimization": cfg.graph_optimization, "cpu_count": os.cpu_count(),
            "onnxruntime_version": ort.__version__}


def cache_tag(cfg: Optional[RuntimeConfig]) -> str:
    """'' for the default CPU runtime, else what identifies the runtime: it goes into the embedding
    cache key, so a GPU run or another thread count never reuses vectors and timings of another runtime
    (and the caches made before runtimes existed stay valid)."""
    if cfg is None or _identity(cfg) == _identity(DEFAULT):
        return ""
    return json.dumps(_identity(cfg), sort_keys=True)


def _identity(cfg: RuntimeConfig) -> dict:
    return {"provider": cfg.provider, "options": {str(k): str(v) for k, v in dict(cfg.provider_options).items()},
            "threads": int(cfg.intra_op_threads), "graph_optimization": cfg.graph_optimization}


def device_name(cfg: RuntimeConfig) -> str:
    if cfg.provider == CPU:
        return hardware()["cpu"]
    if cfg.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        device_id = int(dict(cfg.provider_options).get("device_id", 0))
        return _nvidia_gpu_name(device_id) or f"CUDA device {device_id}"
    return cfg.provider


@cache
def _nvidia_gpu_name(device_id: int) -> Optional[str]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader", "-i", str(device_id)],
                             capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    name = out.stdout.strip().splitlines()
    return f"{name[0]} (GPU {device_id})" if out.returncode == 0 and name else None


@cache
def physical_cores() -> int:
    """Distinct (socket, core) pairs in /proc/cpuinfo: what onnxruntime's default thread count follows."""
    cores: set[tuple[str, str]] = set()
    physical = core = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                physical = value.strip()
            elif key == "core id":
                core = value.strip()
            elif not key and physical is not None and core is not None:
                cores.add((physical, core))
                physical = core = None
        if physical is not None and core is not None:
            cores.add((physical, core))
    except OSError:
        pass
    return len(cores) or os.cpu_count() or 1


def _load_hint(cfg: RuntimeConfig) -> str:
    hint = LOAD_HINTS.get(cfg.provider)
    return f" ({hint})" if hint else ""
