"""runtime.engine=ray: Ray Data's map_batches over a fixed pool of model actors, on this machine or a cluster.

The image records (id and path, no pixels) go to Ray Data in blocks of one batch each; every actor
holds one onnxruntime session with ``intra_op_num_threads`` set to its CPUs (Ray's OMP_NUM_THREADS does
not reach onnxruntime's own thread pool) and decodes, preprocesses and embeds its batches itself, so
the driver never touches pixels. Each image path must therefore be readable, under the same name, on
every worker: a local path on one machine, a shared mount (NFS, EFS, a bucket mounted with FUSE) on a
cluster. The ONNX file is not: its bytes go to the actors through Ray's object store.

The driver collects the vectors into the same shard writer the local engine uses, so a Ray run
resumes a local run's shards and the other way round, and skipped images carry the local engine's
reasons (the same decoder). A killed actor is restarted and its batches retried (bench.models.engines
.ray_compat); rows of a batch that arrive twice after a retry are kept once and counted. Ctrl-C saves
the shards, like the local engine.

Besides the embedding stats, the run reports each actor's images/s and busy time, the driver's wall
time and what Ray's scheduling cost around the model calls (``engine`` in the stats).
"""
from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from bench.config import RuntimeConfig
from bench.data.dataset import ImageRecord, Skip
from bench.errors import BenchError
from bench.measure.clock import Stopwatch, timed
from bench.measure.statistics import embedding_spread
from bench.measure.timing import summarize_latencies
from bench.models.convert import ConvertedModel
from bench.models.engines import ray_cluster
from bench.models.engines.base import EmbedJob, EngineRun, RunClock, ShardSaving
from bench.models.engines.ray_compat import actor_pool_args, items_dataset
from bench.models.inference import infer, l2_normalise
from bench.models.loader import BatchDecoder
from bench.models.preprocess import get_preprocessor, load_preprocess_hook
from bench.models.runtime import describe_runtime, make_session

log = logging.getLogger(__name__)


def validate(runtime: RuntimeConfig) -> None:
    ray_cluster.check_installed()
    ray_cluster.validate_address(runtime.ray.address)
    if runtime.ray.actors < 1 or runtime.ray.cpus_per_actor < 1:
        raise BenchError(f"runtime.ray.actors={runtime.ray.actors} and runtime.ray.cpus_per_actor="
                         f"{runtime.ray.cpus_per_actor} must be positive integers")


def actor_runtime(runtime: RuntimeConfig) -> RuntimeConfig:
    """The runtime each actor's session gets: the run's, with one intra-op thread per CPU the actor holds.

    A plain dataclass (not Hydra's config node), so it pickles into the actors without OmegaConf."""
    return RuntimeConfig(name=runtime.name, provider=runtime.provider,
                         provider_options=dict(runtime.provider_options),
                         intra_op_threads=int(runtime.ray.cpus_per_actor),
                         graph_optimization=runtime.graph_optimization)


