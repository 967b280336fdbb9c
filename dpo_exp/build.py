"""`python -m dpo_exp.build`: preference pairs from prompts, a generator model and a judge.

    python -m dpo_exp.build build=NAME                                # a preset: conf/build/NAME.yaml
    python -m dpo_exp.build build.prompts=prompts.jsonl build.n=4 judge=openai judge.base_url=URL judge.model=M

Configured by Hydra (`conf/build.yaml`: the `model`, `hardware`, `tracking` and `paths` groups of
training, plus `judge.*` and `build.*`). What it does, the cache, the budget and the output are
described in `dpo_exp.data.build`, where the logic lives; this module is the command line only.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dpo_exp import config
from dpo_exp.cli import error, hydra_app, run_command
from dpo_exp.config import UserError
from dpo_exp.data import build


@hydra_app("build")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    command = "python -m dpo_exp.build " + " ".join(shlex.quote(o) for o in overrides)
    run_name = cfg.tracking.run_name or "build " + config.describe_overrides(overrides)
    try:
        build.run(cfg, Path(hydra_cfg.runtime.output_dir).resolve(), command, run_name)
    except UserError as e:
        error("dpo_exp.build", str(e))
        sys.exit(2)


build.register()

if __name__ == "__main__":
    run_command(main, sys.argv, name="dpo_exp.build", validate=build.to_object)
