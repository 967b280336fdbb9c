"""Sweeps: grouping in MLflow, shared reference pass, summary, failure isolation, re-runs, launchers."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, all_runs, mlflow_client, run_cli

GRID = ["-m", "+experiment=sycophancy", "+debug=smoke", "beta=0.1,0.5", "train.learning_rate=1e-3,1e-2"]
KEYS = ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
        "eval_rewards/margins", "eval_rewards/accuracies", "eval_kl/sampled", "eval_kl/sampled_full_vocab"]


def parent_and_children(runs):
    parents = [r for r in runs if r.data.tags.get("dpo_exp.role") == "sweep"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


def test_grid_sweep_groups_children_shares_the_reference_pass_and_summarises(workdir):
    out = run_cli([*GRID, f"paths.cache={workdir / 'cache'}"], cwd=workdir)
    assert out.returncode == 0, out.stderr[-3000:]
    parent, children = parent_and_children(all_runs(workdir))
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    names = sorted(c.info.run_name for c in children)
    assert names[0].startswith("sycophancy debug=smoke beta=0.1 train.learning_rate=0.001"), names
    client = mlflow_client(workdir)
    for child in children:
        for key in KEYS:
            assert key in child.data.metrics and math.isfinite(child.data.metrics[key]), (child.info.run_name, key)
    # The reference pass ran once for the whole sweep; the other three jobs reused it.
    events = sorted(c.data.tags["dpo_exp.ref_logps.train"] for c in children)
    assert events == ["cached", "cached", "cached", "computed"]
    assert len(list((workdir / "cache" / "ref_logps").glob("*.pt"))) == 2  # train and eval splits
    # So did the reference's greedy held-out replies (the "before" column): generated once, the same in every job.
    events = sorted(c.data.tags["dpo_exp.heldout_before"] for c in children)
    assert events == ["cached", "cached", "cached", "computed"]
    assert len(list((workdir / "cache" / "heldout_before").glob("*.json"))) == 1
    columns = []
    for child in children:
        table = json.loads(Path(client.download_artifacts(child.info.run_id, "heldout_generations.json",
                                                          str(workdir / child.info.run_id))).read_text())
        columns.append([row[table["columns"].index("before")] for row in table["data"]])
    assert columns[0] and all(c == columns[0] for c in columns)

    # Summary: printed, written, logged on the parent, and equal to the children's metrics.
    assert "| run |" in out.stdout and "eval margin" in out.stdout
    (summary_dir,) = workdir.glob("outputs/sycophancy/multirun_*/summary")
    rows = list(csv.DictReader(open(summary_dir / "summary.csv")))
    assert len(rows) == 4
    by_id = {c.info.run_id: c for c in children}
    for row in rows:
        child = by_id[row["run_id"]]
        assert row["status"] == "FINISHED"
        assert float(row["eval margin"]) == pytest.approx(child.data.metrics["eval_rewards/margins"])
        assert float(row["KL"]) == pytest.approx(child.data.metrics["eval_kl/sampled_full_vocab"])
        assert row["beta.value"] == child.data.params["beta.value"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/summary.md", "summary/summary.csv", "summary/kl_reward_frontier.png",
            "summary/training_curves.png", "summary/margin_accuracy_vs_value.png"} <= artifacts
    assert parent.info.status == "FINISHED"

    # The report can be rebuilt from MLflow alone.
    rebuilt = subprocess.run([sys.executable, "-m", "dpo_exp.report", parent.info.run_id, "--tracking-uri",
                              f"sqlite:///{workdir / 'mlflow.db'}", "--out", str(workdir / "rebuilt")],
                             cwd=workdir, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert (workdir / "rebuilt" / "summary.md").read_text() == (summary_dir / "summary.md").read_text()


def test_failed_jobs_are_isolated_recorded_and_rerun_skips_finished_ones(workdir):
    # beta=-1 fails validation; loss=ipo with a tiny beta diverges (non-finite loss); 0.5 trains.
    grid = ["-m", "+experiment=sycophancy", "+debug=smoke", "loss=ipo", "beta=0.5,-1,1e-30", "train.logging_steps=1"]
    out = run_cli(grid, cwd=workdir)
    assert out.returncode == 1, out.stderr[-3000:]  # a sweep with failed jobs is not a success
    assert "Not finished (2 of 3)" in out.stdout and "beta must be > 0" in out.stdout
    parent, children = parent_and_children(all_runs(workdir))
    assert parent.info.status == "FAILED"
    status = {c.data.params.get("beta.value"): c.info.status for c in children}
    assert status == {"0.5": "FINISHED", "-1.0": "FAILED", "1e-30": "FAILED"}
    failed = next(c for c in children if c.data.params.get("beta.value") == "-1.0")
    assert "beta must be > 0" in failed.data.tags["dpo_exp.error"]
    (summary_dir,) = workdir.glob("outputs/sycophancy/multirun_*/summary")
    assert sorted(r["status"] for r in csv.DictReader(open(summary_dir / "summary.csv"))) == ["FAILED", "FAILED", "FINISHED"]
    finished_id = next(c.info.run_id for c in children if c.info.status == "FINISHED")

    time.sleep(1.1)  # a later second, so the newest sweep directory sorts last
    again = run_cli(grid, cwd=workdir)
    assert again.returncode == 1
    assert again.stdout.count("nothing to do (skipped)") == 1
    parent2, children2 = parent_and_children(all_runs(workdir))
    assert parent2.info.run_id == parent.info.run_id  # same sweep, same parent run
    assert len(children2) == 3  # one record per job, not one per attempt
    newest = max(workdir.glob("outputs/sycophancy/multirun_*/summary"), key=lambda p: p.parent.name)
    assert len(list(csv.DictReader(open(newest / "summary.csv")))) == 3
    finished = [c for c in children2 if c.info.status == "FINISHED"]
    assert [c.info.run_id for c in finished] == [finished_id]  # not trained twice


def search_runs_rest(url: str, experiment_id: str) -> list[dict]:
    body = json.dumps({"experiment_ids": [experiment_id], "max_results": 100}).encode()
    req = urllib.request.Request(url + "/api/2.0/mlflow/runs/search", data=body,
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())["runs"]


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_launchers_log_a_sweep_to_a_tracking_server(launcher, workdir, mlflow_server):
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=10"]
    args = ["-m", "+experiment=sycophancy", "+debug=smoke", "beta=0.1,0.5", f"hydra/launcher={launcher}", *extra]
    out = run_cli(args, cwd=workdir, env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    exp = json.loads(urllib.request.urlopen(
        mlflow_server + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=sycophancy", timeout=30).read())
    runs = search_runs_rest(mlflow_server, exp["experiment"]["experiment_id"])
    tags = lambda r: {t["key"]: t["value"] for t in r["data"].get("tags", [])}  # noqa: E731
    (parent,) = [r for r in runs if tags(r).get("dpo_exp.role") == "sweep"]
    children = [r for r in runs if tags(r).get("mlflow.parentRunId") == parent["info"]["run_id"]]
    assert len(children) == 2 and all(c["info"]["status"] == "FINISHED" for c in children)
    # Each job process resolved its sweep's directory, not a fresh one: one sweep dir, holding both jobs.
    (sweep_dir,) = workdir.glob("outputs/sycophancy/multirun_*")
    assert (sweep_dir / "0" / "run_state.json").is_file() and (sweep_dir / "1" / "run_state.json").is_file()
    for child in children:
        keys = {m["key"] for m in child["data"]["metrics"]}
        assert {"loss", "eval_rewards/margins", "eval_kl/sampled"} <= keys


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_mlflow_ui_shows_the_sweep_in_a_browser(workdir, mlflow_server):
    out = run_cli(["-m", "+experiment=sycophancy", "+debug=smoke", "beta=0.1,0.5"], cwd=workdir,
                  env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert out.returncode == 0, out.stderr[-3000:]
    exp = json.loads(urllib.request.urlopen(
        mlflow_server + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=sycophancy", timeout=30).read())
    page = f"{mlflow_server}/#/experiments/{exp['experiment']['experiment_id']}/runs"
    shot = REPO / "docs" / "mlflow_ui_sweep.png" if os.environ.get("DPO_EXP_SAVE_SCREENSHOT") else workdir / "ui.png"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={workdir / 'chrome'}", "--window-size=1600,1000", "--virtual-time-budget=30000",
         "--dump-dom", page], capture_output=True, text=True, timeout=120)
    # The parent row (children are nested under it, collapsed) is on the experiment's runs page.
    assert "sweep sycophancy debug=smoke beta=0.1,0.5" in dom.stdout, dom.stdout[-1500:]
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={workdir / 'chrome2'}", "--window-size=1600,1000", "--virtual-time-budget=30000",
         f"--screenshot={shot}", page], capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000


def test_over_seeds_reports_mean_and_spread_per_setting():
    from dpo_exp.summary import over_seeds

    def row(beta, seed, after, status="FINISHED"):
        return {"beta.value": beta, "train.seed": seed, "status": status, "hold_rate before": 0.3,
                "hold_rate after": after}

    rows = [row("0.1", "1", 0.6), row("0.1", "2", 0.7), row("0.1", "3", 0.8), row("0.5", "1", 0.4),
            row("0.5", "2", 0.9, status="FAILED")]  # a failed job is left out of the mean
    text = over_seeds(rows, ["beta.value", "train.seed"], ["hold_rate"])
    lines = [line for line in text.splitlines() if line.startswith("| 0.")]
    assert lines[0] == "| 0.1 | 3 | 0.3 -> 0.7 +- 0.1 (+0.400 +- 0.1) |"
    assert lines[1] == "| 0.5 | 1 | 0.3 -> 0.4 +-  (+0.100 +- ) |"  # one seed: no spread
    assert over_seeds(rows, ["beta.value"], ["hold_rate"]) == ""  # no seed sweep, no table
