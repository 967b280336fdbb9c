"""Command-line plumbing: argument rewriting shared by every dpo_exp command, and every shipped config
composing and passing its command's `--cfg job` validation."""

from __future__ import annotations

import re

import pytest

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


def test_beta_presets_sweep_like_any_value():
    from dpo_exp.config import UserError

    assert hydra_argv(["x", "-m", "beta=low,high"]) == ["x", "-m", "beta=low,high"]  # a sweep over the group
    assert hydra_argv(["x", "beta=0.05,0.5"]) == ["x", "beta.value=0.05,0.5"]
    assert hydra_argv(["x", "beta=choice(0.1, 0.5)"]) == ["x", "beta.value=choice(0.1, 0.5)"]
    assert hydra_argv(["x", "beta=interval(0.01,0.5)"]) == ["x", "beta.value=interval(0.01,0.5)"]
    assert hydra_argv(["x", "beta=1e-2"]) == ["x", "beta.value=1e-2"]
    assert hydra_argv(["x", "beta=choice(low, high)"]) == ["x", "beta=choice(low, high)"]
    assert hydra_argv(["x", "beta=glob(*)"]) == ["x", "beta=glob(*)"]
    assert hydra_argv(["x", "beta=shuffle(choice(0.1,0.5))"]) == ["x", "beta.value=shuffle(choice(0.1,0.5))"]
    for mixed in ("low,0.3", "choice(0.1, high)"):
        with pytest.raises(UserError, match=rf"beta={re.escape(mixed)} mixes preset names and numbers. Fix: "):
            hydra_argv(["x", f"beta={mixed}"])


def test_a_sweep_over_beta_presets_composes_one_job_per_preset():
    """`python -m dpo_exp -m +experiment=sycophancy beta=low,high` as the basic sweeper splits it: each job's
    overrides composed (it used to send `low` to beta.value, a float)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from conftest import compose
    from dpo_exp import config

    argv = hydra_argv(["x", "-m", "+experiment=sycophancy", "beta=low,high", "train.max_steps=2"])
    overrides = OverridesParser.create().parse_overrides([a for a in argv[1:] if not a.startswith("-")])
    (batch,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    assert [config.to_object(compose(list(job))).beta.value for job in batch] == [0.05, 0.5]


def _cfg_job(module: str, *overrides: str) -> tuple[int, str]:
    """`python -m <module> <overrides> --cfg job` in this process (runpy, as `-m` runs it): exit code, stdout."""
    import contextlib
    import io
    import runpy
    import signal
    import sys

    from hydra._internal.hydra import Hydra

    saved = (sys.argv, Hydra.show_cfg, signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    sys.argv = [module, *overrides, "--cfg", "job"]
    out, code = io.StringIO(), 0
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_module(module, run_name="__main__", alter_sys=False)
    except SystemExit as e:
        code = e.code or 0
    finally:  # run_command wraps Hydra's show_cfg with the command's validation and installs signal handlers
        sys.argv, Hydra.show_cfg = saved[0], saved[1]
        signal.signal(signal.SIGINT, saved[2])
        signal.signal(signal.SIGTERM, saved[3])
    return code, out.getvalue()


def _presets(group: str) -> list[str]:
    from conftest import CONF

    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


COMMANDS = [("dpo_exp", ()), ("dpo_exp.eval", ()), ("dpo_exp.audit", ()), ("dpo_exp.convert", ()), ("dpo_exp.label", ()),
            *[("dpo_exp", (f"+experiment={e}",)) for e in _presets("experiment")],
            *[("dpo_exp.eval", (f"+experiment={e}",)) for e in _presets("experiment")],
            *[("dpo_exp.audit", (f"+experiment={e}",)) for e in _presets("experiment")],
            *[("dpo_exp.build", (f"build={b}",)) for b in _presets("build")],
            *[("dpo_exp.loop", (f"+experiment={e}",)) for e in _presets("loop_only/experiment")]]


def test_cfg_job_runs_the_commands_validation():
    """The in-process runner below exercises the command's own validation, not just composition."""
    code, out = _cfg_job("dpo_exp", "beta=-1")
    assert code == 2 and not out


@pytest.mark.parametrize("module, overrides", COMMANDS, ids=[f"{m} {' '.join(o)}".strip() for m, o in COMMANDS])
def test_every_shipped_config_composes_and_validates(module, overrides):
    """Each command's defaults and each shipped experiment / build preset pass the command's `--cfg job`
    validation (the one a run does first). The convert default shows `data.path: ???`, still to be given."""
    import yaml

    code, out = _cfg_job(module, *overrides)
    assert code == 0
    assert yaml.safe_load(out)


@pytest.mark.parametrize("experiment", [None, *_presets("experiment")])
def test_each_task_names_a_judge_and_metric_its_held_out_rows_satisfy(experiment):
    """`python -m dpo_exp.eval [+experiment=X]`: the judge and behaviour metric the config names read fields
    the held-out rows have (checked as the command checks them, before any model loads). hh_rlhf names
    neither: it has no held-out set with a property a rule can check."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from conftest import CONF
    from dpo_exp import config, judges, plugins
    from dpo_exp.eval import behaviour, compare

    compare.register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        overrides = [f"+experiment={experiment}"] if experiment else []
        conf = config.to_object(hydra_compose("evaluate", overrides + ["data.path=x"] * (experiment == "hh_rlhf")))
    if experiment == "hh_rlhf":
        assert conf.eval.behaviour is None and conf.judge == {"_target_": None} and conf.data.heldout_path is None
        return
    metric = behaviour.from_config(conf.eval.behaviour)
    judge = judges.from_config(conf.judge)
    assert metric is not None and judge is not None, "a task's experiment names its judge and behaviour metric"
    heldout = compare.load_heldout(conf, metric)  # raises naming the missing field
    plugins.require_fields(judge, "judge", heldout, conf.data.heldout_path, off="judge=none")
