"""onnxruntime sessions per the `runtime` config: a provider that does not really load is an error.

This machine's onnxruntime is the CPU build, so asking for CUDA is the real "provider missing" case.
The CUDA tests run only where onnxruntime-gpu and a GPU exist, and skip with the reason elsewhere.
"""
from __future__ import annotations

import shutil

import numpy as np
import onnxruntime as ort
import pytest

from bench.config import RuntimeConfig
from bench.errors import BenchError
from bench.models.convert import ensure_onnx
from bench.models.runtime import (
    CPU,
    cache_tag,
    check_provider,
    describe_runtime,
    describe_session,
    make_session,
    validate_runtime,
)
from tests.helpers import small_model_cfg

CUDA = RuntimeConfig(name="cuda", provider="CUDAExecutionProvider", provider_options={"device_id": 0})
HAS_CUDA_BUILD = "CUDAExecutionProvider" in ort.get_available_providers()
NO_GPU_REASON = ("needs onnxruntime-gpu (pip install -e '.[gpu]') and an NVIDIA GPU; this machine has "
                 f"onnxruntime providers {ort.get_available_providers()} and "
                 f"{'an' if shutil.which('nvidia-smi') else 'no'} nvidia-smi")


@pytest.fixture(scope="session")
def onnx_path(tmp_path_factory):
    return ensure_onnx(small_model_cfg(), tmp_path_factory.getbasetemp() / "shared-onnx-models").onnx_path


def test_cpu_session_with_settings(onnx_path):
    cfg = RuntimeConfig(intra_op_threads=1, graph_optimization="basic")
    session = make_session(onnx_path, cfg)
    assert session.get_providers() == [CPU]
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    info = describe_session(session, cfg)
    assert info["execution_provider"] == CPU and info["threads_in_use"] == 1 and info["device"]
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((2, 64, 64, 3), np.float32)})[0]
    assert out.shape == (2, 1280)
    assert describe_runtime()["threads_in_use"] >= 1  # 0 (onnxruntime's default) is reported as a count


@pytest.mark.skipif(HAS_CUDA_BUILD, reason="this onnxruntime has the CUDA provider: nothing is missing to test")
def test_missing_cuda_provider_is_a_one_line_error_naming_the_install(onnx_path):
    with pytest.raises(BenchError) as err:
        make_session(onnx_path, CUDA)
    message = str(err.value)
    assert "runtime.provider=CUDAExecutionProvider is not in this onnxruntime" in message
    assert "pip install -e '.[gpu]'" in message and "\n" not in message


class _FellBack:
    """What onnxruntime returns when a provider cannot load: a session on the CPU alone."""

    def get_providers(self):
        return [CPU]


def test_silent_fallback_to_cpu_is_refused():
    with pytest.raises(BenchError, match="did not load: onnxruntime fell back to CPUExecutionProvider .*no visible "
                                         "NVIDIA GPU"):
        check_provider(_FellBack(), CUDA)
    check_provider(_FellBack(), RuntimeConfig())  # the CPU asked for, the CPU given


def test_bad_runtime_settings():
    with pytest.raises(BenchError, match="graph_optimization='fast': choose one of disable, basic, extended, all"):
        validate_runtime(RuntimeConfig(graph_optimization="fast"))
    with pytest.raises(BenchError, match="intra_op_threads=-1 must be >= 0"):
        validate_runtime(RuntimeConfig(intra_op_threads=-1))


def test_cache_tag_only_for_non_default_runtimes():
    assert cache_tag(None) == "" and cache_tag(RuntimeConfig()) == ""
    assert cache_tag(RuntimeConfig(intra_op_threads=1)) != cache_tag(CUDA) != ""


@pytest.mark.skipif(not (HAS_CUDA_BUILD and shutil.which("nvidia-smi")), reason=NO_GPU_REASON)
def test_cuda_session_really_runs_on_the_gpu(onnx_path):
    session = make_session(onnx_path, CUDA)
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    info = describe_session(session, CUDA)
    assert info["execution_provider"] == "CUDAExecutionProvider" and "GPU 0" in info["device"]
    out = session.run(None, {session.get_inputs()[0].name: np.zeros((2, 64, 64, 3), np.float32)})[0]
    assert out.shape == (2, 1280)
