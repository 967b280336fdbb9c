"""DPOMonitor on synthetic log sequences: each warning fires exactly when it should, once, and lands in MLflow."""

from __future__ import annotations

import pytest
from transformers import TrainerControl, TrainerState

from dpo_exp.monitor import TAG_PREFIX, DPOMonitor


class Args:
    """The one TrainingArguments attribute the monitor reads (a real TrainingArguments is slow to build)."""

    def __init__(self, eval_strategy: str = "steps"):
        self.eval_strategy = eval_strategy


def feed(monitor: DPOMonitor, logs: list[dict], args=None, state: TrainerState | None = None) -> list[str | None]:
    """Send each log through on_log at step 10, 20, ...; return which warnings were new after each."""
    state = state or TrainerState()
    control = TrainerControl()
    args = args or Args()
    fired = []
    for i, entry in enumerate(logs, start=1):
        state.global_step = 10 * i
        before = set(monitor.warnings)
        monitor.on_log(args, state, control, logs=dict(entry))
        new = set(monitor.warnings) - before
        assert len(new) <= 1
        fired.append(new.pop() if new else None)
    return fired


def train_log(chosen: float, rejected: float) -> dict:
    return {"loss": 0.6, "rewards/chosen": chosen, "rewards/rejected": rejected, "rewards/margins": chosen - rejected}


def eval_log(margin: float, kl: float = 0.1) -> dict:
    return {"eval_loss": 0.6, "eval_rewards/margins": margin, "eval_kl/sampled_full_vocab": kl}


HEALTHY = [eval_log(0.0, 0.0), train_log(0.05, -0.05), train_log(0.1, -0.2), eval_log(0.3, 0.4),
           train_log(0.12, -0.4), train_log(0.1, -0.6), eval_log(0.5, 0.9), train_log(0.15, -0.8),
           eval_log(0.45, 1.5), eval_log(0.6, 2.0)]


def test_a_healthy_run_raises_no_warning(capsys):
    monitor = DPOMonitor(kl_bound=5.0, patience=3)
    assert feed(monitor, HEALTHY) == [None] * len(HEALTHY)
    assert monitor.warnings == {} and "warning" not in capsys.readouterr().err


def test_margin_plateau_fires_after_patience_evaluations_without_a_new_best(capsys):
    monitor = DPOMonitor(kl_bound=5.0, patience=3)
    # best 0.5 at the 2nd eval; then 0.4, 0.5 (equal is no improvement), train logs in between ignored, 0.45
    logs = [eval_log(0.1), eval_log(0.5), eval_log(0.4), train_log(0.1, -2.0), eval_log(0.5), eval_log(0.45),
            eval_log(0.3)]
    assert feed(monitor, logs) == [None, None, None, None, None, "margin_plateau", None]
    assert monitor.warnings["margin_plateau"].startswith("eval reward margin not above its best 0.5 (step 20)")
    assert "step 60" in monitor.warnings["margin_plateau"]
    err = capsys.readouterr().err
    assert err.count("[dpo_exp] warning:") == 1 and len(err.strip().splitlines()) == 1


def test_a_new_best_resets_the_plateau_count():
    monitor = DPOMonitor(kl_bound=5.0, patience=2)
    logs = [eval_log(0.5), eval_log(0.4), eval_log(0.6), eval_log(0.55), eval_log(0.61), eval_log(0.6)]
    assert feed(monitor, logs) == [None] * 6
    assert feed(monitor, [eval_log(0.2)]) == ["margin_plateau"]


def test_plateau_uses_train_margins_only_when_the_run_has_no_evaluation():
    flat = [train_log(0.2, -0.2), train_log(0.1, -0.2), train_log(0.1, -0.1), train_log(0.15, -0.1)]
    evaluating = DPOMonitor(kl_bound=5.0, patience=3)
    assert feed(evaluating, flat, args=Args("steps")) == [None] * 4  # waits for eval margins
    no_eval = DPOMonitor(kl_bound=5.0, patience=3)
    assert feed(no_eval, flat, args=Args("no")) == [None, None, None, "margin_plateau"]
    assert no_eval.warnings["margin_plateau"].startswith("train reward margin not above its best 0.4")


def test_kl_spike_fires_once_above_the_bound_only():
    monitor = DPOMonitor(kl_bound=2.0, patience=3)
    logs = [eval_log(0.1, 0.0), eval_log(0.2, 2.0), eval_log(0.3, 2.5), eval_log(0.4, 9.0), eval_log(0.5, 1.0)]
    assert feed(monitor, logs) == [None, None, "kl_spike", None, None]  # 2.0 is not above the bound
    assert monitor.warnings["kl_spike"] == "KL(policy||ref) 2.5 > bound 2 at step 30"


