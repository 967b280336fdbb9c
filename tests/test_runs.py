"""Run directories: resume finds the right run and the newest complete checkpoint."""

from __future__ import annotations

import json

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