class EmbedActor:
    """One model actor: a session, a decoder, and per-batch timings returned with the vectors."""

    def __init__(self, model: ConvertedModel, onnx_bytes: Any, runtime: RuntimeConfig, hook: Optional[str],
                 jpeg_draft: bool, batch_size: int):
        import ray

        setup = Stopwatch()
        self.model = model
        # The model's bytes from Ray's object store (Ray Data passes the reference through as it is): workers
        # need no access to the driver's models/ folder.
        if isinstance(onnx_bytes, ray.ObjectRef):
            onnx_bytes = ray.get(onnx_bytes)
        self.session = make_session(onnx_bytes, runtime)
        self.decoder = BatchDecoder(model.input_size, get_preprocessor(model.preprocessing),
                                    load_preprocess_hook(hook), jpeg_draft)
        size = model.input_size
        infer(self.session, model, np.zeros((batch_size, size, size, 3), dtype=np.float32))  # untimed first call
        self.setup_s = setup.elapsed()
        self.actor_id = ray.get_runtime_context().get_actor_id() or f"pid-{os.getpid()}"
        self.batches = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.time()  # wall-clock time: compared across actor processes on the driver
        busy = Stopwatch()
        records = [ImageRecord(image_id=int(i), path=str(p), category_ids=()) for i, p in
                   zip(batch["image_id"], batch["path"])]
        decoded = self.decoder(records)
        n, dim = len(records), self.model.embedding_dim
        vectors, zero_norms, inference_s = np.zeros((n, dim), dtype=np.float32), 0, 0.0
        ok = np.isin(batch["image_id"], decoded.image_ids)
        if len(decoded.image_ids):
            inference_s, output = timed(infer, self.session, self.model, decoded.pixels)
            rows = {int(i): k for k, i in enumerate(decoded.image_ids)}
            normalised, zero_norms = l2_normalise(output)
            for k, image_id in enumerate(batch["image_id"]):
                if ok[k]:
                    vectors[k] = normalised[rows[int(image_id)]]
        reasons = {i: s.reason for i, s in decoded.skipped}
        busy_s = busy.elapsed()
        # Batch figures ride on the batch's first row (zeros elsewhere), so sums over rows are totals
        # however Ray re-chunks the output on its way to the driver.
        first = np.zeros(n, dtype=np.float64)
        first[0] = 1.0
        self.batches += 1
        setup_s, self.setup_s = self.setup_s, 0.0
        return {
            "image_id": np.asarray(batch["image_id"], dtype=np.int64), "path": np.asarray(batch["path"], dtype=str),
            "vector": vectors, "ok": ok,
            "reason": np.array([reasons.get(int(i), "") for i in batch["image_id"]], dtype=str),
            "actor": np.array([self.actor_id] * n, dtype=str), "pid": np.full(n, os.getpid(), dtype=np.int64),
            "batch_records": first * n, "batch_images": first * len(decoded.image_ids),
            "zero_norms": first * zero_norms, "busy_s": first * busy_s, "decode_s": first * decoded.decode_s,
            "preprocess_s": first * decoded.preprocess_s, "inference_s": first * inference_s,
            "setup_s": first * setup_s, "started": first * started, "ended": first * time.time(),
        }


def run(job: EmbedJob) -> EngineRun:
    import ray.data

    rcfg = job.runtime.ray
    todo = job.todo
    with ray_cluster.connected(rcfg) as cluster:
        ray_cluster.check_fits(rcfg.actors, rcfg.cpus_per_actor, cluster, joined=rcfg.address is not None)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the driver's own bar counts images, as the local engine's does
        clock = RunClock(job.engine)
        writer = job.writer()
        actors = _ActorStats()
        progress = lambda: clock.progress(writer, actors.seconds())  # noqa: E731
        seen = set(job.stored.done_ids)
        duplicates = 0
        first_result_s: Optional[float] = None
        with tqdm(total=len(job.images), initial=len(job.images) - len(todo), unit="img",
                  desc=f"embed {job.model.name} (ray)", disable=None) as bar, \
                ShardSaving(writer, progress, log) as saving:
            batches = _pipeline(job, todo).iter_batches(batch_size=None, batch_format="numpy") if todo else []
            for out in batches:
                if first_result_s is None:
                    first_result_s = clock.elapsed()
                ids = out["image_id"]
                new = np.array([int(i) not in seen for i in ids], dtype=bool)
                duplicates += int(np.count_nonzero(~new))
                seen.update(int(i) for i in ids[new])
                keep = new & out["ok"]
                skipped = [(int(i), Skip(path=str(p), reason=str(r))) for i, p, r, n, o in
                           zip(ids, out["path"], out["reason"], new, out["ok"]) if n and not o]
                writer.add(ids[keep], out["vector"][keep], skipped, int(out["zero_norms"][new].sum()))
                actors.add(out)
                clock.inference_s = actors.total("inference_s")
                bar.update(int(np.count_nonzero(new)))
                saving.step()
        total_s = clock.elapsed()
    missing = len(todo) - writer.embedded - writer.skipped
    if missing:
        raise BenchError(f"Ray returned {missing} of {len(todo)} images neither embedded nor skipped: the run is "
                         f"incomplete (its shards are kept; rerun to finish it)")
    if duplicates:
        log.warning("%d rows came back twice after retried batches and were kept once", duplicates)
    rt = actor_runtime(job.runtime)
    per_actor = actors.summary()
    busy = sum(a["busy_s"] for a in per_actor.values())
    pool = max(rcfg.actors, 1)
    engine = {
        "name": "ray", "actors": rcfg.actors, "cpus_per_actor": rcfg.cpus_per_actor, "address": rcfg.address,
        "cluster": cluster, "driver_wall_s": total_s, "first_result_s": first_result_s,
        "per_actor": per_actor, "actor_processes": sum(len(a["pids"]) for a in per_actor.values()),
        "actor_restarts": sum(len(a["pids"]) - 1 for a in per_actor.values()),
        "duplicate_rows_dropped": duplicates,
        # What Ray cost around the model calls: the wall time each actor did not spend in __call__, on average
        # (start-up, task dispatch, object transfers, the tail), and the same as a share of the pool's time.
        "scheduling_overhead_s": max(total_s - busy / pool, 0.0),
        "idle_share": max(1.0 - busy / (pool * total_s), 0.0) if total_s > 0 else None,
        "dispatch_gap_s_per_batch": actors.mean_gap(),
    }
    seconds = {"total_s": total_s, "inference_s": actors.total("inference_s"), **actors.seconds(),
               "decode_preprocess_s": actors.total("decode_s") + actors.total("preprocess_s"),
               "warmup_s": actors.total("setup_s") / max(len(per_actor), 1), "ray_init_s": cluster["init_s"]}
    return EngineRun(writer=writer, total_s=total_s, inference_s=actors.total("inference_s"), seconds=seconds,
                     # Batch-1 latency is a property of one session, measured by the local engine; not here.
                     batch1_latency=summarize_latencies([]), spread=embedding_spread(actors.per_batch),
                     session={"execution_provider": rt.provider, **describe_runtime(rt)}, extra={"engine": engine})


