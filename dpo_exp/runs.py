"""A run's lifecycle, in one place: every command opens its MLflow run (and training its directory
and `run_state.json`) through this module, and nowhere else.

Any command (eval, build, audit; a labeling app or an iterative loop later):

    job = runs.Job.from_hydra(cfg, app="dpo_exp.eval")   # run dir, name, command line, MLflow URI; nothing written
    runs.open_store(job.uri, job.outputs)               # store checked (UserError if unusable), dead runs reaped
    ...check every input...                             # before any run is recorded
    with runs.tracked(job, experiment="x-eval", params=flatten(conf)) as run_id:   # RUNNING, owned by this process
        ...the work; tracking.log_* logs to this run...  # ends FINISHED; an error: FAILED; Ctrl-C/SIGTERM: KILLED

Training adds its directory, `run_state.json` and resume on top of the same calls:

    job = runs.Job.from_hydra(cfg)
    runs.open_store(job.uri, job.outputs)
    previous = runs.previous_run(job)               # resume lookup
    with runs.open_run(job, conf, cfg, previous) as run:   # directory, state file, `tracked` MLflow run
        run.summary = train(...)

A run whose lifetime is not one `with` block (a sweep's parent, open from Hydra's on_multirun_start to
on_multirun_end) is a `Record`: `Record.start(...)` then `record.finish(status, why)`, with
`cli.on_abort(record.abort)` so that whatever stops the process in between ends it too.

A run with child runs in the same process (the loop: a parent run, a child run per stage) opens the parent
with `open_run` and each child with `tracked(child_job(job, ...))` inside the parent's block:

    with runs.open_run(job, conf, cfg, previous) as parent:            # the parent: directory, state file, RUNNING
        with runs.tracked(runs.child_job(job, parent, dir, "round 1 build"), experiment=..., params={}) as child_id:
            ...                                                          # the child is MLflow's active run here
        # the child ended FINISHED / FAILED / KILLED like any tracked run; the parent is active again

A child is a run like any other (the same states, moves and tags, plus `mlflow.parentRunId`); an error or
an interrupt in it ends the child, then the parent, each in its true state. `tracked(..., run_id=...)`
reopens a child that an earlier, killed process left (a resumed loop continues its training stage in it).

A run's status, the same in `run_state.json` (lower case) and in MLflow:

- RUNNING: its process (pid, host and start time, in the `dpo_exp.owner` tag every run carries, and in
  run_state.json) is alive.
- FINISHED: it completed; `resume=true` (or re-running a sweep) skips it.
- FAILED: it stopped on an error, whose message is the `dpo_exp.error` tag; resumable.
- KILLED: stopped by Ctrl-C or SIGTERM (`dpo_exp.error`: interrupted), or its process vanished (SIGKILL,
  out of memory, a lost machine): any later dpo_exp command that opens the same outputs folder or
  MLflow store (`open_store`) finds such a run and marks it KILLED, saying why. Resumable.

The moves: `tracked`/`Record.start` -> RUNNING (a new run, or an earlier one reopened); the end of the
block or `finish` -> FINISHED, FAILED or KILLED; `reap` -> KILLED for a RUNNING run whose owner is gone;
`Job.record_failure` -> a FAILED record, never RUNNING, for a sweep job refused before its run opened.
Nothing else sets a status, so no command leaves a run RUNNING unless its process died, and then the
next command repairs it. A command's run carries the tags `dpo_exp.owner`, `dpo_exp.command` (the
command line that reproduces it), `dpo_exp.run_dir` and `dpo_exp.fingerprint` (of its config; a
sweep's parent has its sweep's `dpo_exp.sweep_fingerprint` instead). How the process then exits (a
UserError: its paragraph, exit 2; Ctrl-C 130; SIGTERM 143) is `dpo_exp.cli.run_command`'s.

`resume=true` looks under `paths.outputs` for the newest run of the same config fingerprint: an
unfinished one continues from its last checkpoint into the same MLflow run, where every metric keeps
exactly one value per step; a finished one is reported and skipped; with none, a new run starts.

In a multi-process run (torchrun / accelerate launch) rank 0 alone looks up, reaps and writes the
record (`distributed.is_main`); every rank gets the lookup's answer and the run's directory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from hydra.experimental.callback import Callback

from dpo_exp import distributed, tracking
from dpo_exp.cli import Interrupted, carry_user_errors, log
from dpo_exp.config import UserError
from dpo_exp.tracking import TAG_OWNER

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from dpo_exp.config import Config

STATE_FILE = "run_state.json"
TAG_WARNING = "dpo_exp.warning."
# A sweep's jobs find its parent run through the environment (inherited by joblib and submitit workers)
# and through this file in the sweep dir, which reaches Slurm jobs submitted with --export=NONE.
PARENT_ENV = "DPO_EXP_PARENT_RUN_ID"
PARENT_FILE = ".dpo_exp_sweep.json"  # {"parent_run_id": ..., "tracking_uri": ...}
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


# --- the process that owns a run ---------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """Start time of a process (Linux: clock ticks since boot), so a reused pid is not taken for the owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


