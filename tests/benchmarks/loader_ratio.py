"""End-to-end against inference-only images/s, inline loop against the pipelined loader, in one process.

    .venv/bin/python tests/benchmarks/loader_ratio.py [model ...] [--repeats 2] [--workers 0,auto]
        [--images 240] [--size 224]

For each model (random weights, converted once into models/), each decode_workers setting is run
``--repeats`` times, interleaved (0, auto, 0, auto, ...) so drift on a shared machine hits both
alike, each into a fresh embedding cache. It prints one row per run and the median per setting:
end-to-end img/s, inference img/s (time inside session.run), their ratio, and where the time went
(decode, preprocess and loader-wait seconds). ``e2e/inf_inline`` divides the end-to-end rate by the
inline run's inference rate: decode threads compete with onnxruntime for the cores, which slows
inference itself, and only this column shows it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.config import register_configs  # noqa: E402
from bench.data.dataset import load_dataset  # noqa: E402
from bench.models.convert import ensure_onnx  # noqa: E402
from bench.models.embed import embed_images  # noqa: E402


def config(model: str, images: int, size: int):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model}", "model.weights=random", f"model.input_size={size}",
                                           f"dataset.num_images={images}",
                                           f"dataset.root={ROOT}/data/coco_sample_n{images}_s0"])
    return OmegaConf.to_object(cfg.model), OmegaConf.to_object(cfg.dataset)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*", default=["mobilenet_v2", "resnet50", "vgg16"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", default="0,auto")
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    register_configs()
    settings = [None if w == "auto" else int(w) for w in args.workers.split(",")]
    print("| model | decode_workers | e2e img/s | inference img/s | e2e/inference | e2e/inf_inline "
          "| decode s | preprocess s | wait s | total s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        model_cfg, dataset_cfg = config(name, args.images, args.size)
        model = ensure_onnx(model_cfg, ROOT / "models")
        dataset = load_dataset(dataset_cfg)
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeats):
            for workers in settings:
                with tempfile.TemporaryDirectory() as cache:
                    stats = embed_images(model, dataset.images, replace(model_cfg, decode_workers=workers),
                                         Path(cache)).stats
                runs.setdefault(str(stats["loader"]["decode_workers"]) if workers is not None else
                                f"auto={stats['loader']['decode_workers']}", []).append(stats)
        inline_inf = statistics.median(s["images_per_s_inference"] for s in runs.get("0", [])) if "0" in runs else None
        for label, stats_list in runs.items():
            for s in stats_list + [None]:
                if s is None:  # the median row
                    e2e = statistics.median(x["images_per_s_end_to_end"] for x in stats_list)
                    inf = statistics.median(x["images_per_s_inference"] for x in stats_list)
                    sec = {k: statistics.median(x["seconds"][k] for x in stats_list)
                           for k in ("decode_s", "preprocess_s", "loader_wait_s", "total_s")}
                    tag = f"**{label} (median)**"
                else:
                    e2e, inf, sec, tag = s["images_per_s_end_to_end"], s["images_per_s_inference"], s["seconds"], label
                versus_inline = f"{e2e / inline_inf:.3f}" if inline_inf else "-"
                print(f"| {name} | {tag} | {e2e:.1f} | {inf:.1f} | {e2e / inf:.3f} | {versus_inline} | "
                      f"{sec['decode_s']:.2f} | {sec['preprocess_s']:.2f} | {sec['loader_wait_s']:.2f} | "
                      f"{sec['total_s']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