def _pipeline(job: EmbedJob, todo: list[ImageRecord]):
    """Records -> one Ray Data block per batch -> the actor pool's map_batches."""
    import ray

    size = job.batch_size
    items = [{"image_id": int(r.image_id), "path": str(r.path)} for r in todo]
    # One block per batch: the pool balances batches across actors, and a lost batch is the unit retried.
    dataset = items_dataset(items, blocks=-(-len(items) // size))
    model = replace(job.model, onnx_path=str(job.model.onnx_path))
    onnx_bytes = ray.put(Path(job.model.onnx_path).read_bytes())  # stored once, fetched once per node
    rcfg = job.runtime.ray
    return dataset.map_batches(
        EmbedActor, batch_size=size, batch_format="numpy",
        fn_constructor_kwargs={"model": model, "onnx_bytes": onnx_bytes, "runtime": actor_runtime(job.runtime),
                               "hook": job.cfg.preprocess_hook, "jpeg_draft": bool(job.cfg.jpeg_draft),
                               "batch_size": size},
        num_cpus=rcfg.cpus_per_actor, **actor_pool_args(rcfg.actors))


class _ActorStats:
    """Per-actor sums of the batch figures that come back with the rows."""

    SUMMED = ("batch_records", "batch_images", "busy_s", "decode_s", "preprocess_s", "inference_s", "setup_s")

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.pids: dict[str, set[int]] = defaultdict(set)
        self.spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.per_batch: list[dict[str, float]] = []

    def add(self, out: dict[str, np.ndarray]) -> None:
        for actor in np.unique(out["actor"]):
            mine = out["actor"] == actor
            sums = self.sums[str(actor)]
            for key in self.SUMMED:
                sums[key] += float(out[key][mine].sum())
            self.pids[str(actor)].update(int(p) for p in np.unique(out["pid"][mine]))
        for k in np.flatnonzero(out["batch_records"] > 0):  # one row per batch carries its figures
            self.spans[str(out["actor"][k])].append((float(out["started"][k]), float(out["ended"][k])))
            self.per_batch.append({"images": float(out["batch_images"][k]), "wall_s": float(out["busy_s"][k]),
                                   "inference_s": float(out["inference_s"][k])})

    def total(self, key: str) -> float:
        return sum(s[key] for s in self.sums.values())

    def seconds(self) -> dict[str, float]:
        return {"decode_s": self.total("decode_s"), "preprocess_s": self.total("preprocess_s"),
                "busy_s": self.total("busy_s")}

    def mean_gap(self) -> Optional[float]:
        """Mean idle time of an actor between the end of one batch and the start of its next."""
        gaps = []
        for spans in self.spans.values():
            spans.sort()
            gaps.extend(max(b[0] - a[1], 0.0) for a, b in zip(spans, spans[1:]))
        return float(np.mean(gaps)) if gaps else None

    def summary(self) -> dict[str, dict[str, Any]]:
        return {actor: {"images": int(s["batch_images"]), "records": int(s["batch_records"]), "busy_s": s["busy_s"],
                        "images_per_s_busy": s["batch_images"] / s["busy_s"] if s["busy_s"] > 0 else None,
                        "inference_s": s["inference_s"], "setup_s": s["setup_s"], "pids": sorted(self.pids[actor])}
                for actor, s in self.sums.items()}
