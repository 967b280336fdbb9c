"""MLflow: where runs go, what a run records, and how a run ends.

- URI: `tracking.uri`, else $MLFLOW_TRACKING_URI, else `sqlite:///<current dir>/mlflow.db` with
  artifacts in `<current dir>/mlartifacts` (sqlite is MLflow's recommended local backend; the
  file store is deprecated).
- Params: the flattened resolved config (`train.learning_rate`, `beta.value`, ...), so runs of a
  sweep line up in the UI's compare view. Metrics come from TRL through transformers'
  MLflowCallback (we only stop it from logging all TrainingArguments as params, and a resumed
  run from logging a step twice).
- Status: `start_run` and `end_run` are the MLflow calls; dpo_exp.runs decides when (every
  command's run lifecycle lives there).
- A fresh sqlite store is created under a file lock, so runs started at once do not race MLflow's
  schema migration.
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
TAG_ERROR = "dpo_exp.error"  # why a run FAILED or was KILLED
TAG_OWNER = "dpo_exp.owner"  # "<pid>@<host>#<process start>": who is running this MLflow run (dpo_exp.runs)
# The run's behaviour metric names its headline rates in this tag (`__main__` sets it), so a sweep's summary
# (dpo_exp.summary) can show them before -> after, and their mean and spread over seeds.
TAG_HEADLINE = "dpo_exp.behaviour.headline"


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
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        # Relative to this directory, written absolute: the URI a resumed run compares must not
        # depend on where the next command is started.
        uri = f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    return uri


def uri_source() -> str:
    return "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "tracking.uri"


def ui_command(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def check_store(uri: str, timeout: float = 5.0) -> None:
    """Fail before any model work if the tracking store cannot be used. Creates nothing: a new sqlite
    store is created when the first run is recorded (`open_client`)."""
    parsed = urlparse(uri)
    fix_default = ("or unset MLFLOW_TRACKING_URI (and tracking.uri) to log to the local sqlite store "
                   "mlflow.db in the current directory")
    if parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                resp.read()
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(
                f"The MLflow tracking server at {uri} is unreachable ({reason}). The URI comes from {uri_source()}. "
                "Fix: start it, e.g. `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri "
                f"sqlite:///mlflow.db`, {fix_default}."
            ) from None
        return
    if parsed.scheme in ("file", ""):
        raise UserError(
            f"The MLflow URI {uri} (from {uri_source()}) names a folder store, which MLflow 3 no longer opens by "
            "default. Fix: use a database, e.g. tracking.uri=sqlite:////abs/path/mlflow.db (`mlflow "
            "migrate-filestore` converts an existing folder store), a server URL http://host:port, " + fix_default + ".")
    if parsed.scheme == "sqlite":
        if not uri.startswith("sqlite:////"):
            raise UserError(f"The MLflow URI {uri} is not a sqlite file URI. Fix: write sqlite:////abs/path/mlflow.db "
                            "(four slashes for an absolute path).")
        db = Path(uri[len("sqlite:///"):])
        if not db.parent.is_dir() or not os.access(db.parent, os.W_OK):
            raise UserError(
                f"The MLflow store {uri} cannot be written: {db.parent} is not a writable directory. "
                "Fix: run from a writable directory, or set tracking.uri=sqlite:////abs/path/mlflow.db."
            )
        if db.exists():  # an existing file must be an MLflow database
            open_client(uri)
        return
    open_client(uri)


_opened: set[str] = set()


def open_client(uri: str):
    """An MlflowClient for `uri`. The first in this process opens the store, and a new sqlite file is
    created under `store_lock`: two processes creating one database at once crash in MLflow's schema
    migration."""
    from mlflow.tracking import MlflowClient

    if uri not in _opened:
        if uri.startswith("sqlite:///"):
            with store_lock(uri):
                _open_store(uri)
        else:
            _open_store(uri)
        _opened.add(uri)
    return MlflowClient(uri)


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock beside a sqlite store (`mlflow.db.lock`): held while a process first opens it."""
    import fcntl

    with open(uri[len("sqlite:///"):] + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_store(uri: str) -> None:
    """Open (and for a new sqlite file, create) the store once, turning MLflow's errors into one paragraph."""
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure to open the store is the user's URI or database
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"The MLflow store {uri} (from {uri_source()}) cannot be opened: {first[:400]}. Fix: use "
            "tracking.uri=sqlite:////abs/path/mlflow.db, a server URL http://host:port, or a database URL "
            "MLflow supports (postgresql://, mysql://), or unset it to use mlflow.db in the current directory."
        ) from None


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


def start_run(uri: str, *, experiment: str, run_name: str, tags: dict[str, str], params: dict[str, str],
              run_id: str | None = None) -> str:
    """Create a run with `tags` and `params` in `experiment`, or, with `run_id`, reopen that one: RUNNING
    again, `tags` set, the reason it stopped last time (`dpo_exp.error`) removed. Returns its id.
    (dpo_exp.runs.Record calls this: it adds the owner and the common tags, and ends the run.)"""
    from mlflow.entities import Param, RunStatus, RunTag

    client = open_client(uri)
    if run_id is None:
        experiment_id = get_or_create_experiment(client, experiment, uri)
        run_id = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit
            client.log_batch(run_id, params=items[i : i + 100])
        return run_id
    client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    if TAG_ERROR in client.get_run(run_id).data.tags:  # why it stopped last time; running again now
        client.delete_tag(run_id, TAG_ERROR)
    return run_id