def owner() -> str:
    """This process, as recorded in run_state.json and the MLflow tag `dpo_exp.owner`."""
    return f"{os.getpid()}@{socket.gethostname()}#{_process_start(os.getpid()) or ''}"


def owner_gone(owner_id: str | None) -> bool:
    """True when the recorded owner is certainly dead: same host, and no such process (or a zombie,
    or a different process under the same pid). A process on another host cannot be checked: False."""
    if not owner_id or "@" not in owner_id:
        return False
    pid_text, _, rest = owner_id.partition("@")
    host, _, start = rest.partition("#")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0] in ("Z", "X") or bool(start and fields[19] != start)


# --- run_state.json ---------------------------------------------------------------------------------


@dataclass
class RunState:
    fingerprint: str
    status: str = "running"  # running | finished | failed | killed
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    started: float = 0.0
    summary: dict | None = None
    owner: str | None = None  # "<pid>@<host>#<start>" of the process running it
    error: str | None = None  # why it failed or stopped

    def save(self, run_dir: Path) -> None:
        if not distributed.is_main():  # one run, one state file: rank 0's
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(run_dir / STATE_FILE)

    def save_quietly(self, run_dir: Path) -> None:
        """Save while another error is on its way out (a full disk, say): report, never replace it."""
        try:
            self.save(run_dir)
        except OSError as e:
            print(f"[dpo_exp] could not record status '{self.status}' in {run_dir / STATE_FILE}: {e}", flush=True)

    @classmethod
    def load(cls, run_dir: Path) -> "RunState | None":
        try:
            data = json.loads((run_dir / STATE_FILE).read_text())
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return None


def find_previous(outputs: Path, fingerprint: str, exclude: Path | None = None) -> tuple[Path, RunState] | None:
    """Newest earlier run directory with this fingerprint."""
    found = []
    for state_file in outputs.glob(f"**/{STATE_FILE}"):
        run_dir = state_file.parent
        if exclude is not None and run_dir.resolve() == exclude.resolve():
            continue
        state = RunState.load(run_dir)
        if state and state.fingerprint == fingerprint:
            found.append((state.started, run_dir, state))
    if not found:
        return None
    _, run_dir, state = max(found, key=lambda t: t[0])
    return run_dir, state


def last_checkpoint(run_dir: Path) -> Path | None:
    """Newest complete checkpoint. Trainer writes trainer_state.json last, so a folder without a
    readable one was interrupted mid-save (e.g. Ctrl-C while saving) and is passed over."""
    complete = []
    for path in run_dir.glob("checkpoint-*"):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        if path.name.split("-")[-1].isdigit():
            complete.append(path)
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


# --- runs whose process is gone ---------------------------------------------------------------------

_reaped: set[str] = set()  # said once per command, even when a sweep's jobs look again


