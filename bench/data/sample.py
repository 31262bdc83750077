"""A small, deterministic COCO-format dataset for tests and offline runs.

No COCO data is reachable offline, so the project draws its own: real JPEG files of
varied sizes plus an ``instances`` JSON that pycocotools loads. Each category has a
characteristic shape, colour and texture, so even a random-weight CNN's embeddings
cluster by category and recall/precision numbers mean something.

Layout under ``root``::

    root/
      images/<image_id:012d>.jpg      (one RGBA .png, see ODD_FORMATS)
      annotations/instances_sample.json
      .complete.json                   marker: generator version, num_images, seed

Everything depends only on ``(num_images, seed)``: image ``i`` is drawn from its own
generator seeded with ``(seed, i)``, so a larger sample starts with the same images.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from bench.io import atomic_write_text

# Bump when the drawing or the JSON changes, so stale samples are regenerated.
GENERATOR_VERSION = 2  # 2: skewed category distribution
IMAGES_DIR = "images"
ANNOTATIONS_FILE = "annotations/instances_sample.json"
MARKER_FILE = ".complete.json"
JPEG_QUALITY = 90
MIN_SIDE, MAX_SIDE = 160, 480
MIN_ALLOWED_SIDE = 32  # shapes and textures need a few dozen pixels to stay recognisable


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    supercategory: str
    shape: str
    colour: tuple[int, int, int]
    texture: str
    # Chance that an object is of this category. Skewed like COCO val2017 (person in about half the
    # images, several categories in under 1 %): with 1-3 objects per image, the share of images
    # holding each category runs from ~50 % (person) down to ~0.7 % (stop sign), two orders of
    # magnitude, which is what filtered search (workload=filtered) needs to span selectivities.
    weight: float


# Real COCO ids and names; shape, colour and texture are this sample's own choice,
# picked to be distinct from each other.
CATEGORIES = (
    Category(1, "person", "person", "tall_ellipse", (225, 60, 60), "hstripes", 0.31),
    Category(2, "bicycle", "vehicle", "diamond", (50, 175, 70), "checker", 0.11),
    Category(3, "car", "vehicle", "wide_rect", (45, 85, 220), "vstripes", 0.25),
    Category(13, "stop sign", "outdoor", "octagon", (240, 135, 20), "solid", 0.0035),
    Category(16, "bird", "animal", "triangle", (245, 220, 40), "dots", 0.07),
    Category(17, "cat", "animal", "star", (150, 60, 205), "diagonal", 0.045),
    Category(18, "dog", "animal", "ellipse", (135, 85, 40), "grid", 0.17),
    Category(52, "banana", "food", "crescent", (30, 200, 200), "hstripes", 0.011),
    Category(59, "pizza", "food", "wedge", (240, 100, 180), "dots", 0.025),
    Category(85, "clock", "indoor", "circle", (235, 235, 235), "rings", 0.0055),
)
CATEGORY_WEIGHTS = np.array([c.weight for c in CATEGORIES]) / sum(c.weight for c in CATEGORIES)

# Width/height ratio of each shape's box.
SHAPE_ASPECT = {
    "tall_ellipse": 0.5, "diamond": 0.8, "wide_rect": 2.0, "octagon": 1.0, "triangle": 1.1,
    "star": 1.0, "ellipse": 1.4, "crescent": 1.2, "wedge": 1.0, "circle": 1.0,
}


def odd_format(index: int) -> str:
    """Storage format of image ``index``: valid but unusual files that loaders must handle."""
    if index == 1:
        return "cmyk"  # CMYK JPEG
    if index == 2:
        return "rgba"  # PNG with a transparent background
    if index % 16 == 5:
        return "gray"  # mode L JPEG
    return "rgb"


def ensure_sample(root: Path, num_images: int, seed: int,
                  sides: tuple[int, int] = (MIN_SIDE, MAX_SIDE)) -> tuple[Path, Path]:
    """Reuse the sample in ``root`` if its marker matches, else generate it there."""
    root = Path(root)
    marker = root / MARKER_FILE
    if marker.is_file() and (root / ANNOTATIONS_FILE).is_file():
        try:
            if json.loads(marker.read_text()) == _marker(num_images, seed, sides):
                return root / IMAGES_DIR, root / ANNOTATIONS_FILE
        except (OSError, ValueError):
            pass  # unreadable marker: regenerate
    return generate_sample(root, num_images, seed, sides=sides)


def generate_sample(root: Path, num_images: int, seed: int,
                    sides: tuple[int, int] = (MIN_SIDE, MAX_SIDE)) -> tuple[Path, Path]:
    """Draw ``num_images`` images and their annotations into ``root``; return (image_dir, annotations).

    Image sides are drawn from ``sides`` = (min, max) pixels.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be positive, got {num_images}")
    sides = (int(sides[0]), int(sides[1]))
    if not MIN_ALLOWED_SIDE <= sides[0] <= sides[1]:
        raise ValueError(f"sides must be (min, max) with {MIN_ALLOWED_SIDE} <= min <= max, got {sides}")
    root = Path(root)
    image_dir, ann_path = root / IMAGES_DIR, root / ANNOTATIONS_FILE
    # The marker goes first and comes back last, so an interrupted run is redone.
    (root / MARKER_FILE).unlink(missing_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    ann_path.parent.mkdir(parents=True, exist_ok=True)

    images, annotations = [], []
    for index in tqdm(range(num_images), desc="generating sample", unit="img", disable=None):
        image_id = image_id_for(index)
        picture, objects = _draw_image(np.random.default_rng([seed, index]), sides)
        file_name = _save(picture, image_dir, image_id, odd_format(index))
        images.append({"id": image_id, "file_name": file_name,
                       "width": picture.width, "height": picture.height})
        for category_id, polygon in objects:
            annotations.append(_annotation(len(annotations) + 1, image_id, category_id, polygon))

    instances = {
        # Fixed text, no timestamps: the file must be byte-identical across runs.
        "info": {"description": f"bench synthetic COCO sample (num_images={num_images}, seed={seed})",
                 "version": str(GENERATOR_VERSION)},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c.id, "name": c.name, "supercategory": c.supercategory}
                       for c in CATEGORIES],
    }
    ann_path.write_text(json.dumps(instances))
    atomic_write_text(root / MARKER_FILE, json.dumps(_marker(num_images, seed, sides)))
    return image_dir, ann_path


