"""`python -m bench`: one benchmark run, or a Hydra multirun sweep with `-m`."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from bench.config import register_configs  # noqa: E402
from bench.errors import BenchError, signals_interrupt  # noqa: E402

log = logging.getLogger("bench")
register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from bench.run.resume import rerun_reuses
    from bench.runner import run, write_outputs

    hydra_cfg = HydraConfig.get()
    outdir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    typed = OmegaConf.to_object(cfg)  # validated dataclasses, resolved interpolations
    try:
        with signals_interrupt():
            result = run(typed, outdir)
    except KeyboardInterrupt as err:
        # SIGINT/SIGTERM: results.json says "interrupted" and in which stage, every cache written so far is
        # kept, and a multirun stops here (SystemExit is not caught by Hydra's launcher) instead of going on.
        stage = getattr(err, "stage", "setup")
        print(f"interrupted ({getattr(err, 'signal_name', 'SIGINT')}) during {stage}: {outdir}/results.json; "
              f"{rerun_reuses(stage, typed)}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 130))
    except BenchError as err:
        if multirun:  # one bad job is recorded (results.json, status failed) and the sweep goes on
            log.error("%s / %s failed: %s", cfg.model.name, cfg.index.type, err)
            return
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    table = write_outputs(result)
    print(f"\n{table}\n")
    print(f"results: {outdir}/results.json, tables: {outdir}/tables.md")


if __name__ == "__main__":
    main()