def reap(outputs: Path | None, uri: str | None) -> list[str]:
    """Mark runs left RUNNING by a process that no longer exists (SIGKILL, out of memory, a crash) as
    KILLED: in their run_state.json under `outputs`, and in the MLflow store at `uri` (runs that carry
    the `dpo_exp.owner` tag, sweep parents included). Says so once on the console."""
    found: list[str] = []
    if outputs is not None and outputs.is_dir():
        for state_file in outputs.glob(f"**/{STATE_FILE}"):
            state = RunState.load(state_file.parent)
            if state is None or state.status != "running" or not owner_gone(state.owner):
                continue
            state.status, state.error = "killed", f"its process ({state.owner}) was gone"
            state.save_quietly(state_file.parent)
            if state.mlflow_run_id and state.tracking_uri:
                with contextlib.suppress(Exception):  # that store may be elsewhere now; the state file is fixed
                    tracking.mark_killed(state.tracking_uri, state.mlflow_run_id, state.error)
            key = state.mlflow_run_id or str(state_file.parent)
            if key not in _reaped:
                _reaped.add(key)
                found.append(f"{state_file.parent} ({state.owner.split('#')[0]})")
    if uri is not None:
        for run_id, name, owner_id in tracking.running_runs(uri, TAG_OWNER):
            if owner_gone(owner_id):
                tracking.mark_killed(uri, run_id, f"its process ({owner_id}) was gone")
                if run_id not in _reaped:
                    _reaped.add(run_id)
                    found.append(f"'{name}' ({run_id}, {owner_id.split('#')[0]})")
    if found:
        log(f"marked {len(found)} run(s) KILLED whose process is gone (killed or crashed without cleanup): "
            + "; ".join(found) + ". Continue one with its command plus resume=true.")
    return found


# --- what a command asks for ------------------------------------------------------------------------