def image_id_for(index: int) -> int:
    # Not contiguous, like real COCO, so nothing downstream can mistake an id for a row number.
    return 100 + 3 * index


def _marker(num_images: int, seed: int, sides: tuple[int, int] = (MIN_SIDE, MAX_SIDE)) -> dict:
    marker = {"generator_version": GENERATOR_VERSION, "num_images": num_images, "seed": seed}
    if tuple(sides) != (MIN_SIDE, MAX_SIDE):  # samples of the default size keep their marker
        marker["sides"] = list(sides)
    return marker




def _draw_image(rng: np.random.Generator,
                sides: tuple[int, int] = (MIN_SIDE, MAX_SIDE)) -> tuple[Image.Image, list[tuple[int, list]]]:
    """One RGBA picture and its objects as (category_id, polygon) pairs.

    1-3 objects, each of a category drawn with CATEGORY_WEIGHTS (skewed, like COCO). The first
    is the image's main category and is drawn large and last, on top; the others are smaller
    and sit behind it.
    """
    width, height = (int(v) for v in rng.integers(sides[0], sides[1] + 1, size=2))
    drawn = rng.choice(len(CATEGORIES), size=int(rng.integers(1, 4)), p=CATEGORY_WEIGHTS)
    main, extras = CATEGORIES[drawn[0]], [CATEGORIES[i] for i in drawn[1:]]

    canvas = _background(rng, width, height)
    alpha = np.zeros((height, width), dtype=bool)  # object pixels, used for the RGBA variant
    # Broadcastable coordinate grids: a column of y and a row of x.
    ys, xs = np.arange(height, dtype=np.float32)[:, None], np.arange(width, dtype=np.float32)[None, :]
    objects = []
    for category, scale in [(c, rng.uniform(0.2, 0.35)) for c in extras] + [(main, rng.uniform(0.45, 0.75))]:
        polygon = _place(rng, category.shape, scale * min(width, height), width, height)
        mask = _polygon_mask(polygon, width, height)
        jitter = rng.integers(-20, 21, size=3)
        colour = np.clip(np.array(category.colour) + jitter, 0, 255).astype(np.float32)
        shade = np.broadcast_to(_texture(category.texture, xs, ys, polygon), mask.shape)[mask]
        canvas[mask] = colour * (0.55 + 0.45 * shade[:, None])
        alpha |= mask
        objects.append((category.id, polygon))
    canvas += 8.0 * rng.standard_normal(canvas.shape, dtype=np.float32)  # sensor-like noise
    pixels = np.clip(canvas, 0, 255).astype(np.uint8)
    rgba = np.dstack([pixels, np.where(alpha, 255, 0).astype(np.uint8)])
    objects.reverse()  # main category first in the annotations
    return Image.fromarray(rgba), objects


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Muted low-frequency colour blotches: busy enough that objects are not on a flat field."""
    coarse = rng.integers(90, 171, size=(4, 4, 3), dtype=np.uint8)
    smooth = Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)
    return np.array(smooth, dtype=np.float32)


def _place(rng: np.random.Generator, shape: str, size: float, width: int, height: int) -> list:
    """The shape's polygon, sized ``size`` on its longer side, slightly rotated, fully inside the image."""
    aspect = SHAPE_ASPECT[shape]
    box_w, box_h = (size, size / aspect) if aspect >= 1 else (size * aspect, size)
    angle = math.radians(rng.uniform(-15, 15))
    cos, sin = math.cos(angle), math.sin(angle)
    points = [(x * box_w * cos - y * box_h * sin, x * box_w * sin + y * box_h * cos)
              for x, y in _unit_shape(shape)]
    min_x, max_x = min(p[0] for p in points), max(p[0] for p in points)
    min_y, max_y = min(p[1] for p in points), max(p[1] for p in points)
    cx = rng.uniform(-min_x, width - 1 - max_x)
    cy = rng.uniform(-min_y, height - 1 - max_y)
    return [(round(cx + x, 2), round(cy + y, 2)) for x, y in points]


