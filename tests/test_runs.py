"""A run's lifecycle: resume finds the right run and the newest complete checkpoint; runs whose process is
gone are found and marked KILLED; a tracked run is RUNNING while open and ends in a true state, with why.
(The same through the real commands, SIGKILL included: tests/test_lifecycle.py, tests/test_faults.py.)"""

from __future__ import annotations

import contextlib
import json
import os

import pytest

from conftest import compose
from dpo_exp import config, runs, tracking


def test_last_checkpoint_skips_one_interrupted_mid_save(tmp_path):
    for step, complete in ((5, True), (10, True), (15, False)):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "adapter_model.safetensors").write_bytes(b"x")
        if complete:
            (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert runs.last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    (tmp_path / "checkpoint-15" / "trainer_state.json").write_text('{"global_st')  # torn write
    assert runs.last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert runs.last_checkpoint(tmp_path / "nothing") is None


def test_find_previous_returns_the_newest_run_of_the_same_config(tmp_path):
    for name, fp, started, status in (("a", "f1", 1.0, "finished"), ("b", "f1", 2.0, "failed"), ("c", "f2", 3.0, "running")):
        runs.RunState(fingerprint=fp, status=status, started=started).save(tmp_path / "x" / name)
    run_dir, state = runs.find_previous(tmp_path, "f1")
    assert run_dir.name == "b" and state.status == "failed"
    assert runs.find_previous(tmp_path, "f1", exclude=tmp_path / "x" / "b")[0].name == "a"
    assert runs.find_previous(tmp_path, "nope") is None


def test_owner_is_gone_once_its_process_exits_or_its_pid_is_reused():
    import socket
    import subprocess

    assert not runs.owner_gone(runs.owner())  # this process
    child = subprocess.Popen(["sleep", "30"])
    alive = runs.owner_gone(f"{child.pid}@{socket.gethostname()}#{runs._process_start(child.pid)}")
    child.kill()
    child.wait()
    assert alive is False
    assert runs.owner_gone(f"{child.pid}@{socket.gethostname()}#{runs._process_start(os.getpid())}")
    # the same pid with another start time is another process: the owner is gone
    pid, host, _ = runs.owner().replace("#", "@").split("@")
    assert runs.owner_gone(f"{pid}@{host}#1")
    assert not runs.owner_gone(f"{child.pid}@some-other-host#1")  # cannot be checked from here: not gone
    assert not runs.owner_gone(None)


def test_reap_marks_a_dead_runs_state_and_mlflow_run_killed_and_says_so_once(tmp_path, capsys):
    import socket
    import subprocess

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = tracking.open_client(uri)  # creates the store, under its lock
    exp = client.create_experiment("x")
    child = subprocess.Popen(["true"])
    child.wait()
    dead = f"{child.pid}@{socket.gethostname()}#"
    dead_run = client.create_run(exp, tags={runs.TAG_OWNER: dead}).info.run_id
    live_run = client.create_run(exp, tags={runs.TAG_OWNER: runs.owner()}).info.run_id
    runs.RunState(fingerprint="f", status="running", mlflow_run_id=dead_run, tracking_uri=uri,
                  owner=dead).save(tmp_path / "out" / "a")
    runs.RunState(fingerprint="f", status="running", owner=runs.owner()).save(tmp_path / "out" / "b")

    found = runs.reap(tmp_path / "out", uri)
    assert len(found) == 1 and str(tmp_path / "out" / "a") in found[0]
    assert capsys.readouterr().out.count("KILLED whose process is gone") == 1
    assert client.get_run(dead_run).info.status == "KILLED"
    assert client.get_run(live_run).info.status == "RUNNING"
    assert runs.RunState.load(tmp_path / "out" / "a").status == "killed"
    assert runs.RunState.load(tmp_path / "out" / "b").status == "running"
    assert runs.reap(tmp_path / "out", uri) == [] and capsys.readouterr().out == ""  # once


def test_tracked_runs_are_running_while_open_and_end_finished_failed_or_killed_with_why(tmp_path):
    cfg = compose(["+debug=smoke"])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = runs.Job(cfg=cfg, run_dir=tmp_path / "run", run_name="r", command="python -m dpo_exp.x a=1", uri=uri,
                   outputs=tmp_path / "outputs", resume=False, sweeping=False, parent_run_id=None)
    runs.open_store(uri, job.outputs)
    client = tracking.open_client(uri)
    ended = {}
    for case, error in (("finished", None), ("failed", ValueError("bad row 3")), ("killed", KeyboardInterrupt())):
        with pytest.raises(type(error)) if error else contextlib.nullcontext():
            with runs.tracked(job, experiment="x", params=config.flatten(cfg), tags={"dpo_exp.kind": case}) as run_id:
                run = client.get_run(run_id)
                assert run.info.status == "RUNNING" and run.data.tags[runs.TAG_OWNER] == runs.owner()
                assert run.data.params["beta.value"] == str(cfg.beta.value)
                if error:
                    raise error
        ended[case] = client.get_run(run_id)
    assert ended["finished"].info.status == "FINISHED" and tracking.TAG_ERROR not in ended["finished"].data.tags
    assert ended["failed"].info.status == "FAILED"
    assert ended["failed"].data.tags[tracking.TAG_ERROR] == "ValueError: bad row 3"
    assert ended["killed"].info.status == "KILLED" and ended["killed"].data.tags[tracking.TAG_ERROR] == runs.INTERRUPTED
    tags = ended["finished"].data.tags
    assert (tags["dpo_exp.command"], tags["dpo_exp.run_dir"], tags["dpo_exp.fingerprint"], tags["dpo_exp.kind"]) == (
        job.command, str(job.run_dir), config.fingerprint(cfg), "finished")

    # reopened (resume): RUNNING again, the reason it stopped removed, then FINISHED
    with runs.tracked(job, experiment="x", params={}, run_id=ended["failed"].info.run_id):
        assert tracking.TAG_ERROR not in client.get_run(ended["failed"].info.run_id).data.tags
    assert client.get_run(ended["failed"].info.run_id).info.status == "FINISHED"
