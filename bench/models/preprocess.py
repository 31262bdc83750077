"""Pixel preprocessing for each model family, in numpy, so embedding never needs TensorFlow.

Every function takes a batch of NHWC RGB images with values 0-255 (uint8 or float32) and
returns a *new* float32 array. Keras's own ``preprocess_input`` modifies a float32 array in
place and returns it; reusing such a buffer afterwards (for a parity check, a batch-1 latency
run, a cached decoded image) would silently preprocess it twice. Ours never touches the input.

The numbers are the ones keras.applications uses; tests check the results match exactly.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Optional

import numpy as np

from bench.errors import BenchError

# VGG16 / ResNet50 ("caffe"): BGR channel order, ImageNet mean per channel, no scaling.
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
# "torch" style: scale to 0-1, then standardise with the ImageNet mean and std in RGB order.
TORCH_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _as_float32_batch(images: np.ndarray) -> np.ndarray:
    """Validate the layout and return a float32 view or copy; callers must not write into it."""
    images = np.asarray(images)
    if images.ndim < 1 or images.shape[-1] != 3:
        raise ValueError(f"expected RGB images with 3 channels last (NHWC), got shape {images.shape}")
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"expected numeric pixels, got dtype {images.dtype}")
    return images.astype(np.float32, copy=False)


def caffe(images: np.ndarray) -> np.ndarray:
    """RGB -> BGR, then subtract the ImageNet BGR mean (VGG16, ResNet50)."""
    x = _as_float32_batch(images)
    # The subtraction allocates the new array; the reversed view is never written to.
    return x[..., ::-1] - CAFFE_MEAN_BGR


def tf(images: np.ndarray) -> np.ndarray:
    """Scale to [-1, 1] (MobileNetV2 and other "tf"-mode models)."""
    x = _as_float32_batch(images)
    return x / np.float32(127.5) - np.float32(1.0)


def torch(images: np.ndarray) -> np.ndarray:
    """Scale to [0, 1], then standardise per channel with the ImageNet mean and std."""
    x = _as_float32_batch(images)
    return (x / np.float32(255.0) - TORCH_MEAN_RGB) / TORCH_STD_RGB


def none(images: np.ndarray) -> np.ndarray:
    """Float32 copy of the 0-255 pixels: EfficientNet rescales inside the model itself."""
    return _as_float32_batch(images).copy()


PREPROCESSORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "caffe": caffe,
    "tf": tf,
    "torch": torch,
    "none": none,
}


def get_preprocessor(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The preprocessing function called ``name``; unknown names are a user error."""
    try:
        return PREPROCESSORS[name]
    except KeyError:
        valid = ", ".join(sorted(PREPROCESSORS))
        raise BenchError(f"unknown model.preprocessing={name!r}: choose one of {valid}") from None


Hook = Callable[[np.ndarray], Optional[np.ndarray]]


def load_preprocess_hook(spec: Optional[str]) -> Optional[Hook]:
    """Import ``"module:function"``; the function gets each preprocessed float32 batch.

    It returns the batch to feed the model (or None to feed the batch it was given). Its time is
    counted as preprocessing. Tests use it to inject a deliberate slowdown and check that the
    stats put the time where it belongs; shipped configs never set it.
    """
    if not spec:
        return None
    module_name, sep, func_name = spec.partition(":")
    if not (sep and module_name and func_name):
        raise BenchError(f"model.preprocess_hook={spec!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BenchError(f"model.preprocess_hook={spec!r}: cannot import {module_name} ({err})") from err
    func = getattr(module, func_name, None)
    if not callable(func):
        raise BenchError(f"model.preprocess_hook={spec!r}: {module_name} has no function {func_name}")
    return func
