"""A run's lifecycle, in one place: its directory, `run_state.json`, the resume lookup, its MLflow status.

    job = runs.Job.from_hydra(cfg)                  # what this command asks for; nothing written yet
    previous = runs.previous_run(job)               # resume lookup (marks runs whose process is gone KILLED)
    with runs.open_run(job, conf, cfg, previous) as run:   # directory, state file, MLflow run: RUNNING
        run.summary = train(...)                    # leaves FINISHED; an error: FAILED; Ctrl-C/SIGTERM: KILLED

A run's status, the same in `run_state.json` (lower case) and in MLflow:

- RUNNING: its process (pid and host, recorded in run_state.json and the `dpo_exp.owner` tag) is alive.
- FINISHED: it completed; `resume=true` (or re-running a sweep) skips it.
- FAILED: it stopped on an error, whose message is the `dpo_exp.error` tag; resumable.
- KILLED: stopped by Ctrl-C or SIGTERM, or its process vanished (SIGKILL, out of memory, a lost
  machine): any later dpo_exp command that touches the same outputs folder or MLflow store finds
  such a run and marks it KILLED. Resumable.

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

from dpo_exp.cli import Interrupted, error, log
from dpo_exp.config import UserError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from dpo_exp.config import Config

from dpo_exp import distributed

STATE_FILE = "run_state.json"
TAG_OWNER = "dpo_exp.owner"  # "<pid>@<host>#<process start>": who is running this MLflow run
TAG_WARNING = "dpo_exp.warning."


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
    from dpo_exp import tracking

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
    def from_hydra(cls, cfg: "DictConfig", app: str = "dpo_exp") -> "Job":
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from dpo_exp import config, sweep, tracking

        hydra_cfg = HydraConfig.get()
        sweeping = hydra_cfg.mode == RunMode.MULTIRUN
        overrides = list(hydra_cfg.overrides.task)
        parent_run_id, parent_uri = sweep.job_parent(hydra_cfg) if sweeping else (None, None)
        return cls(
            cfg=cfg,
            run_dir=Path(hydra_cfg.runtime.output_dir).resolve(),
            run_name=cfg.tracking.run_name or config.describe_overrides(overrides),
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
        from dpo_exp import tracking

        if not self.sweeping:
            return
        try:
            fingerprint = self.fingerprint
        except Exception:  # noqa: BLE001 - values that cannot even be resolved: key by the command line
            import hashlib

            fingerprint = hashlib.sha256(self.command.encode()).hexdigest()[:16]
        tracking.record_failed_run(self.cfg, uri=self.uri, run_name=self.run_name, parent_run_id=self.parent_run_id,
                                   fingerprint=fingerprint, error=str(error))


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

    Looks only after marking runs whose process is gone KILLED. Refuses to continue a run that is
    still running, or one that logged to another MLflow store than this command's. In a
    multi-process run rank 0 looks, and every rank gets its answer (or its refusal)."""
    return distributed.from_main(lambda: _previous_run(job))


def _previous_run(job: Job) -> Previous | None:
    reap(job.outputs, job.uri)
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
    from dpo_exp import tracking

    log(f"this config already finished in {previous.dir}; nothing to do (skipped).")
    if job.parent_run_id and previous.state.mlflow_run_id:
        tracking.set_parent(job.uri, previous.state.mlflow_run_id, job.parent_run_id)
    return previous.state.summary or {}


# --- an open run ------------------------------------------------------------------------------------


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
    """Open the run's record (directory, run_state.json, MLflow run, all RUNNING and owned by this
    process), yield it, and close it in a true state: FINISHED when the block ends with `run.summary`
    set, KILLED on Ctrl-C/SIGTERM, FAILED on any error (a disk or permission error explained)."""
    from omegaconf import OmegaConf

    from dpo_exp import tracking

    run_dir = previous.dir if previous else job.run_dir
    state = previous.state if previous else RunState(fingerprint=job.fingerprint, started=time.time())
    checkpoint = last_checkpoint(run_dir) if previous else None
    if previous:
        log(f"resuming: continuing {run_dir} from {checkpoint or 'the start (no checkpoint yet)'}")
    state.tracking_uri, state.owner, state.error = job.uri, owner(), None
    tags = {TAG_OWNER: state.owner, **{TAG_WARNING + k: v for k, v in (warnings or {}).items()}}
    with tracking.mlflow_run(conf, uri=job.uri, run_name=job.run_name, fingerprint=job.fingerprint, run_dir=run_dir,
                             command=job.command, run_id=state.mlflow_run_id, parent_run_id=job.parent_run_id,
                             tags=tags) as run_id:
        run = Run(dir=run_dir, name=job.run_name, mlflow_run_id=run_id, checkpoint=checkpoint)
        state.mlflow_run_id, state.status = run_id, "running"
        try:
            state.save(run_dir)  # (rank 0 alone writes the record: RunState.save, tracking's on_main_process)
            if distributed.is_main():
                OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
            tracking.log_text_artifact(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
            yield run
        except KeyboardInterrupt:
            state.status, state.error = "killed", "interrupted (Ctrl-C or SIGTERM)"
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
    def _check(folder: str) -> None:
        import sys

        try:
            check_writable(Path(folder).expanduser().resolve())
        except UserError as e:
            error("dpo_exp", str(e))
            sys.exit(2)
