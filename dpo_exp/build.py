"""`python -m dpo_exp.build`: preference pairs from prompts, a generator model and a judge.

    python -m dpo_exp.build build=NAME                                # a preset: conf/build/NAME.yaml
    python -m dpo_exp.build build.prompts=prompts.jsonl build.n=4 judge=openai judge.base_url=URL judge.model=M

Configured by Hydra (`conf/build.yaml`: the `model`, `hardware`, `tracking` and `paths` groups of
training, plus `judge.*` and `build.*`). What it does, the cache, the budget and the output are
described in `dpo_exp.data.build`, where the logic lives; this module is the command line only.
"""

from __future__ import annotations

import sys

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dpo_exp import config, runs
from dpo_exp.cli import hydra_app, run_command
from dpo_exp.data import build


@hydra_app("build")
def main(cfg: DictConfig) -> None:
    overrides = list(HydraConfig.get().overrides.task)
    build.run(cfg, runs.Job.from_hydra(cfg, app="dpo_exp.build", name="build " + config.describe_overrides(overrides)))


build.register()

if __name__ == "__main__":
    run_command(main, sys.argv, name="dpo_exp.build", validate=build.to_object)
