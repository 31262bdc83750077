"""Our numpy preprocessing must equal keras.applications' exactly, without modifying its input."""
from __future__ import annotations

import os

import numpy as np
import pytest

from bench.errors import BenchError
from bench.models.preprocess import PREPROCESSORS, get_preprocessor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def keras_apps():
    import keras

    return keras.applications


@pytest.fixture
def batch_uint8() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize("name, keras_fn", [
    ("caffe", lambda apps, x: apps.vgg16.preprocess_input(x)),
    ("caffe", lambda apps, x: apps.resnet50.preprocess_input(x)),
    ("tf", lambda apps, x: apps.mobilenet_v2.preprocess_input(x)),
    ("torch", lambda apps, x: apps.imagenet_utils.preprocess_input(x, mode="torch")),
])
def test_matches_keras_exactly(keras_apps, batch_uint8, name, keras_fn):
    images = batch_uint8.astype(np.float32)
    # Keras modifies float32 arrays in place, so it gets a copy of its own.
    expected = np.asarray(keras_fn(keras_apps, images.copy()))
    actual = PREPROCESSORS[name](images)
    assert actual.dtype == np.float32
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("name", sorted(PREPROCESSORS))
def test_returns_new_float32_array_and_leaves_input_alone(batch_uint8, name):
    for images in (batch_uint8, batch_uint8.astype(np.float32)):
        before = images.copy()
        out = get_preprocessor(name)(images)
        np.testing.assert_array_equal(images, before)
        assert out.dtype == np.float32 and out.shape == images.shape
        assert not np.shares_memory(out, images)
        out += 1000  # writing into the result must not reach the caller's batch
        np.testing.assert_array_equal(images, before)


def test_uint8_and_float32_inputs_agree(batch_uint8):
    for fn in PREPROCESSORS.values():
        np.testing.assert_array_equal(fn(batch_uint8), fn(batch_uint8.astype(np.float32)))


def test_caffe_is_bgr_minus_mean():
    pixel = np.array([[[[10, 20, 30]]]], dtype=np.uint8)  # R=10, G=20, B=30
    out = get_preprocessor("caffe")(pixel)[0, 0, 0]
    np.testing.assert_allclose(out, [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)


def test_none_is_passthrough(batch_uint8):
    np.testing.assert_array_equal(get_preprocessor("none")(batch_uint8), batch_uint8.astype(np.float32))


def test_unknown_name_lists_valid_ones():
    with pytest.raises(BenchError) as err:
        get_preprocessor("inception")
    assert all(name in str(err.value) for name in ("caffe", "tf", "torch", "none"))


def test_rejects_channels_first():
    with pytest.raises(ValueError):
        get_preprocessor("tf")(np.zeros((1, 3, 8, 8), dtype=np.uint8))
