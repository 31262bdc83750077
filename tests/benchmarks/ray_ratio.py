"""runtime.engine=ray (actors x CPUs) against runtime.engine=local, end-to-end images/s, in one process and one run.

    .venv/bin/python tests/benchmarks/ray_ratio.py [model] [--images 320] [--size 224] [--repeats 2]
        [--actors 2] [--cpus-per-actor 1]

The model (random weights, converted once into models/) embeds the generated COCO-format sample with each
engine ``--repeats`` times, interleaved (local, ray, local, ray, ...) so drift on a shared machine hits both
alike, each into a fresh embedding cache. One local Ray (num_cpus = the machine's cores) serves every Ray
run; its start-up is printed once, apart. Per run: end-to-end images/s over the driver's wall time (for Ray
this includes starting the actors and their sessions), inference images/s, and for Ray the per-actor busy
rate and the overheads bench records (first result, scheduling overhead, idle share, gap between batches).
The last lines give the median of each engine, their ratio, and the scale-out arithmetic for N nodes.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.config import RayConfig, RuntimeConfig, register_configs  # noqa: E402
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
    parser.add_argument("model", nargs="?", default="resnet50")
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--cpus-per-actor", type=int, default=1)
    args = parser.parse_args()
    register_configs()
    import ray

    model_cfg, dataset_cfg = config(args.model, args.images, args.size)
    model = ensure_onnx(model_cfg, ROOT / "models")
    dataset = load_dataset(dataset_cfg)
    t0 = time.perf_counter()
    ray.init(include_dashboard=False, logging_level="WARNING")
    print(f"ray {ray.__version__} init: {time.perf_counter() - t0:.1f} s, resources {ray.cluster_resources()}; "
          f"{len(dataset.images)} images, {args.model} {args.size}px batch {model_cfg.batch_size}, "
          f"cpu_count {os.cpu_count()}")
    engines = {"local": RuntimeConfig(),
               "ray": RuntimeConfig(engine="ray",
                                    ray=RayConfig(actors=args.actors, cpus_per_actor=args.cpus_per_actor))}
    runs: dict[str, list[dict]] = {name: [] for name in engines}
    print("| engine | run | e2e img/s | inference img/s | threads/session | per-actor busy img/s | first result s "
          "| sched. overhead s | idle share | gap/batch ms | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for repeat in range(args.repeats):
        for name, runtime in engines.items():
            with tempfile.TemporaryDirectory() as cache:
                stats = embed_images(model, dataset.images, replace(model_cfg), Path(cache), runtime).stats
            runs[name].append(stats)
            eng = stats.get("engine", {})
            per_actor = ", ".join(f"{a['images_per_s_busy']:.1f}" for a in eng.get("per_actor", {}).values()) or "-"
            fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
            print(f"| {name} | {repeat + 1} | {stats['images_per_s_end_to_end']:.2f} | "
                  f"{stats['images_per_s_inference']:.2f} | {stats['threads_in_use']} | {per_actor} | "
                  f"{fmt(eng.get('first_result_s'), '.2f')} | {fmt(eng.get('scheduling_overhead_s'), '.2f')} | "
                  f"{fmt(eng.get('idle_share'), '.3f')} | "
                  f"{fmt((eng.get('dispatch_gap_s_per_batch') or 0) * 1e3, '.1f')} | "
                  f"{stats['seconds']['total_s']:.1f} |", flush=True)
    median = {name: statistics.median(s["images_per_s_end_to_end"] for s in stats) for name, stats in runs.items()}
    print(f"\nmedian e2e img/s: local {median['local']:.2f}, ray {median['ray']:.2f}; "
          f"ray/local = {median['ray'] / median['local']:.3f}")
    last = runs["ray"][-1]["engine"]
    actor_rate = statistics.median(a["images_per_s_busy"] for s in runs["ray"]
                                   for a in s["engine"]["per_actor"].values())
    fixed = statistics.median(s["engine"]["first_result_s"] for s in runs["ray"])
    gap = statistics.median(s["engine"]["dispatch_gap_s_per_batch"] or 0.0 for s in runs["ray"])
    batch = model_cfg.batch_size
    per_image = 1.0 / actor_rate + gap / batch  # seconds of one actor per image, its dispatch gap included
    print(f"scale-out inputs: actor busy rate {actor_rate:.2f} img/s, fixed start-up {fixed:.2f} s, "
          f"gap {gap * 1e3:.1f} ms per batch of {batch}; {last['actors']} actors per node")
    for nodes in (1, 4, 16, 64):
        for total in (118_287, 1_000_000):
            rate = nodes * last["actors"] / per_image
            print(f"  N={nodes:>3} nodes, {total:>9,} images: {rate:8.1f} img/s, {fixed + total / rate:9.0f} s")
    ray.shutdown()


if __name__ == "__main__":
    main()
