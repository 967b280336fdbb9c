"""A run's lifecycle: resume finds the right run and the newest complete checkpoint; runs whose process is
gone are found and marked KILLED."""

from __future__ import annotations

import json
import os

from dpo_exp import runs


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

    from dpo_exp import tracking

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
