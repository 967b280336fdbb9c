"""Plug-ins a user writes in their own module (tests/plugins/my_plugins.py), run through both commands:
a behaviour metric in training (`eval.behaviour._target_`) and, on the adapter it trained, a judge and the
same metric in `python -m dpo_exp.eval` (the judge from the user's own `--config-dir`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import REPO, all_runs, mlflow_client, run_cli
from test_eval import run_eval, table

PLUGINS = REPO / "tests" / "plugins"
ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)])}  # the user's module is importable
SMOKE = ["+experiment=sycophancy_facts", "+debug=smoke", "hardware.num_threads=1"]  # its rows carry claim_is_true
# words=1: the tiny model's greedy replies are mostly empty, its sampled ones a few words long
METRIC = ["eval.behaviour._target_=my_plugins.ReplyLength", "+eval.behaviour.words=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke training run whose behaviour metric is the user's ReplyLength (instead of the experiment's)."""
    cwd = tmp_path_factory.mktemp("train")
    out = run_cli([*SMOKE, *METRIC], cwd=cwd, env=ENV)
    return cwd, out


def test_a_users_behaviour_metric_reaches_mlflow_and_the_summary(trained):
    cwd, out = trained
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = all_runs(cwd)
    client = mlflow_client(cwd)
    path = client.download_artifacts(run.info.run_id, "heldout_generations.json", str(cwd))
    generations = json.loads(Path(path).read_text())
    columns = generations["columns"]
    rows = [dict(zip(columns, r)) for r in generations["data"]]
    assert len(rows) == 4  # +debug=smoke's cap
    metrics = run.data.metrics
    for when in ("before", "after"):
        # each reply's label in the table, and the rate MLflow holds, are the metric's own (words=1 reached it)
        assert [r[f"label_{when}"] for r in rows] == ["long" if len(r[when].split()) > 1 else "short" for r in rows]
        long_rate = sum(r[f"label_{when}"] == "long" for r in rows) / len(rows)
        assert metrics[f"heldout/{when}/long_rate"] == pytest.approx(long_rate)
        assert metrics[f"heldout/{when}/mean_words"] == pytest.approx(
            sum(len(r[when].split()) for r in rows) / len(rows))
    # the experiment's own metric (ClaimStance) was replaced, its model-based extra with it
    assert not any(k.endswith(("false_corrected", "verdict_auc")) for k in metrics)
    assert "verdict_before" not in columns
    line = (f"held-out reply length (before -> after): replies over 1 words "
            f"{metrics['heldout/before/long_rate']:.3f} -> {metrics['heldout/after/long_rate']:.3f}")
    assert line in out.stdout, out.stdout[-2000:]


def test_a_users_judge_and_metric_in_the_eval_command(trained, tmp_path):
    train_cwd, out = trained
    assert out.returncode == 0, out.stderr[-3000:]
    (train_run,) = all_runs(train_cwd)
    adapter = Path(train_run.data.tags["dpo_exp.run_dir"]) / "adapter"
    ev = run_eval(["--config-dir", str(PLUGINS / "conf"), *SMOKE, *METRIC, f"eval_models.dpo={adapter}",
                   "judge=shorter"], cwd=tmp_path, env=ENV)
    assert ev.returncode == 0, ev.stderr[-3000:]
    (run,) = all_runs(tmp_path)
    metrics = run.data.metrics
    client = mlflow_client(tmp_path)
    generations = json.loads(Path(client.download_artifacts(run.info.run_id, "generations.json",
                                                            str(tmp_path))).read_text())
    rows = [dict(zip(generations["columns"], r)) for r in generations["data"]]
    # ShorterWins, judged in both orders: dpo wins where its greedy reply is strictly shorter, loses where longer
    dpo, base = [r["dpo (greedy)"] for r in rows], [r["base (greedy)"] for r in rows]
    wins = sum(len(d) < len(b) for d, b in zip(dpo, base)) / len(rows)
    losses = sum(len(d) > len(b) for d, b in zip(dpo, base)) / len(rows)
    assert (metrics["dpo/judge/win_rate"], metrics["dpo/judge/loss_rate"]) == pytest.approx((wins, losses))
    assert metrics["dpo/judge/position_consistency"] == 1.0  # a content rule has no position bias
    sampled_rates = []
    for name in ("base", "dpo"):
        replies = [r[f"{name} (greedy)"] for r in rows]
        assert [r[f"{name} (greedy label)"] for r in rows] == ["long" if len(t.split()) > 1 else "short"
                                                              for t in replies]
        for decoding in ("greedy", "sampled"):
            replies = [r[f"{name} ({decoding})"] for r in rows]
            assert metrics[f"{name}/{decoding}/long_rate"] == pytest.approx(
                sum(len(t.split()) > 1 for t in replies) / len(rows))
            assert metrics[f"{name}/{decoding}/mean_words"] == pytest.approx(
                sum(len(t.split()) for t in replies) / len(rows))
        sampled_rates.append(metrics[f"{name}/sampled/long_rate"])
    assert any(0 < r for r in sampled_rates), "the sampled replies should give the metric something to count"
    report = (Path(run.data.tags["dpo_exp.run_dir"]) / "report.md").read_text()
    assert "- judge: shorter-wins;" in report and "- behaviour metric (eval.behaviour): reply length" in report
    headline = (f"held-out reply length, greedy (base / dpo): replies over 1 words "
                f"{metrics['base/greedy/long_rate']:.3f} / {metrics['dpo/greedy/long_rate']:.3f}")
    assert headline in report and headline in ev.stdout
    _, table_rows = table(report, "Metrics")
    assert "greedy/long_rate" in table_rows and "greedy/honesty" not in table_rows


@pytest.mark.parametrize("args, message", [
    (["eval.behaviour._target_=my_plugins.NoSuchMetric"],
     "eval.behaviour._target_='my_plugins.NoSuchMetric' cannot be imported (my_plugins has no attribute "
     "'NoSuchMetric')"),
    (["eval.behaviour._target_=my_plugins.ShorterWins"],
     "eval.behaviour._target_ built a ShorterWins, which lacks headline, label, metrics"),
])
def test_a_bad_plugin_fails_before_any_model_work(tmp_path, args, message):
    out = run_cli([*SMOKE, *args], cwd=tmp_path, env=ENV, timeout=120)
    assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "loaded on" not in out.stdout