@dataclass
class Job:
    """One run as the command line asks for it, before anything is written."""

    cfg: "DictConfig" = field(repr=False)
    run_dir: Path  # Hydra's output dir for this job
    run_name: str
    command: str  # the command line that reproduces it
    uri: str  # MLflow tracking URI
    outputs: Path  # paths.outputs, where earlier runs are looked up
    resume: bool
    sweeping: bool
    parent_run_id: str | None  # the sweep's parent MLflow run

    @classmethod
    def from_hydra(cls, cfg: "DictConfig", app: str = "dpo_exp", name: str | None = None) -> "Job":
        """The job of the running Hydra app `app` (`python -m <app>`). Its run is named `tracking.run_name`,
        else `name`, else by what the command line overrides (`beta=0.05 train.learning_rate=1e-06`)."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from dpo_exp import config

        hydra_cfg = HydraConfig.get()
        sweeping = hydra_cfg.mode == RunMode.MULTIRUN
        overrides = list(hydra_cfg.overrides.task)
        parent_run_id, parent_uri = job_parent(hydra_cfg) if sweeping else (None, None)
        return cls(
            cfg=cfg,
            run_dir=Path(hydra_cfg.runtime.output_dir).resolve(),
            run_name=cfg.tracking.run_name or name or config.describe_overrides(overrides),
            command=f"python -m {app} " + " ".join(shlex.quote(o) for o in overrides),
            uri=tracking.resolve_uri_from(cfg.tracking.uri or parent_uri),  # a sweep job logs beside its parent
            outputs=Path(str(cfg.paths.outputs)).expanduser().resolve(),
            resume=bool(cfg.get("resume")),
            sweeping=sweeping,
            parent_run_id=parent_run_id,
        )

    @cached_property
    def fingerprint(self) -> str:
        from dpo_exp import config

        return config.fingerprint(self.cfg)

    def record_failure(self, error: Exception) -> None:
        """A sweep job that stopped before its run opened (an invalid value in the grid): a FAILED
        child run with the reason, so the sweep's summary lists it. Once per job: re-running the
        sweep updates that record instead of adding a second one."""
        if not self.sweeping:
            return
        try:
            fingerprint = self.fingerprint
        except Exception:  # noqa: BLE001 - values that cannot even be resolved: key by the command line
            import hashlib

            fingerprint = hashlib.sha256(self.command.encode()).hexdigest()[:16]
        tracking.record_failed_run(self.cfg, uri=self.uri, run_name=self.run_name, parent_run_id=self.parent_run_id,
                                   fingerprint=fingerprint, error=str(error))


def child_job(job: Job, parent: "Run", run_dir: Path, name: str) -> Job:
    """The job of a child run of `parent` (a loop's stage): the parent's command line, store and outputs, its own
    run directory and name. Open it with `tracked` inside the parent's `open_run` block."""
    from dataclasses import replace

    return replace(job, run_dir=run_dir, run_name=name, resume=False, sweeping=False,
                   parent_run_id=parent.mlflow_run_id)


def job_parent(hydra_cfg) -> tuple[str | None, str | None]:
    """(parent run id, the parent's tracking URI) for a sweep job: from the environment when the
    launcher passed it on, else from the file the sweep wrote into its directory."""
    try:
        saved = json.loads((Path(hydra_cfg.sweep.dir) / PARENT_FILE).read_text())
    except (OSError, ValueError):
        saved = {}
    return os.environ.get(PARENT_ENV) or saved.get("parent_run_id"), saved.get("tracking_uri")


def open_store(uri: str, outputs: Path | None) -> None:
    """A command's first step: the MLflow store at `uri` checked (a UserError naming it and the fix, before
    any work), and the runs a dead process left RUNNING, there and under `outputs`, marked KILLED."""
    tracking.check_store(uri)
    distributed.from_main(lambda: reap(outputs, uri))


# --- an MLflow run, RUNNING until it ends in a true state --------------------------------------------


@dataclass
class Record:
    """An MLflow run this process owns (`dpo_exp.owner`): RUNNING from `start` until `finish`.

    Commands use `tracked`, which ends it with its block; a run open across callbacks (a sweep's
    parent) calls `finish` itself and registers `cli.on_abort(record.abort)` for every other end."""

    uri: str
    run_id: str

    @classmethod
    def start(cls, uri: str, *, experiment: str, name: str, tags: dict[str, str], params: dict[str, str] | None = None,
              run_id: str | None = None) -> "Record":
        """A new run in `experiment`, or the run `run_id` reopened (RUNNING again, last reason removed)."""
        tags = {**tags, TAG_OWNER: owner()}
        return cls(uri, tracking.start_run(uri, experiment=experiment, run_name=name, tags=tags, params=params or {},
                                           run_id=run_id))

    def finish(self, status: str = "FINISHED", why: str | None = None) -> None:
        """FINISHED, or FAILED / KILLED with the reason as the `dpo_exp.error` tag. Never raises."""
        tracking.end_run(self.uri, self.run_id, status, why)

    def abort(self, status: str) -> None:
        """For `cli.on_abort`: the process stops abnormally (status KILLED or FAILED) while the run is open."""
        self.finish(status, INTERRUPTED if status == "KILLED" else "the process stopped on an error (see its console)")


def common_tags(job: Job, run_dir: Path | None = None) -> dict[str, str]:
    """What every command's run is found by: its command line, run dir, config fingerprint, sweep parent."""
    tags = {tracking.TAG_COMMAND: job.command, tracking.TAG_RUN_DIR: str(run_dir or job.run_dir),
            tracking.TAG_FINGERPRINT: job.fingerprint}
    if job.parent_run_id:
        tags["mlflow.parentRunId"] = job.parent_run_id
    return tags


@contextlib.contextmanager
def tracked(job: Job, *, experiment: str, params: dict[str, str], tags: dict[str, str] | None = None,
            run_id: str | None = None, run_dir: Path | None = None) -> Iterator[str | None]:
    """The command's MLflow run, RUNNING and active (`tracking.log_*` log to it) while the block runs;
    `run_id` reopens an earlier run (resume), `run_dir` replaces the job's (a resumed run's own).
    Ends FINISHED; FAILED on an error (its message in `dpo_exp.error`); KILLED on Ctrl-C/SIGTERM.
    Ranks > 0 of a multi-process run get None and touch nothing (rank 0 owns the run)."""
    if not distributed.is_main():
        yield None
        return
    record = Record.start(job.uri, experiment=experiment, name=job.run_name, params=params, run_id=run_id,
                          tags={**common_tags(job, run_dir), **(tags or {})})
    status, why = "FINISHED", None
    try:
        with tracking.active(job.uri, record.run_id):
            yield record.run_id
    except KeyboardInterrupt:
        status, why = "KILLED", INTERRUPTED
        raise
    except SystemExit as e:
        if e.code not in (0, None):
            status, why = "FAILED", f"exit status {e.code}"
        raise
    except BaseException as e:
        status, why = "FAILED", f"{type(e).__name__}: {e}"
        raise
    finally:
        record.finish(status, why)


@dataclass
class Previous:
    """The newest earlier run of the same config."""

    dir: Path
    state: RunState

    @property
    def finished(self) -> bool:
        return self.state.status == "finished"


def previous_run(job: Job) -> Previous | None:
    """The run this command continues, if any (resume=true, or any job of a sweep).

    Call it after `open_store`, which marks runs whose process is gone KILLED. Refuses to continue a
    run that is still running, or one that logged to another MLflow store than this command's. In a
    multi-process run rank 0 looks, and every rank gets its answer (or its refusal)."""
    return distributed.from_main(lambda: _previous_run(job))


def _previous_run(job: Job) -> Previous | None:
    if not (job.resume or job.sweeping):
        return None
    # A sweep job's own directory counts: a Slurm job requeued after a timeout continues in it.
    found = find_previous(job.outputs, job.fingerprint, exclude=None if job.sweeping else job.run_dir)
    if found is None:
        if job.resume:
            log("resume=true: no earlier run of this config found; starting a new one.")
        return None
    run_dir, state = found
    if state.status == "running" and run_dir != job.run_dir:  # its own dir: requeued, the old process is gone
        pid, _, host = (state.owner or "?@?").partition("#")[0].partition("@")
        raise UserError(
            f"The newest run of this config, {run_dir}, is still running (pid {pid} on host {host}), so it "
            "cannot be resumed from here. Fix: wait for it to end, or stop it (Ctrl-C or `kill " + pid + "`) and "
            "run this command again; a process on another host cannot be checked from here, so if that machine "
            f"is gone, set \"status\": \"killed\" in {run_dir / STATE_FILE}.")
    if state.status != "finished" and state.tracking_uri and state.tracking_uri != job.uri:
        raise UserError(
            f"The run to resume, {run_dir}, logged to the MLflow store {state.tracking_uri}, but this command "
            f"logs to {job.uri}. Resuming would split one run across two stores. Fix: run with "
            f"tracking.uri={state.tracking_uri} (or MLFLOW_TRACKING_URI={state.tracking_uri}), or drop "
            "resume=true to start a new run in the new store.")
    return Previous(run_dir, state)


def skip_finished(job: Job, previous: Previous) -> dict:
    """A config that already finished: nothing to train. In a sweep it is listed under this parent too."""
    log(f"this config already finished in {previous.dir}; nothing to do (skipped).")
    if job.parent_run_id and previous.state.mlflow_run_id:
        tracking.set_parent(job.uri, previous.state.mlflow_run_id, job.parent_run_id)
    return previous.state.summary or {}


# --- a training run: directory, run_state.json and MLflow run -----------------------------------------


@dataclass
class Run:
    dir: Path
    name: str
    mlflow_run_id: str
    checkpoint: Path | None  # continue from here (None: from the start)
    summary: dict | None = None  # set by the caller: the run FINISHED with this


@contextlib.contextmanager
def open_run(job: Job, conf: "Config", cfg: "DictConfig", previous: Previous | None = None,
             warnings: dict[str, str] | None = None) -> Iterator[Run]:
    """Open the run's record (directory, run_state.json and a `tracked` MLflow run, all RUNNING and owned
    by this process), yield it, and close it in a true state: FINISHED when the block ends with
    `run.summary` set, KILLED on Ctrl-C/SIGTERM, FAILED on any error (a disk or permission error explained)."""
    from omegaconf import OmegaConf

    from dpo_exp.config import flatten

    run_dir = previous.dir if previous else job.run_dir
    state = previous.state if previous else RunState(fingerprint=job.fingerprint, started=time.time())
    checkpoint = last_checkpoint(run_dir) if previous else None
    if previous:
        log(f"resuming: continuing {run_dir} from {checkpoint or 'the start (no checkpoint yet)'}")
    state.tracking_uri, state.owner, state.error = job.uri, owner(), None
    tags = {TAG_WARNING + k: v for k, v in (warnings or {}).items()}
    with tracked(job, experiment=conf.tracking.experiment, params=flatten(conf), tags=tags,
                 run_id=state.mlflow_run_id, run_dir=run_dir) as run_id:
        run = Run(dir=run_dir, name=job.run_name, mlflow_run_id=run_id, checkpoint=checkpoint)
        state.mlflow_run_id, state.status = run_id, "running"
        try:
            state.save(run_dir)  # (rank 0 alone writes the record: RunState.save, tracking's on_main_process)
            if distributed.is_main():
                OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
            tracking.log_text_artifact(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
            yield run
        except KeyboardInterrupt:
            state.status, state.error = "killed", INTERRUPTED
            state.save_quietly(run_dir)
            kept = last_checkpoint(run_dir)
            raise Interrupted(
                f"stopped: MLflow run {run_id} marked KILLED; "
                + (f"checkpoint {kept.name} kept in {run_dir}" if kept else f"no checkpoint yet in {run_dir}")
                + f". Continue it with: {job.command} resume=true") from None
        except BaseException as e:
            state.status, state.error = "failed", f"{type(e).__name__}: {e}"[:2000]
            state.save_quietly(run_dir)
            explained = explain_os_error(e, run_dir)
            if explained is not None:
                raise explained from e
            raise
        state.status, state.summary = "finished", run.summary or {}
        state.save_quietly(run_dir)


def explain_os_error(error: BaseException, run_dir: Path) -> UserError | None:
    """A full disk or an unwritable folder, said in one paragraph that keeps the original error."""
    chain, e = [], error
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " | ".join(str(x) for x in chain)
    codes = {getattr(x, "errno", None) for x in chain}
    full = bool(codes & {errno.ENOSPC, errno.EDQUOT}) or "No space left" in text or "StorageFull" in text
    if full or (run_dir.exists() and _free_bytes(run_dir) == 0):
        return UserError(
            f"The disk holding {run_dir} ran out of space ({_free_bytes(run_dir)} bytes free now): {error}. The run "
            f"is marked FAILED in MLflow; its checkpoints in {run_dir} are kept. Fix: free space there, or set "
            "paths.outputs (and paths.cache) to a disk with room; then run the same command with resume=true.")
    if codes & {errno.EROFS, errno.EACCES, errno.EPERM}:
        path = next((x.filename for x in chain if getattr(x, "filename", None)), run_dir)
        return UserError(
            f"{path} cannot be written ({error}). The run is marked FAILED in MLflow. Fix: make it writable, or "
            "set paths.outputs (and paths.cache) to a writable folder.")
    return None


def _free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return -1


def check_writable(folder: Path, key: str = "paths.outputs") -> None:
    """Create `folder` and write a file in it, or fail with one paragraph naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".dpo_exp_write_test_{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        free = _free_bytes(folder if folder.exists() else folder.parent)
        why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) or free == 0 else "it is not writable"
        raise UserError(f"Cannot write the run directory {folder}: {why} ({e.strerror or e}). Fix: set {key} to a "
                        "writable folder with free space (e.g. paths.outputs=$HOME/dpo_outputs), or free space "
                        "there.") from None


class CheckRunDir(Callback):
    """Hydra creates the run (or sweep) directory before any dpo_exp code runs, so an unwritable or
    full outputs folder would end in its raw traceback: checked first (conf/config.yaml, hydra.callbacks)."""

    def on_run_start(self, config, **kwargs) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config, **kwargs) -> None:
        self._check(config.hydra.sweep.dir)

    @staticmethod
    @carry_user_errors  # Hydra would turn it into a warning
    def _check(folder: str) -> None:
        check_writable(Path(folder).expanduser().resolve())
