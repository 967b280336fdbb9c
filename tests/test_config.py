"""Config composition: every shipped option composes, and bad values fail before any work."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from conftest import CONF, HH_RLHF, REPO, compose, run_cli
from dpo_exp import config
from dpo_exp.config import LossType, UserError


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


REQUIRED = {"hh_rlhf": [f"data.path={HH_RLHF}"]}


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_and_validates(experiment):
    cfg = compose([f"+experiment={experiment}", *REQUIRED.get(experiment, [])])
    conf = config.to_object(cfg)
    assert conf.tracking.experiment == experiment


@pytest.mark.parametrize("group", ["model", "hardware", "lora", "loss", "beta", "data", "train", "eval", "tracking"])
def test_every_group_option_composes(group):
    for option in options(group):
        extra = {"local": ["model.path=/some/model"], "file": ["data.path=x.jsonl"], "hh_rlhf": ["data.path=x.jsonl.gz"]}
        cfg = compose([f"{group}={option}", *extra.get(option, [])])
        config.to_object(cfg)  # types and value checks pass


def test_beta_presets_set_the_value_and_any_value_is_reachable():
    assert compose(["beta=high"]).beta.value == 0.5
    from dpo_exp.cli import numeric_beta

    assert numeric_beta(["beta=0.05,0.1,0.5", "beta=low", "beta=choice(0.1,0.2)", "x.beta=1"]) == [
        "beta.value=0.05,0.1,0.5", "beta=low", "beta.value=choice(0.1,0.2)", "x.beta=1"]
    assert compose(["beta.value=0.07"]).beta.value == 0.07


def test_loss_presets_cover_every_offline_loss_trl_accepts():
    """Our enum and conf/loss/ follow the installed TRL: a new TRL loss shows up here."""
    import trl.trainer.dpo_trainer as dpo_trainer_module
    from trl import DPOConfig

    help_text = DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    trl_losses = set(re.findall(r"`'(\w+)'`", help_text)) - {"sft"}  # sft: only a term added to another loss
    assert trl_losses == {t.value for t in LossType}
    assert set(options("loss")) == trl_losses
    source = open(dpo_trainer_module.__file__).read()
    assert all(f'"{t}"' in source for t in trl_losses), "every loss type is handled in DPOTrainer"


def test_beta_must_be_positive():
    cfg = compose(["beta.value=0"])
    with pytest.raises(UserError, match=r"beta\.value=0\.0.*beta must be > 0.*Fix: .*beta=0\.1"):
        config.to_object(cfg)


def test_robust_label_smoothing_range():
    with pytest.raises(UserError, match=r"loss\.label_smoothing=0\.6.*\[0, 0\.5\)"):
        config.to_object(compose(["loss=robust", "loss.label_smoothing=0.6"]))


def test_unknown_loss_fails_at_composition_listing_the_choices():
    with pytest.raises(ConfigCompositionException) as e:
        compose(["loss.type=dpo_magic"])
    assert "sigmoid" in str(e.value.__cause__) and "ipo" in str(e.value.__cause__)


def test_unknown_key_fails_at_composition():
    with pytest.raises(ConfigCompositionException) as e:
        compose(["train.learnig_rate=1e-5"])
    assert "learnig_rate" in str(e.value) or "learnig_rate" in str(e.value.__cause__)


def test_wrong_type_fails_at_composition():
    with pytest.raises(ConfigCompositionException) as e:
        compose(["train.batch_size=many"])
    assert isinstance(e.value.__cause__, ValidationError)


def test_fingerprint_ignores_resume_and_where_a_run_is_recorded():
    base = config.fingerprint(compose([]))
    for same in (["resume=true"], ["tracking.uri=sqlite:////x/mlflow.db"], ["paths.outputs=/elsewhere"]):
        assert config.fingerprint(compose(same)) == base, same
    assert config.fingerprint(compose(["beta=high"])) != base
    assert config.fingerprint(compose(["data.max_rows=10"])) != base


def test_flatten_gives_dotted_string_params():
    params = config.flatten(compose(["beta=high", "lora=all_linear"]))
    assert params["beta.value"] == "0.5"
    assert params["loss.type"] == "sigmoid"
    assert params["lora.target_modules"] == '["all-linear"]'
    assert params["data.path"].endswith("dpo_exp/tasks/pushback/pushback_train.jsonl")


def test_cli_help_and_cfg_job_do_not_import_the_training_stack(tmp_path):
    """`--help` and `--cfg job` stay instant because torch/TRL/PEFT load only when a job runs."""
    probe = (
        "import sys; sys.argv = ['dpo_exp', '--cfg', 'job', '+experiment=sycophancy']\n"
        "import runpy\n"
        "try:\n    runpy.run_module('dpo_exp', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'trl', 'peft', 'transformers', 'mlflow', 'datasets') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "learning_rate: 0.0002" in out.stdout  # the experiment's value, composed
    assert "HEAVY []" in out.stdout, out.stdout[-500:] + out.stderr[-2000:]
    help_out = run_cli(["--help"], cwd=tmp_path, timeout=60)
    assert help_out.returncode == 0
    assert "experiment: hh_rlhf, sycophancy" in help_out.stdout
    assert "loss: aot" in help_out.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["beta.value=-0.1"], r"beta\.value=-0\.1.*beta must be > 0"),
        (["model=local", "model.path=/nonexistent/model"], r"/nonexistent/model.*no config\.json"),
        (["train.nonsense=1"], r"nonsense"),
        (["model=random", "model.architecture=nope"], r"model\.architecture='nope'.*qwen2\.5-0\.5b"),
    ],
)
def test_cli_bad_input_fails_fast_with_a_clear_message(args, expected, workdir):
    out = run_cli(["+experiment=sycophancy", "+debug=smoke", *args], cwd=workdir, timeout=120)
    assert out.returncode != 0
    assert re.search(expected, out.stderr, re.S), out.stderr[-2000:]
    assert "Traceback" not in out.stderr or "nonsense" in expected  # Hydra owns unknown-key errors
    assert "loaded on" not in out.stdout  # failed before any model was loaded


def test_scheduler_and_optimizer_choices_follow_the_installed_transformers():
    """Each scheduler we offer builds with only the arguments dpo_exp passes; each optimizer is one of
    transformers', the bitsandbytes family exactly as transformers groups it."""
    import torch
    from transformers.optimization import get_scheduler
    from transformers.trainer_optimizer import _BITSANDBYTES_OPTIMIZERS
    from transformers.training_args import OptimizerNames

    from dpo_exp.config import TORCH_OPTIMIZERS, LRScheduler, Optimizer

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    for name in LRScheduler:
        get_scheduler(name.value, opt, num_warmup_steps=1, num_training_steps=10)
    assert {o.value for o in Optimizer} <= {o.value for o in OptimizerNames}
    assert {o.value for o in Optimizer} - {o.value for o in TORCH_OPTIMIZERS} == {o.value for o in _BITSANDBYTES_OPTIMIZERS}
