"""Decode any image file, or an image already in memory, into the one array shape the models take:
(size, size, 3) uint8 RGB."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


if TYPE_CHECKING:
    from bench.data.dataset import ImageRecord


class ImageError(Exception):
    """An image that cannot be used; ``str(err)`` is a short reason, recorded as a skip."""


def record_rgb(record: "ImageRecord", size: int, draft: bool = False) -> np.ndarray:
    """The image of a dataset record: its in-memory pixels when it has them, else its file."""
    if record.pixels is not None:
        return array_rgb(record.pixels, size)
    return load_rgb(record.path, size, draft=draft)


def array_rgb(pixels: np.ndarray, size: int) -> np.ndarray:
    """A uint8 grayscale (h, w) or RGB (h, w, 3) array, resized as :func:`load_rgb` resizes a decoded file.

    Grayscale goes into all three channels (Pillow's "L" to "RGB"), as a grayscale PNG of the same
    pixels would: embedding Fashion-MNIST from its IDX arrays gives the vectors that PNG copies would.
    """
    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).convert("RGB")
    return np.array(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def load_rgb(path: Path, size: int, draft: bool = False) -> np.ndarray:
    """Read ``path``, apply its EXIF orientation, convert to RGB and resize (bilinear) to size x size.

    ``draft=True`` lets the JPEG decoder scale down by 1/2, 1/4 or 1/8 while decoding (never below
    ``size``): several times faster on large photos, but the pixels differ slightly from a full
    decode, so it is an option recorded with the results (model.jpeg_draft), never the default.
    """
    try:
        with Image.open(path) as img:
            if draft and img.format == "JPEG":
                img.draft(None, (size, size))
            img.load()  # decode now: a truncated or corrupt file fails here, not later
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
    except FileNotFoundError:
        raise ImageError("missing file") from None
    except IsADirectoryError:
        raise ImageError("not a file") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except UnidentifiedImageError:
        raise ImageError("not a recognised image format") from None
    except Image.DecompressionBombError as err:
        raise ImageError(f"too many pixels ({err})") from None
    # Decoders report damaged data as OSError ("image file is truncated"), SyntaxError
    # ("broken PNG file"), ValueError or EOFError, depending on the format.
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"corrupt or truncated image ({err})") from None
    return np.array(rgb.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        return _high_bit_depth_to_rgb(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        # Composite on white, not black: transparent areas of cut-outs and logos are meant
        # to be seen on a light page, and a plain convert("RGB") would expose whatever
        # colour the hidden pixels happen to store (often black), changing the embedding.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV
    except ValueError:
        raise ImageError(f"unsupported image mode {img.mode}") from None


def _high_bit_depth_to_rgb(img: Image.Image) -> Image.Image:
    # PIL's own convert clips 16-bit values at 255, turning most of the image white; scale instead.
    values = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or (img.mode == "I" and values.max(initial=0) > 255):
        values = values / 257.0  # 0..65535 -> 0..255 exactly
    elif img.mode == "F" and values.max(initial=0) <= 1.0:
        values = values * 255.0  # float images are usually 0..1
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")
