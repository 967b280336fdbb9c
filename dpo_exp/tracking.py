"""MLflow: where runs go, what a run records, and how a run ends.

- URI: `tracking.uri`, else $MLFLOW_TRACKING_URI, else `sqlite:///<current dir>/mlflow.db` with
  artifacts in `<current dir>/mlartifacts` (sqlite is MLflow's recommended local backend; the
  file store is deprecated).
- Params: the flattened resolved config (`train.learning_rate`, `beta.value`, ...), so runs of a
  sweep line up in the UI's compare view. Metrics come from TRL through transformers'
  MLflowCallback (we only stop it from logging all TrainingArguments as params).
- Status: a run that raises is marked FAILED (KILLED on Ctrl-C/SIGTERM), never left RUNNING.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from dpo_exp import distributed
from dpo_exp.config import Config, UserError, flatten

# Tags every run carries, for finding runs without knowing their ids.
TAG_FINGERPRINT = "dpo_exp.fingerprint"
TAG_RUN_DIR = "dpo_exp.run_dir"
TAG_COMMAND = "dpo_exp.command"


def on_main_process(fn):
    """In a multi-process run only rank 0 writes to MLflow; elsewhere the call does nothing.

    Without this guard the fluent API would quietly start one extra MLflow run per rank.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if distributed.is_main() else None

    return wrapper


def resolve_uri(cfg: Config) -> str:
    return resolve_uri_from(cfg.tracking.uri)


def resolve_uri_from(uri: str | None) -> str:
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def ui_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail before any model work if the tracking store cannot be used."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                resp.read()
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(
                f"The MLflow tracking server at {uri} is unreachable ({reason}). The URI comes from "
                f"{'tracking.uri' if not os.environ.get('MLFLOW_TRACKING_URI') else 'MLFLOW_TRACKING_URI'}. "
                "Fix: start it, e.g. `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri "
                "sqlite:///mlflow.db`, or unset MLFLOW_TRACKING_URI (and tracking.uri) to log to the local "
                "sqlite store in the current directory."
            ) from None
    elif parsed.scheme == "sqlite":
        db = Path(uri[len("sqlite:///"):])
        if not db.parent.is_dir() or not os.access(db.parent, os.W_OK):
            raise UserError(
                f"The MLflow store {uri} cannot be written: {db.parent} is not a writable directory. "
                "Fix: run from a writable directory, or set tracking.uri=sqlite:////abs/path/mlflow.db."
            )


def get_or_create_experiment(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        # Beside the database, not relative to whatever directory a later process runs in.
        artifact_location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # created meanwhile by a parallel sweep job
        return client.get_experiment_by_name(name).experiment_id


@contextlib.contextmanager
def mlflow_run(cfg: Config, *, uri: str, run_name: str, fingerprint: str, run_dir: Path, command: str,
               run_id: str | None = None, parent_run_id: str | None = None) -> Iterator[str]:
    """Start (or, with `run_id`, reopen) the run; yield its id; end it FINISHED, FAILED or KILLED.

    Ranks > 0 of a multi-process run yield None and touch nothing (rank 0 owns the run)."""
    if not distributed.is_main():
        yield None
        return
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = get_or_create_experiment(client, cfg.tracking.experiment, uri)
    tags = {TAG_FINGERPRINT: fingerprint, TAG_RUN_DIR: str(run_dir), TAG_COMMAND: command}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    if run_id is None:
        run = client.create_run(experiment_id, run_name=run_name, tags=tags)
        run_id = run.info.run_id
        params = flatten(cfg)
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit
            client.log_batch(run_id, params=items[i : i + 100])
    active = mlflow.start_run(run_id=run_id)
    status = "FINISHED"
    try:
        yield run_id
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if mlflow.active_run() is None:  # something ended it early: reattach to set the status
            mlflow.start_run(run_id=run_id)
        mlflow.end_run(status=status)
        del active


@on_main_process
def record_failed_run(cfg, *, uri: str, run_name: str, parent_run_id: str | None, error: str) -> None:
    """A FAILED run for a sweep job that stopped before training (e.g. an invalid value in the grid)."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    tags = {"dpo_exp.error": error[:5000]}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(get_or_create_experiment(client, cfg.tracking.experiment, uri), run_name=run_name, tags=tags)
    try:
        params = [Param(k, v[:6000]) for k, v in flatten(cfg).items()]
    except Exception:  # values that cannot even be resolved: the error tag says why
        params = []
    for i in range(0, len(params), 100):
        client.log_batch(run.info.run_id, params=params[i : i + 100])
    client.set_terminated(run.info.run_id, status="FAILED")


@on_main_process
def set_parent(uri: str, run_id: str, parent_run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(uri).set_tag(run_id, "mlflow.parentRunId", parent_run_id)


@on_main_process
def log_dict_artifact(data, name: str) -> None:
    import mlflow

    mlflow.log_dict(data, name)


@on_main_process
def log_text_artifact(text: str, name: str) -> None:
    import mlflow

    mlflow.log_text(text, name)


@on_main_process
def log_table(rows: list[dict], name: str) -> None:
    """A table the MLflow UI renders (artifact view and the evaluation tab)."""
    import mlflow

    if rows:
        columns = list(rows[0].keys())
        mlflow.log_table({c: [json.dumps(r.get(c)) if isinstance(r.get(c), (list, dict)) else r.get(c) for r in rows]
                          for c in columns}, artifact_file=name)


@on_main_process
def set_tags(tags: dict[str, str]) -> None:
    import mlflow

    if tags:
        mlflow.set_tags(tags)


@on_main_process
def log_metrics(metrics: dict[str, float], step: int) -> None:
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


@on_main_process
def log_folder(path: Path, artifact_path: str) -> None:
    import mlflow

    mlflow.log_artifacts(str(path), artifact_path=artifact_path)


@on_main_process
def log_run_params(params: dict[str, str]) -> None:
    """Params known only once training is set up (processes, global batch).

    A resumed run that changes one (e.g. fewer GPUs) keeps the first value, as MLflow params are
    immutable, and records the new one as a tag `dpo_exp.resumed.<key>`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    for key, value in params.items():
        try:
            mlflow.log_param(key, value)
        except MlflowException:
            mlflow.set_tag(f"dpo_exp.resumed.{key}", value)
