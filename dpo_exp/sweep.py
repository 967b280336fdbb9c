"""Sweeps (`python -m dpo_exp -m ...`): one MLflow parent run per sweep, one child per job.

A Hydra callback (registered in conf/config.yaml under hydra.callbacks) does the grouping:

- `on_multirun_start` finds or creates the parent run. Its key, the sweep fingerprint, is the
  command line's overrides plus the sweeper's params, so re-running the same sweep command
  reuses the same parent; jobs get its id (and the tracking URI) through $DPO_EXP_PARENT_RUN_ID,
  inherited by joblib and submitit workers, and through `.dpo_exp_sweep.json` in the sweep dir,
  which reaches Slurm jobs on clusters that submit with `--export=NONE`. A parallel launcher with
  a sqlite store gets a warning (local processes) or an error (Slurm) pointing at `mlflow server`.
- each job (dpo_exp.__main__) logs a child run tagged `mlflow.parentRunId`, named by what it
  overrides (`beta=0.05 train.learning_rate=1e-06`); the UI nests children under the parent.
- `on_multirun_end` builds the summary (dpo_exp.report) from MLflow, prints it and logs it with
  its plots on the parent run, which ends FINISHED only if every job finished.

Jobs in a sweep resume by default: a job whose config already finished is skipped, a failed or
interrupted one continues from its last checkpoint. A failing job is recorded as FAILED and the
other jobs go on; then the parent ends FAILED and the command exits 1, the summary saying which
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

PARENT_ENV = "DPO_EXP_PARENT_RUN_ID"
PARENT_FILE = ".dpo_exp_sweep.json"  # in the sweep dir: {"parent_run_id": ..., "tracking_uri": ...}
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
        self.parent_run_id: str | None = None
        self.uri: str | None = None
        self.forget_abort_hook = lambda: None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from dpo_exp import cli, runs, tracking
        from dpo_exp.config import UserError

        self.uri = tracking.resolve_uri_from(config.tracking.uri)
        try:
            check_store_for_launcher(self.uri, str(config.hydra.launcher.get("_target_", "")))
            tracking.check_store(self.uri)
        except UserError as e:
            # Hydra turns a callback's exception into a warning and submits the jobs anyway; stop here.
            cli.error("dpo_exp", str(e))
            sys.exit(2)
        runs.reap(Path(str(config.paths.outputs)).expanduser().resolve(), self.uri)
        client = tracking.open_client(self.uri)
        experiment_id = tracking.get_or_create_experiment(client, config.tracking.experiment, self.uri)
        fingerprint = sweep_fingerprint(config)
        previous = client.search_runs(
            [experiment_id], filter_string=f"tags.`{TAG_SWEEP}` = '{fingerprint}' and tags.`{TAG_ROLE}` = 'sweep'",
            order_by=["attributes.start_time DESC"], max_results=1)
        if previous:
            self.parent_run_id = previous[0].info.run_id
            client.update_run(self.parent_run_id, status="RUNNING")
            client.set_tag(self.parent_run_id, runs.TAG_OWNER, runs.owner())
            cli.log(f"sweep: continuing parent run {self.parent_run_id} (finished jobs are skipped)")
        else:
            run = client.create_run(experiment_id, run_name=sweep_name(config),
                                    tags={TAG_SWEEP: fingerprint, TAG_ROLE: "sweep", runs.TAG_OWNER: runs.owner(),
                                          "dpo_exp.sweep_dir": str(Path(config.hydra.sweep.dir).resolve())})
            self.parent_run_id = run.info.run_id
            cli.log(f"sweep: parent run {self.parent_run_id} in {self.uri}")
        os.environ[PARENT_ENV] = self.parent_run_id
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(json.dumps({"parent_run_id": self.parent_run_id, "tracking_uri": self.uri}))
        # Whatever stops the sweep process from here on (a job's composition error, Ctrl-C/SIGTERM, a
        # crash) ends the parent FAILED or KILLED; a SIGKILL leaves it to the next command (runs.reap).
        self.forget_abort_hook = cli.on_abort(self.abort)

    def abort(self, status: str) -> None:
        from dpo_exp import cli, tracking
        from dpo_exp.tracking import TAG_ERROR

        client = tracking.open_client(self.uri)
        client.set_tag(self.parent_run_id, TAG_ERROR, "the sweep was interrupted" if status == "KILLED"
                       else "the sweep process stopped on an error (see its console)")
        client.set_terminated(self.parent_run_id, status=status)
        os.environ.pop(PARENT_ENV, None)
        cli.log(f"sweep parent run {self.parent_run_id} marked {status}; re-run the same command to continue it "
                "(finished jobs are skipped)")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.parent_run_id:
            return
        from dpo_exp import cli, report, tracking

        client = tracking.open_client(self.uri)
        out_dir = Path(config.hydra.sweep.dir) / "summary"
        try:
            summary = report.build(self.uri, self.parent_run_id, out_dir)
            print("\n" + summary.markdown, flush=True)
            for path in summary.files:
                client.log_artifact(self.parent_run_id, str(path), artifact_path="summary")
        except Exception:  # noqa: BLE001 - Hydra would turn it into a warning and exit 0
            traceback.print_exc()
            cli.error("dpo_exp", "the sweep's summary could not be written (the error above); the jobs' own runs are "
                      f"complete in MLflow. Rebuild it later: python -m dpo_exp.report {self.parent_run_id}")
            sys.exit(1)  # cli.run_command marks the parent FAILED
        cli.log(f"sweep summary: {out_dir} (also on MLflow run {self.parent_run_id})")
        failed = [row for row in summary.rows if row["status"] != "FINISHED"]
        client.set_tag(self.parent_run_id, "dpo_exp.failed_jobs", str(len(failed)))
        # Not FINISHED unless every job finished: a sweep with a hole in its grid is not a result.
        client.set_terminated(self.parent_run_id, status="FAILED" if failed else "FINISHED")
        self.forget_abort_hook()
        os.environ.pop(PARENT_ENV, None)
        if failed:
            cli.log(f"sweep: {len(failed)} of {len(summary.rows)} jobs did not finish (listed above); parent run "
                    f"{self.parent_run_id} marked FAILED. Fix what they say, then re-run the same command: finished "
                    "jobs are skipped, the others resume.")
            sys.exit(1)


def job_parent(hydra_cfg) -> tuple[str | None, str | None]:
    """(parent run id, the parent's tracking URI) for a sweep job.

    From the environment when the launcher passed it on, else from the file the sweep wrote into
    its directory (a Slurm cluster that submits with --export=NONE drops the environment).
    """
    try:
        saved = json.loads((Path(hydra_cfg.sweep.dir) / PARENT_FILE).read_text())
    except (OSError, ValueError):
        saved = {}
    return os.environ.get(PARENT_ENV) or saved.get("parent_run_id"), saved.get("tracking_uri")


def check_store_for_launcher(uri: str, launcher: str) -> None:
    """Parallel jobs and a sqlite file: a warning on one machine, an error on a cluster."""
    from dpo_exp.config import UserError

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
            "$PWD/mlartifacts`, then pass tracking.uri=http://<login node>:5000 (README, Scaling out)."
        )
    print(f"[dpo_exp] warning: parallel sweep jobs ({launcher.rsplit('.', 1)[-1]}) write to the sqlite file {uri}, "
          f"which serialises them and can fail with 'database is locked'. For parallel jobs {server}.",
          file=sys.stderr, flush=True)
