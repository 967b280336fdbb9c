"""A loop killed with SIGKILL in its build, its training and its gate resumes with the same command: finished
stages are not redone, the build's cache and the training's checkpoint are reused in the same child run, no
version is registered twice, there is one parent run, and no run is left RUNNING (tests/plugins/loop_faults.py
stalls the judge or the metric so that the kill lands in that stage)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, all_runs, mlflow_client, run_cli
from test_loop import PLUGINS, SMOKE, ok, tag, versions


# --- SIGKILL in build, in train and in gate; the same command resumes ---------------------------------------


def _kill_when(cmd: list[str], cwd: Path, env: dict, ready, timeout: float = 300) -> str:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full_env.update({"PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)]), "TQDM_DISABLE": "1", **env})
    path = cwd / f"killed_{len(list(cwd.glob('killed_*.log')))}.log"
    log = open(path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "dpo_exp.loop", *cmd], cwd=cwd, env=full_env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    try:
        while not ready():
            assert proc.poll() is None, path.read_text()[-4000:]
            assert time.time() < deadline, "the stage to kill in never came"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return path.read_text()


@pytest.mark.slow  # four loop processes, about 80 s on 2 idle cores: make test-slow
def test_sigkill_in_build_train_and_gate_then_the_same_command_resumes(tmp_path):
    mark = tmp_path / "stalled"
    args = [*SMOKE, f"paths.cache={tmp_path / 'cache'}", "judge._target_=loop_faults.Judge", "eval.behaviour._target_=loop_faults.Metric",
            "train.max_steps=24", "train.eval_steps=3"]
    env = {"DPO_TEST_MARK": str(mark)}
    loop_dirs = lambda: [f.parent for f in tmp_path.glob("outputs/sycophancy_loop-loop/*/loop_state.json")]  # noqa: E731

    # 1. killed while the judge works on round 1's pairs (every reply generated and cached by then)
    _kill_when(args, tmp_path, {**env, "DPO_TEST_STALL": "build"}, mark.exists)
    # 2. the same command: the build continues from its cache; killed once training has saved a checkpoint
    checkpoint = lambda: any(list(d.glob("round_1/train/checkpoint-*/trainer_state.json")) for d in loop_dirs())  # noqa: E731
    log = _kill_when(args, tmp_path, env, checkpoint)
    assert "replies: 52 cached, 0 generated" in log  # the build continued from its cache
    # 3. again: training continues from that checkpoint, in the same child run; killed in round 1's gate
    mark.unlink()
    log = _kill_when(args, tmp_path, {**env, "DPO_TEST_STALL": "gate"}, mark.exists)
    assert "round 1 build: done earlier" in log and "round 1 train: continuing from" in log
    # 4. again, to the end
    out = ok(run_cli(args, tmp_path, env={"PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)])},
                     module="dpo_exp.loop"))
    assert "round 1 train: done earlier" in out.stdout and "round 2 gate" in out.stdout

    assert len(loop_dirs()) == 1  # one loop, continued (each command also gets its own Hydra dir: .hydra/ only)
    runs = all_runs(tmp_path)
    assert "RUNNING" not in {r.info.status for r in runs}
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED"}
    parents = [r for r in runs if r.data.tags.get("dpo_exp.role") == "loop"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    vs = versions(tmp_path)
    assert [tag(v, "round") for v in vs] == ["0", "1", "2"]  # none registered twice
    train_runs = [r for r in runs if r.info.run_name == "round 1 train"]
    assert len(train_runs) == 1 and train_runs[0].info.status == "FINISHED"  # reopened after the kill
    steps = [m.step for m in mlflow_client(tmp_path).get_metric_history(train_runs[0].info.run_id, "loss")]
    assert len(steps) == len(set(steps))  # resumed training logged each step once
    state = json.loads(next(iter(loop_dirs())).joinpath("loop_state.json").read_text())
    assert set(state["rounds"]["2"]) >= {"collect", "build", "train", "gate", "promote"}
