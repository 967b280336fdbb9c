"""Run directories and resume.

Each run directory (Hydra's output dir) holds `run_state.json`: the config fingerprint, the
MLflow run id and the status. `resume=true` looks under `paths.outputs` for the newest run of
the same fingerprint: an unfinished one is continued from its last checkpoint into the same
MLflow run; a finished one is reported and skipped (so re-running a sweep redoes only what is
missing); with none, a fresh run starts.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dpo_exp import distributed

STATE_FILE = "run_state.json"


@dataclass
class RunState:
    fingerprint: str
    status: str = "running"  # running | finished | failed
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    started: float = 0.0
    summary: dict | None = None

    def save(self, run_dir: Path) -> None:
        if not distributed.is_main():  # one run, one state file: rank 0's
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(run_dir / STATE_FILE)

    @classmethod
    def load(cls, run_dir: Path) -> "RunState | None":
        try:
            return cls(**json.loads((run_dir / STATE_FILE).read_text()))
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


def new_state(fingerprint: str, uri: str) -> RunState:
    return RunState(fingerprint=fingerprint, tracking_uri=uri, started=time.time())
