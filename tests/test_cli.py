"""Command-line plumbing: argument rewriting shared by every dpo_exp command."""

from __future__ import annotations

from dpo_exp.cli import hydra_argv


def test_hydra_flags_move_before_the_overrides():
    # argparse reads overrides as one list: `a --cfg job b` would leave `b` unrecognised
    assert hydra_argv(["x", "+experiment=sycophancy", "--cfg", "job", "beta=-1"]) == [
        "x", "--cfg", "job", "+experiment=sycophancy", "beta.value=-1"]
    assert hydra_argv(["x", "a=1", "-m", "b=1,2", "--config-dir", "/d", "c=3", "--info"]) == [
        "x", "-m", "--config-dir", "/d", "--info", "a=1", "b=1,2", "c=3"]
    assert hydra_argv(["x", "--info", "searchpath", "a=1", "--cfg=job"]) == ["x", "--info", "searchpath", "--cfg=job",
                                                                           "a=1"]
    assert hydra_argv(["x", "beta=low", "train.max_steps=-1"]) == ["x", "beta=low", "train.max_steps=-1"]


def test_cfg_job_validates_each_command_with_its_own_schema(tmp_path):
    """`--cfg job` checks the composed config like a run would, with the command's own schema (the
    build's is not training's), and shows a config whose only gaps are keys still to be given."""
    import os
    import subprocess
    import sys

    import yaml

    from conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO)  # this checkout, not whichever dpo_exp the venv has installed

    def cfg(*args):
        return subprocess.run([sys.executable, "-m", *args, "--cfg", "job"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    built = cfg("dpo_exp.build", "build=sycophancy_claims")
    assert built.returncode == 0, built.stderr[-2000:]
    assert yaml.safe_load(built.stdout)["build"]["n"] == 4
    missing = cfg("dpo_exp.build")
    assert missing.returncode == 2 and "build.prompts has no value" in missing.stderr and not missing.stdout
    unknown = cfg("dpo_exp", "+train.no_such_key=1")
    assert unknown.returncode == 2 and "Unknown config key train.no_such_key" in unknown.stderr
    shown = cfg("dpo_exp.convert")  # data.path is ??? until given: shown as such, not an error
    assert shown.returncode == 0 and yaml.safe_load(shown.stdout)["data"]["path"] == "???"
