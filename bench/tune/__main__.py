"""`python -m bench.tune`: tune an index for a recall target (bench/tune/run.py), with bench's own overrides.

    python -m bench.tune experiment=smoke tune.index_types=[IVF_FLAT,HNSW] tune.target_recall=0.95 tune.trials=20

The run folder is reports/tune/<tune.study>/, so the same command resumes the same study.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from bench.config import register_configs, typed_config  # noqa: E402
from bench.errors import BenchError, signals_interrupt  # noqa: E402
from bench.tune.settings import check  # noqa: E402

log = logging.getLogger("bench.tune")
register_configs()
# One folder per study, not per run: a rerun finds its study.db there and resumes.
RUN_DIR = "hydra.run.dir=reports/tune/${tune.study}"


@hydra.main(version_base="1.3", config_path="../../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        print("error: python -m bench.tune runs one study; drop -m (several index types: "
              "tune.index_types=[IVF_FLAT,HNSW])", file=sys.stderr)
        sys.exit(2)
    outdir = Path(hydra_cfg.runtime.output_dir)
    # The user's own overrides (model, dataset, store, ...) go into the recommended command line.
    overrides = [o for o in hydra_cfg.overrides.task if not o.lstrip("+~").startswith(("tune.", "hydra."))]
    try:
        try:
            typed = typed_config(cfg)  # validated dataclasses, resolved interpolations
            check(typed)  # bad input is refused before the heavy imports below
        except BenchError:
            _undo_run_folder(outdir)
            raise
        from bench.tune.run import tune

        with signals_interrupt():
            code = tune(typed, outdir, overrides)
    except KeyboardInterrupt as err:
        print(f"interrupted ({getattr(err, 'signal_name', 'SIGINT')}): the study is saved in {outdir}/study.db; "
              f"rerun the same command to resume it", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 130))
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)


def _undo_run_folder(outdir: Path) -> None:
    """Refused input leaves no study folder behind: Hydra made it (.hydra/ and bench.log) before the check.

    Only a folder holding nothing else goes: a study's own folder keeps its study.db and its log of every run,
    and a folder of the user's (hydra.run.dir=...) keeps what it holds."""
    if outdir.is_dir() and {entry.name for entry in outdir.iterdir()} <= {".hydra", "bench.log"}:
        shutil.rmtree(outdir, ignore_errors=True)


if __name__ == "__main__":
    if not any(arg.startswith("hydra.run.dir=") for arg in sys.argv[1:]):
        sys.argv.insert(1, RUN_DIR)
    main()
