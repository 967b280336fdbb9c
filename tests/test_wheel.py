"""The installable package: a wheel built from this checkout, installed (not editable) into a fresh
venv, runs from an unrelated directory: configs, sweeps and data come from inside the package, and a
user's own experiment comes from their own folder (--config-dir).

The fresh venv holds only dpo_exp (`pip install --no-deps <wheel>`); its dependencies are this test
venv's packages, made visible by a .pth file written after the install (so pip never sees them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow  # builds a wheel and a fresh venv: make test-slow


def run(cmd: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHON"))}
    env["TQDM_DISABLE"] = "1"
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _setuptools_major() -> int:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("setuptools").split(".")[0])
    except PackageNotFoundError:
        return 0


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with the wheel of this checkout installed; returns its python."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # build from a copy: setuptools writes build/ and egg-info beside the sources
    skip = shutil.ignore_patterns(".git", ".venv", "outputs", "multirun", "mlruns", "mlartifacts", "mlflow.db*",
                                  "*.egg-info", "__pycache__", ".pytest_cache", ".whl")
    # setuptools' own build/ at the top only: conf/build/ holds the build presets
    shutil.copytree(REPO, src, symlinks=True,
                    ignore=lambda d, names: skip(d, names) | ({"build"} if Path(d) == REPO else set()))
    # No build isolation (no download) when this venv's setuptools is recent enough (the `test` extra pins it).
    isolation = [] if _setuptools_major() < 68 else ["--no-build-isolation"]
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", tmp / "dist", src], cwd=tmp)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("dpo_exp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("dpo_exp/conf/config.yaml", "dpo_exp/conf/evaluate.yaml", "dpo_exp/conf/experiment/sycophancy.yaml",
                   "dpo_exp/conf/hydra/help/dpo_exp.yaml", "dpo_exp/conf/sweep/beta.yaml",  # conf/sweep -> sweeps/
                   "dpo_exp/conf/build.yaml", "dpo_exp/conf/build/sycophancy_claims.yaml", "dpo_exp/conf/audit.yaml",
                   "dpo_exp/conf/convert.yaml",
                   "dpo_exp/tasks/claims/sycophancy_train.jsonl", "dpo_exp/tasks/claims/sycophancy_heldout.jsonl",
                   "dpo_exp/tasks/claims/sycophancy_knowledge.json", "dpo_exp/tasks/pushback/pushback_train.jsonl",
                   "dpo_exp/tasks/pushback/pushback_heldout.jsonl", "dpo_exp/tasks/pushback/pushback_prompts.jsonl",
                   "dpo_exp/tasks/pushback/pushback_template_pairs.jsonl", "dpo_exp/tasks/pushback/pushback_dev.jsonl",
                   "dpo_exp/tasks/pushback/pushback_train_varied.jsonl", "dpo_exp/conf/experiment/sycophancy_varied.yaml",
                   "dpo_exp/conf/loop.yaml", "dpo_exp/conf/loop_only/experiment/sycophancy_loop.yaml",
                   "dpo_exp/conf/loop_only/debug_loop/smoke.yaml"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("conf/", "sweeps/", "tests/"))]  # one package, nothing beside it

    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    done = run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel],
               cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).stdout.strip())
    (site / "test_venv_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """An unrelated directory, nowhere near the checkout."""
    assert REPO not in tmp_path.parents
    return tmp_path


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, elsewhere):
    out = run([installed, "-c", "import dpo_exp; print(dpo_exp.__file__)"], cwd=elsewhere)
    assert out.stdout.strip().startswith(str(installed.parents[1])), out.stdout + out.stderr


def test_help_and_config_from_inside_the_package(installed, elsewhere):
    helped = run([installed, "-m", "dpo_exp", "--help"], cwd=elsewhere)
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "experiment: hh_rlhf, sycophancy" in helped.stdout and "sweep: beta, beta_lr, loss_beta" in helped.stdout
    eval_help = run([installed, "-m", "dpo_exp.eval", "--help"], cwd=elsewhere)
    assert eval_help.returncode == 0 and "eval_models" in eval_help.stdout, eval_help.stderr[-2000:]

    for app, args, key in (("dpo_exp.build", ["build=sycophancy_claims"], "build"),
                           ("dpo_exp.audit", ["data=file", "data.path=x.jsonl"], "audit"),
                           ("dpo_exp.convert", [], "data"),
                           ("dpo_exp.label", ["data.path=x.jsonl"], "label")):  # every command composes its configs from the package
        composed = run([installed, "-m", app, *args, "--cfg", "job"], cwd=elsewhere)
        assert composed.returncode == 0, (app, composed.stderr[-2000:])
        assert key in yaml.safe_load(composed.stdout), (app, composed.stdout[:500])
    built = yaml.safe_load(run([installed, "-m", "dpo_exp.build", "build=sycophancy_claims", "--cfg", "job", "--resolve"],
                               cwd=elsewhere).stdout)
    assert installed.parents[1] in Path(built["build"]["prompts"]).parents  # the preset's prompts, from the package

    shown = run([installed, "-m", "dpo_exp", "+experiment=sycophancy", "--cfg", "job", "--resolve"], cwd=elsewhere)
    assert shown.returncode == 0, shown.stderr[-2000:]
    cfg = yaml.safe_load(shown.stdout)
    for key in ("path", "heldout_path"):
        path = Path(cfg["data"][key])
        assert path.is_file() and installed.parents[1] in path.parents, path  # read from the installed package
    swept = run([installed, "-m", "dpo_exp", "+experiment=sycophancy", "+sweep=beta", "--cfg", "hydra"],
                cwd=elsewhere)
    assert swept.returncode == 0 and "beta.value: 0.05,0.1,0.2,0.5" in swept.stdout, swept.stderr[-2000:]


def test_a_users_own_experiment_runs_from_their_folder(installed, elsewhere):
    mine = elsewhere / "my_configs" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\ntracking:\n  experiment: mine\nbeta:\n  value: 0.2\n")
    out = run([installed, "-m", "dpo_exp", "--config-dir", elsewhere / "my_configs", "+experiment=mine", "+debug=smoke",
               "train.max_steps=2", "eval.max_new_tokens=0"], cwd=elsewhere, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "== dpo_exp summary ==" in out.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{elsewhere / 'mlflow.db'}")
    (run_,) = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    assert run_.info.status == "FINISHED" and run_.data.params["beta.value"] == "0.2"
    assert Path(run_.data.tags["dpo_exp.run_dir"]).parent == elsewhere / "outputs" / "mine"


def test_dataset_builder_writes_where_it_is_told_not_into_the_package(installed, elsewhere):
    shipped = Path(run([installed, "-c", "from dpo_exp.tasks.claims import dataset as s; print(s.TRAIN_PATH)"],
                       cwd=elsewhere).stdout.strip())
    before = shipped.stat().st_mtime_ns
    refused = run([installed, "-m", "dpo_exp.tasks.claims.dataset"], cwd=elsewhere)
    assert refused.returncode == 2 and "--out" in refused.stderr
    out = run([installed, "-m", "dpo_exp.tasks.claims.dataset", "--out", "built"], cwd=elsewhere)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (elsewhere / "built" / "sycophancy_train.jsonl").read_bytes() == shipped.read_bytes()
    assert (elsewhere / "built" / "sycophancy_heldout.jsonl").is_file()
    assert shipped.stat().st_mtime_ns == before
