from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data.images import ImageError, load_rgb
from bench.data.sample import generate_sample

SIZE = 32


def gradient(width: int = 40, height: int = 30) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, axis=0)
    return Image.fromarray(np.dstack([x, 255 - x, np.full_like(x, 90)]))


def saved(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def assert_rgb(array: np.ndarray, size: int = SIZE) -> None:
    assert array.shape == (size, size, 3) and array.dtype == np.uint8


@pytest.mark.parametrize("mode, suffix", [
    ("RGB", ".jpg"), ("L", ".jpg"), ("CMYK", ".jpg"), ("1", ".png"), ("P", ".png"), ("LA", ".png"),
    ("RGBA", ".png"), ("RGB", ".webp"), ("RGB", ".bmp"), ("I;16", ".png"), ("I", ".tif"), ("F", ".tif"),
])
def test_any_mode_loads_as_rgb(tmp_path: Path, mode: str, suffix: str) -> None:
    path = saved(gradient().convert(mode), tmp_path / f"img{suffix}")
    assert_rgb(load_rgb(path, SIZE))


def test_resize_to_requested_square_size(tmp_path: Path) -> None:
    path = saved(gradient(300, 120), tmp_path / "wide.png")
    for size in (1, 17, 224):
        assert_rgb(load_rgb(path, size), size)
    # Bilinear resize keeps the horizontal gradient: red rises left to right.
    red = load_rgb(path, 64)[32, :, 0].astype(int)
    assert red[0] < 10 and red[-1] > 245 and np.all(np.diff(red) >= 0)


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    pixels = np.zeros((20, 20, 4), dtype=np.uint8)  # hidden colour is black
    pixels[:, 10:] = (255, 0, 0, 128)  # right half: half-transparent red
    path = saved(Image.fromarray(pixels), tmp_path / "alpha.png")
    array = load_rgb(path, 20)
    assert tuple(array[10, 2]) == (255, 255, 255)
    assert np.allclose(array[10, 17], (255, 127, 127), atol=2)


def test_palette_transparency_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (10, 10), 0)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (5, 0, 10, 10))
    path = saved(image, tmp_path / "p.png", transparency=0)
    array = load_rgb(path, 10)
    assert tuple(array[5, 1]) == (255, 255, 255) and tuple(array[5, 8]) == (0, 0, 255)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.full((8, 8), 128 * 257, dtype=np.uint16)
    path = saved(Image.fromarray(values), tmp_path / "deep.png")
    with Image.open(path) as img:
        assert img.mode == "I;16"
    assert np.all(load_rgb(path, 8) == 128)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red
    pixels[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = saved(Image.fromarray(pixels), tmp_path / "rotated.jpg", exif=exif, quality=95)
    array = load_rgb(path, 20).astype(int)
    # Displayed upright, the left half becomes the top half.
    assert array[3, 10, 0] > 200 and array[3, 10, 2] < 60
    assert array[16, 10, 2] > 200 and array[16, 10, 0] < 60


def test_odd_sample_files_load(tmp_path: Path) -> None:
    image_dir, _ = generate_sample(tmp_path, 6, seed=0)  # includes CMYK, RGBA and grayscale files
    formats = set()
    for path in sorted(image_dir.iterdir()):
        assert_rgb(load_rgb(path, SIZE))
        with Image.open(path) as img:
            formats.add(img.mode)
    assert {"CMYK", "RGBA", "L", "RGB"} <= formats
    rgba = next(image_dir.glob("*.png"))
    corners = load_rgb(rgba, 64)[[0, 0, -1, -1], [0, -1, 0, -1]]
    # Transparent background stores black; loaded, it must be white unless an object covers the corner.
    assert np.any(np.all(corners == 255, axis=1))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="missing file"):
        load_rgb(tmp_path / "nope.jpg", SIZE)


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a file"):
        load_rgb(tmp_path, SIZE)


@pytest.mark.parametrize("content", [
    b"",
    np.random.default_rng(1).bytes(4096),
    b"\xff\xd8\xff\xe0" + np.random.default_rng(2).bytes(4096),  # JPEG signature, then noise
    b"\x89PNG\r\n\x1a\n" + b"\0" * 50,  # PNG signature, broken chunks
])
def test_garbage_raises_image_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError):
        load_rgb(path, SIZE)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_raises_image_error(tmp_path: Path, suffix: str) -> None:
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    data = saved(noisy, tmp_path / f"full{suffix}").read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_rgb(path, SIZE)


def test_jpeg_draft_decodes_large_jpegs_at_reduced_scale_close_to_full(tmp_path):
    rng = np.random.default_rng(1)
    smooth = Image.fromarray(rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)).resize((1024, 768),
                                                                                         Image.Resampling.BICUBIC)
    jpeg, png = tmp_path / "big.jpg", tmp_path / "big.png"
    smooth.save(jpeg, quality=95)
    smooth.save(png)
    full, draft = load_rgb(jpeg, 64), load_rgb(jpeg, 64, draft=True)
    assert draft.shape == full.shape == (64, 64, 3) and draft.dtype == np.uint8
    diff = np.abs(full.astype(int) - draft.astype(int))
    assert diff.max() > 0  # really a different decode: that is why it is an option, never the default
    assert diff.mean() < 4  # and still the same picture
    np.testing.assert_array_equal(load_rgb(png, 64, draft=True), load_rgb(png, 64))  # other formats: unchanged
