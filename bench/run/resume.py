"""What a rerun of the same config reuses after an interrupt, given the stage the interrupt came in.

Every cache is written atomically when its step completes (the generated sample, the ONNX file, each
embedding shard, a filled collection), so what survives is known from the stage alone: the console names
it instead of promising a resume that will not happen.
"""
from __future__ import annotations

from bench.config import Config
from bench.stores.registry import capabilities

# The runner's stages in order (bench.runner); a workload's stage runs inside the store stages.
STAGES = ("setup", "dataset", "convert", "embed", "exact_ground_truth", "insert", "build_and_load_index")


def _reached(stage: str, step: str) -> bool:
    """Whether ``step`` had finished when ``stage`` was interrupted (a later stage, or a workload's)."""
    position = STAGES.index(stage) if stage in STAGES else len(STAGES)
    return position > STAGES.index(step)


def rerun_reuses(stage: str, cfg: Config) -> str:
    """A phrase for the console, e.g. "a rerun reuses the ONNX model and resumes the embedding from its saved
    shards"."""
    reused = []
    if cfg.dataset.kind == "coco_sample" and _reached(stage, "dataset"):
        reused.append("the generated sample images")
    if _reached(stage, "convert"):
        reused.append("the converted ONNX model")
    if stage == "embed":
        reused.append("the embedding shards saved so far (it resumes the embedding)")
    elif _reached(stage, "embed"):
        reused.append("the cached embeddings")
    scratch = cfg.workload.kind == "streaming"  # its collection is dropped at the end of every run
    if _reached(stage, "insert") and capabilities(cfg.store.kind).persistent and not scratch:
        reused.append(f"the filled {cfg.store.kind} collection (the index is built again)")
    if not reused:
        return "a rerun starts from the beginning"
    return "a rerun reuses " + (", ".join(reused[:-1]) + " and " if len(reused) > 1 else "") + reused[-1]
