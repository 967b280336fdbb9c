"""Sweeps (`python -m dpo_exp -m ...`): one MLflow parent run per sweep, one child per job.

A Hydra callback (registered in conf/config.yaml under hydra.callbacks) does the grouping:

- `on_multirun_start` finds or creates the parent run. Its key, the sweep fingerprint, is the
  command line's overrides plus the sweeper's params, so re-running the same sweep command
  reuses the same parent (a `dpo_exp.runs.Record`, RUNNING and owned by the sweep process); jobs get
  its id (and the tracking URI) through $DPO_EXP_PARENT_RUN_ID, inherited by joblib and submitit
  workers, and through `.dpo_exp_sweep.json` in the sweep dir, which reaches Slurm jobs on clusters
  that submit with `--export=NONE` (`dpo_exp.runs.job_parent` reads them). A parallel launcher with
  a sqlite store gets a warning (local processes) or an error (Slurm) pointing at `mlflow server`.
- each job (dpo_exp.__main__) logs a child run tagged `mlflow.parentRunId`, named by what it
  overrides (`beta=0.05 train.learning_rate=1e-06`); the UI nests children under the parent.
- `on_multirun_end` builds the summary (dpo_exp.summary) from MLflow, prints it and logs it with
  its plots on the parent run, which ends FINISHED only if every job finished.

Jobs in a sweep resume by default: a job whose config already finished is skipped, a failed or
interrupted one continues from its last checkpoint. A failing job is recorded as FAILED and the
other jobs go on (dpo_exp.cli.hydra_app); then the parent ends FAILED and the command exits 1, the summary saying which
job failed and why. Ctrl-C/SIGTERM or an error in the sweep process itself ends the parent KILLED
or FAILED (dpo_exp.cli.on_abort); a SIGKILLed sweep's parent is marked KILLED by the next command
that touches the store (dpo_exp.runs.reap).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dpo_exp import cli, runs, summary, tracking
from dpo_exp.config import UserError

TAG_SWEEP = "dpo_exp.sweep_fingerprint"
TAG_ROLE = "dpo_exp.role"


def _sweeper_params(config: DictConfig) -> dict:
    params = config.hydra.sweeper.get("params") or {}
    return OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else dict(params)


def sweep_fingerprint(config: DictConfig) -> str:
    overrides = sorted(str(o) for o in config.hydra.overrides.task)
    params = _sweeper_params(config)
    payload = json.dumps({"overrides": overrides, "params": params, "experiment": config.tracking.experiment},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def sweep_name(config: DictConfig) -> str:
    from dpo_exp.config import describe_overrides

    params = [f"{k}={v}" for k, v in _sweeper_params(config).items()]
    return "sweep " + describe_overrides([str(o) for o in config.hydra.overrides.task] + params)


class MLflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.parent: runs.Record | None = None
        self.forget_abort_hook = lambda: None

    @cli.carry_user_errors  # Hydra turns a callback's exception into a warning and submits the jobs anyway
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        uri = tracking.resolve_uri_from(config.tracking.uri)
        check_store_for_launcher(uri, str(config.hydra.launcher.get("_target_", "")))
        runs.open_store(uri, Path(str(config.paths.outputs)).expanduser().resolve())
        client = tracking.open_client(uri)
        experiment_id = tracking.get_or_create_experiment(client, config.tracking.experiment, uri)
        fingerprint = sweep_fingerprint(config)
        previous = client.search_runs(
            [experiment_id], filter_string=f"tags.`{TAG_SWEEP}` = '{fingerprint}' and tags.`{TAG_ROLE}` = 'sweep'",
            order_by=["attributes.start_time DESC"], max_results=1)
        sweep_dir = Path(config.hydra.sweep.dir)
        command = "python -m dpo_exp -m " + " ".join(str(o) for o in config.hydra.overrides.task)
        self.parent = runs.Record.start(
            uri, experiment=config.tracking.experiment, name=sweep_name(config),
            run_id=previous[0].info.run_id if previous else None,
            tags={TAG_SWEEP: fingerprint, TAG_ROLE: "sweep", "dpo_exp.sweep_dir": str(sweep_dir.resolve()),
                  tracking.TAG_COMMAND: command, tracking.TAG_RUN_DIR: str(sweep_dir.resolve())})
        if previous:
            cli.log(f"sweep: continuing parent run {self.parent.run_id} (finished jobs are skipped)")
        else:
            cli.log(f"sweep: parent run {self.parent.run_id} in {uri}")
        os.environ[runs.PARENT_ENV] = self.parent.run_id
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / runs.PARENT_FILE).write_text(json.dumps({"parent_run_id": self.parent.run_id,
                                                              "tracking_uri": uri}))
        # Whatever stops the sweep process from here on (a job's composition error, Ctrl-C/SIGTERM, a
        # crash) ends the parent FAILED or KILLED; a SIGKILL leaves it to the next command (runs.reap).
        self.forget_abort_hook = cli.on_abort(self.abort)

    def abort(self, status: str) -> None:
        self.parent.abort(status)
        os.environ.pop(runs.PARENT_ENV, None)
        cli.log(f"sweep parent run {self.parent.run_id} marked {status}; re-run the same command to continue it "
                "(finished jobs are skipped)")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent is None:
            return
        parent_id = self.parent.run_id
        client = tracking.open_client(self.parent.uri)
        out_dir = Path(config.hydra.sweep.dir) / "summary"
        try:
            built = summary.build(self.parent.uri, parent_id, out_dir)
            print("\n" + built.markdown, flush=True)
            for path in built.files:
                client.log_artifact(parent_id, str(path), artifact_path="summary")
        except Exception:  # noqa: BLE001 - Hydra would turn it into a warning and exit 0
            traceback.print_exc()
            cli.error("dpo_exp", "the sweep's summary could not be written (the error above); the jobs' own runs are "
                      f"complete in MLflow. Rebuild it later: python -m dpo_exp.report {parent_id}")
            sys.exit(1)  # cli.run_command marks the parent FAILED
        cli.log(f"sweep summary: {out_dir} (also on MLflow run {parent_id})")
        failed = [row for row in built.rows if row["status"] != "FINISHED"]
        client.set_tag(parent_id, "dpo_exp.failed_jobs", str(len(failed)))
        # Not FINISHED unless every job finished: a sweep with a hole in its grid is not a result.
        self.parent.finish("FAILED" if failed else "FINISHED",
                           f"{len(failed)} of {len(built.rows)} jobs did not finish" if failed else None)
        self.forget_abort_hook()
        os.environ.pop(runs.PARENT_ENV, None)
        if failed:
            cli.log(f"sweep: {len(failed)} of {len(built.rows)} jobs did not finish (listed above); parent run "
                    f"{parent_id} marked FAILED. Fix what they say, then re-run the same command: finished "
                    "jobs are skipped, the others resume.")
            sys.exit(1)


def check_store_for_launcher(uri: str, launcher: str) -> None:
    """Parallel jobs and a sqlite file: a warning on one machine, an error on a cluster."""
    if not uri.startswith("sqlite:") or launcher.endswith("BasicLauncher") or not launcher:
        return
    server = ("start `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$PWD/mlflow.db` "
              "and set MLFLOW_TRACKING_URI=http://127.0.0.1:5000")
    if "Slurm" in launcher or "Ray" in launcher:
        raise UserError(
            f"This sweep runs its jobs on cluster nodes ({launcher.rsplit('.', 1)[-1]}) but logs to the sqlite file "
            f"{uri}: sqlite on a shared filesystem is not safe for concurrent writers, and a node may not see the "
            "file at all. Fix: on the login node, `mlflow server --host 0.0.0.0 --port 5000 --allowed-hosts "
            "\"$(hostname),$(hostname):5000\" --backend-store-uri sqlite:///$PWD/mlflow.db --artifacts-destination "
            "$PWD/mlartifacts`, then pass tracking.uri=http://<login node>:5000 (docs/scaling.md)."
        )
    print(f"[dpo_exp] warning: parallel sweep jobs ({launcher.rsplit('.', 1)[-1]}) write to the sqlite file {uri}, "
          f"which serialises them and can fail with 'database is locked'. For parallel jobs {server}.",
          file=sys.stderr, flush=True)