@contextlib.contextmanager
def active(uri: str, run_id: str) -> Iterator[None]:
    """Within the block, `run_id` is MLflow's active run: the fluent API (`log_metrics`, `log_table`, ...,
    and transformers' MLflowCallback) logs to it, each (metric, step) the run already holds only once. Opened
    inside another active run's block (a child), it is pushed on MLflow's run stack: when it ends, the outer
    run is the active one again."""
    import mlflow

    client = open_client(uri)
    mlflow.set_tracking_uri(uri)
    _logged.clear()
    for key in client.get_run(run_id).data.metrics:
        _logged.update((key, m.step) for m in client.get_metric_history(run_id, key))
    # Inside another active run (a loop's stage inside the loop's parent run): MLflow's run stack, so that ending
    # this run makes the outer one active again.
    mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)
    try:
        yield
    finally:
        _logged.clear()


def end_run(uri: str, run_id: str, status: str, error: str | None = None) -> None:
    """End the run: `status` (FINISHED, FAILED, KILLED), and why as the tag `dpo_exp.error`. Never raises:
    it runs while the run's own error is on its way out, which must not be hidden (e.g. a full disk
    under the store), so a failure here is said on the console."""
    import mlflow

    try:
        client = open_client(uri)
        if error:
            client.set_tag(run_id, TAG_ERROR, error[:5000])
        active_run = mlflow.active_run()
        if active_run is not None and active_run.info.run_id == run_id:
            mlflow.end_run(status=status)
        else:  # not the active run (a sweep's parent), or something ended it early
            client.set_terminated(run_id, status=status)
    except Exception as e:  # noqa: BLE001
        print(f"[dpo_exp] could not mark MLflow run {run_id} {status}: {e}", flush=True)


# (metric, step) pairs the active run holds: a resumed run recomputes the steps after its checkpoint,
# and MLflow, which cannot delete a value, would otherwise keep two for each of them (Trainer also logs
# `epoch` with both the train and the eval line of a step).
_logged: set[tuple[str, int]] = set()


def unlogged(metrics: dict, step: int) -> dict:
    """`metrics` less the ones the active run already holds at `step`; the rest count as logged now."""
    fresh = {k: v for k, v in metrics.items() if (k, step) not in _logged}
    _logged.update((k, step) for k in fresh)
    return fresh


@on_main_process
def record_failed_run(cfg, *, uri: str, run_name: str, parent_run_id: str | None, fingerprint: str,
                      error: str) -> None:
    """A FAILED run for a sweep job that stopped before training (e.g. an invalid value in the grid).
    A job that already has such a record under this parent (a re-run sweep) updates it instead."""
    client = open_client(uri)
    tags = {TAG_FINGERPRINT: fingerprint}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
        experiment_id = get_or_create_experiment(client, cfg.tracking.experiment, uri)
        earlier = client.search_runs([experiment_id], filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`{TAG_FINGERPRINT}` = '{fingerprint}'"),
            max_results=1)
        if earlier:
            end_run(uri, earlier[0].info.run_id, "FAILED", error)
            return
    try:
        params = flatten(cfg)
    except Exception:  # values that cannot even be resolved: the error tag says why
        params = {}
    end_run(uri, start_run(uri, experiment=cfg.tracking.experiment, run_name=run_name, tags=tags, params=params),
            "FAILED", error)


def running_runs(uri: str, owner_tag: str) -> list[tuple[str, str, str]]:
    """(run id, name, owner) of every RUNNING run in the store that carries `owner_tag`."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        return []  # no store yet, nothing in it
    client = open_client(uri)
    experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    if not experiments:
        return []
    found = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=1000)
    return [(r.info.run_id, r.info.run_name, r.data.tags[owner_tag]) for r in found if owner_tag in r.data.tags]


@on_main_process
def mark_killed(uri: str, run_id: str, why: str) -> None:
    """KILLED, if the run is still RUNNING (a finished run stays finished)."""
    client = open_client(uri)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, TAG_ERROR, why)
        client.set_terminated(run_id, status="KILLED")


@on_main_process
def set_parent(uri: str, run_id: str, parent_run_id: str) -> None:
    open_client(uri).set_tag(run_id, "mlflow.parentRunId", parent_run_id)


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

    metrics = unlogged({k: float(v) for k, v in metrics.items()}, step)
    if metrics:
        mlflow.log_metrics(metrics, step=step)


@on_main_process
def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path)


@on_main_process
def log_folder(path: Path, artifact_path: str) -> None:
    import mlflow

    mlflow.log_artifacts(str(path), artifact_path=artifact_path)


def log_parallelism(trainer) -> None:
    """How the run is spread over processes, as MLflow params `run.*` (the console line is ConsoleProgress's)."""
    args = trainer.args
    strategy = "deepspeed" if trainer.is_deepspeed_enabled else "fsdp" if trainer.is_fsdp_enabled else "ddp"
    log_run_params({
        "run.num_processes": str(args.world_size),
        "run.global_batch_size": str(args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps),
        "run.parallelism": strategy,
    })


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