def _unit_shape(shape: str) -> list[tuple[float, float]]:
    """Polygon vertices in a unit box centred on 0 (x, y in [-0.5, 0.5])."""
    def arc(start: float, stop: float, n: int, rx: float = 0.5) -> list[tuple[float, float]]:
        return [(rx * math.cos(t), 0.5 * math.sin(t)) for t in np.linspace(start, stop, n)]

    full = 2 * math.pi
    if shape in ("tall_ellipse", "ellipse", "circle"):
        return arc(0, full, 32)[:-1]
    if shape == "wide_rect":
        return [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    if shape == "diamond":
        return [(0, -0.5), (0.5, 0), (0, 0.5), (-0.5, 0)]
    if shape == "octagon":
        return arc(full / 16, full + full / 16, 9)[:-1]
    if shape == "triangle":
        return [(0, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    if shape == "star":
        return [((0.5 if k % 2 == 0 else 0.2) * math.cos(t), (0.5 if k % 2 == 0 else 0.2) * math.sin(t))
                for k, t in enumerate(np.linspace(-math.pi / 2, 1.5 * math.pi, 11)[:-1])]
    if shape == "crescent":  # outer half circle, then a flatter inner arc back
        return arc(-math.pi / 2, math.pi / 2, 16) + arc(math.pi / 2, -math.pi / 2, 16, rx=0.25)[1:-1]
    if shape == "wedge":  # a pizza slice: apex at the top, crust arc at the bottom
        crust = np.linspace(math.pi / 3, 2 * math.pi / 3, 12)
        return [(0.0, -0.5)] + [(math.cos(t), -0.5 + math.sin(t)) for t in crust]
    raise ValueError(f"unknown shape {shape!r}")


def _polygon_mask(polygon: list, width: int, height: int) -> np.ndarray:
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).polygon(polygon, fill=1)
    return np.asarray(mask, dtype=bool)


def _texture(texture: str, xs: np.ndarray, ys: np.ndarray, polygon: list) -> np.ndarray:
    """Brightness pattern in [0, 1]; the category's second visual signature after colour."""
    cx = sum(p[0] for p in polygon) / len(polygon)
    cy = sum(p[1] for p in polygon) / len(polygon)
    period = 12.0
    if texture == "solid":
        return np.ones(1, dtype=np.float32)
    if texture == "hstripes":
        return (np.floor(ys / period) % 2).astype(np.float32)
    if texture == "vstripes":
        return (np.floor(xs / period) % 2).astype(np.float32)
    if texture == "diagonal":
        return (np.floor((xs + ys) / period) % 2).astype(np.float32)
    if texture == "checker":
        return ((np.floor(xs / period) + np.floor(ys / period)) % 2).astype(np.float32)
    if texture == "grid":
        return ((xs % period > 3) & (ys % period > 3)).astype(np.float32)
    if texture == "dots":
        return (((xs % period) - period / 2) ** 2 + ((ys % period) - period / 2) ** 2 > 9).astype(np.float32)
    if texture == "rings":
        return (np.floor(np.hypot(xs - cx, ys - cy) / 8) % 2).astype(np.float32)
    raise ValueError(f"unknown texture {texture!r}")


def _save(picture: Image.Image, image_dir: Path, image_id: int, fmt: str) -> str:
    """Write the picture in format ``fmt``; return its file name (relative to image_dir)."""
    stem = f"{image_id:012d}"
    if fmt == "rgba":
        # Hidden pixels are black, so a loader that drops alpha instead of compositing shows it.
        pixels = np.asarray(picture).copy()
        pixels[pixels[..., 3] == 0, :3] = 0
        name = f"{stem}.png"
        Image.fromarray(pixels).save(image_dir / name, format="PNG")
        return name
    mode = {"rgb": "RGB", "gray": "L", "cmyk": "CMYK"}[fmt]
    name = f"{stem}.jpg"
    picture.convert("RGB").convert(mode).save(image_dir / name, format="JPEG", quality=JPEG_QUALITY)
    return name


def _annotation(ann_id: int, image_id: int, category_id: int, polygon: list) -> dict:
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    # Shoelace area of the polygon; occlusion by later objects is ignored.
    area = 0.5 * abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(polygon))))
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": [[coord for point in polygon for coord in point]],
        "area": round(area, 2),
        "bbox": [round(min(xs), 2), round(min(ys), 2), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)],
        "iscrowd": 0,
    }