def test_chosen_falling_needs_negative_chosen_falling_patience_times_with_rejected():
    monitor = DPOMonitor(kl_bound=5.0, patience=3)
    logs = [train_log(0.2, 0.0), train_log(0.1, -0.3), train_log(-0.05, -0.6),  # falling, but only twice
            train_log(-0.2, -0.9),  # third fall in a row, chosen < 0, rejected fell: fires
            train_log(-0.3, -1.2)]
    assert feed(monitor, logs) == [None, None, None, "chosen_falling", None]
    assert monitor.warnings["chosen_falling"] == (
        "rewards/chosen fell 3 logs in a row to -0.2 at step 40, rewards/rejected fell too (0 -> -0.9)")


@pytest.mark.parametrize("logs", [
    # chosen falls and is negative, but rejected rises: not displacement
    [train_log(0.0, -1.0), train_log(-0.1, -0.9), train_log(-0.2, -0.8), train_log(-0.3, -0.7)],
    # one rise in the middle breaks the streak
    [train_log(0.0, 0.0), train_log(-0.1, -0.2), train_log(-0.05, -0.4), train_log(-0.2, -0.6)],
    # falling both, but chosen still positive
    [train_log(0.9, 0.0), train_log(0.7, -0.2), train_log(0.5, -0.4), train_log(0.3, -0.6)],
])
def test_chosen_falling_stays_quiet_otherwise(logs):
    monitor = DPOMonitor(kl_bound=5.0, patience=3)
    assert feed(monitor, logs) == [None] * 4


def test_non_finite_values_are_ignored():
    monitor = DPOMonitor(kl_bound=1.0, patience=1)
    feed(monitor, [eval_log(float("nan"), float("inf")), eval_log(0.5, float("nan"))])
    assert monitor.warnings == {}


def test_a_resumed_run_replays_the_earlier_logs():
    monitor = DPOMonitor(kl_bound=5.0, patience=2)
    state = TrainerState()
    state.log_history = [{**eval_log(0.5), "step": 10}, {**eval_log(0.4), "step": 20}]
    monitor.on_train_begin(Args(), state, TrainerControl())
    assert monitor.warnings == {}
    assert feed(monitor, [eval_log(0.3)], state=state) == ["margin_plateau"]


def test_warnings_are_tagged_on_the_active_mlflow_run(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        monitor = DPOMonitor(kl_bound=1.0, patience=2)
        feed(monitor, [eval_log(0.3, 0.1)])  # no active run: nothing to tag, no error
        with mlflow.start_run() as run:
            feed(monitor, [eval_log(0.2, 3.0), eval_log(0.1, 0.5), train_log(0.1, 0.0), train_log(-0.1, -0.1),
                           train_log(-0.2, -0.3)])
    finally:
        mlflow.set_tracking_uri(None)
    assert set(monitor.warnings) == {"kl_spike", "margin_plateau", "chosen_falling"}
    tags = MlflowClient(uri).get_run(run.info.run_id).data.tags
    for name, message in monitor.warnings.items():
        assert tags[TAG_PREFIX + name] == message
    assert "step" in tags[TAG_PREFIX + "kl_spike"]


def test_wired_into_a_real_tiny_training_run(tmp_path, monkeypatch, capsys):
    """TRL's own log keys reach the monitor, and the tag lands on the run transformers' MLflowCallback opened."""
    import torch
    from mlflow.tracking import MlflowClient
    from transformers import set_seed

    from conftest import compose
    from dpo_exp import config, data, models, train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_MAX_LOG_PARAMS", "0")
    conf = config.to_object(compose(["+experiment=sycophancy", "+debug=smoke", "hardware.num_threads=1",
                                     "eval.at_start=false", "train.cache_ref_log_probs=false"]))
    splits = data.load_splits(conf.data, conf.train.seed)
    set_seed(conf.train.seed)
    corpus = [m["content"] for r in splits.train + splits.eval for m in r["prompt"] + r["chosen"] + r["rejected"]]
    threads = torch.get_num_threads()
    try:
        tokenizer, model, ref = models.load(conf, corpus)
        trainer = train.build_trainer(conf, model=model, ref_model=ref, tokenizer=tokenizer, train_rows=splits.train,
                                      eval_rows=splits.eval, run_dir=tmp_path / "run", run_name="monitor",
                                      peft_config=models.peft_config(conf.lora))
        monitor = DPOMonitor(kl_bound=1e-9, patience=1)  # any trained adapter is past this bound
        trainer.add_callback(monitor)
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    assert "kl_spike" in monitor.warnings and "at step 3" in monitor.warnings["kl_spike"]  # the first evaluation
    assert "[dpo_exp] warning: KL(policy||ref)" in capsys.readouterr().err
    (run,) = MlflowClient(uri).search_runs([e.experiment_id for e in MlflowClient(uri).search_experiments()])
    assert {TAG_PREFIX + k: v for k, v in monitor.warnings.items()}.items() <= run.data.tags.items()
