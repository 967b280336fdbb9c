"""Shared helpers: compose configs like the CLI does, run the CLI, read the MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"
HH_RLHF = SHARED_DATA / "hh-rlhf-harmless-base-test.jsonl.gz"


def compose(overrides: list[str]):
    """The config `python -m dpo_exp <overrides>` would run, composed by Hydra itself."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from dpo_exp.config import register

    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600,
            module: str = "dpo_exp") -> subprocess.CompletedProcess:
    """Run `python -m <module>` (default: dpo_exp, training) as a user would, from `cwd`, with its own
    MLflow store there."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full_env.update({"PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", **(env or {})})  # env may replace them
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def mlflow_client(cwd: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")


def all_runs(cwd: Path):
    client = mlflow_client(cwd)
    exps = client.search_experiments()
    return client.search_runs([e.experiment_id for e in exps]) if exps else []


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory to run the CLI in (its mlflow.db and outputs/ land there)."""
    return tmp_path
