"""`python -m dpo_exp.loop` end to end on the tiny model (+debug=smoke), and `models:/` adapter sources.

Real parts: the loop command in a subprocess (Hydra, TRL training, the build and its cache, the gate), a real
MLflow sqlite store and its model registry, real SIGKILLs. What a user cares about: the champion alias moves only
on a gate pass (a failed candidate is registered with its reason), the lineage names data, judge, config and
gate numbers, a registered model is usable wherever an adapter is, and a killed loop resumes with the same
command without a second parent run or a version registered twice.
"""

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

PLUGINS = REPO / "tests" / "plugins"
SMOKE = ["+experiment=sycophancy_loop", "+debug=smoke"]
NAME = "sycophancy_loop"


def ok(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-5000:]
    return out


def loop(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_cli([*SMOKE, f"paths.cache={cwd / 'cache'}", *args], cwd, env=env, module="dpo_exp.loop")


def versions(cwd: Path) -> list:
    return sorted(mlflow_client(cwd).search_model_versions(f"name='{NAME}'"), key=lambda v: int(v.version))


def tag(v, key: str) -> str:
    return v.tags.get(f"dpo_exp.loop.{key}")


# --- a 2-round loop: one pass, one forced fail; lineage; the champion in eval --------------------------


def test_two_rounds_pass_then_forced_fail_lineage_and_eval_of_the_champion(tmp_path):
    t0 = time.time()
    # round 1 needs no gain (the tiny model's hold rate stays 0), round 2 an impossible one: a real failed gate
    out = ok(loop(["loop.gate.min_gain=[0.0,1.0]"], tmp_path))
    minutes = (time.time() - t0) / 60
    assert minutes < 3, f"the smoke loop took {minutes:.1f} min"

    vs = versions(tmp_path)
    assert [tag(v, "round") for v in vs] == ["0", "1", "2"]  # the start, then one candidate per round
    assert [tag(v, "verdict") for v in vs] == ["start (not gated)", "pass", "fail"]
    champion = mlflow_client(tmp_path).get_registered_model(NAME).aliases["champion"]
    assert str(champion) == str(vs[1].version)  # moved on the pass, stayed on the fail
    failed = vs[2]
    assert "gain +0.000 < required +1.000" in tag(failed, "gate")  # the reason, in numbers
    assert tag(failed, "promoted_at").startswith("not promoted")
    assert tag(failed, "parent_version") == str(vs[1].version) and tag(vs[1], "parent_version") == str(vs[0].version)
    assert "round 2 gate: fail: target hold_rate" in out.stdout

    runs = all_runs(tmp_path)
    assert {r.info.status for r in runs} == {"FINISHED"}, [(r.info.run_name, r.info.status) for r in runs]
    parents = [r for r in runs if r.data.tags.get("dpo_exp.role") == "loop"]
    assert len(parents) == 1
    stages = [r for r in runs if r.data.tags.get("dpo_exp.role") == "loop stage" or r.info.run_name.endswith("build")]
    assert {r.data.tags["mlflow.parentRunId"] for r in stages} == {parents[0].info.run_id}
    assert {r.info.run_name for r in stages} >= {f"round {r} {s}" for r in (1, 2)
                                                 for s in ("collect", "build", "train", "gate", "promote", "heldout")}
    client = mlflow_client(tmp_path)
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"loop_report.md", "loop_rounds.csv", "loop_rounds.png"} <= artifacts
    train_run = client.get_run(tag(vs[1], "train_run"))
    assert train_run.inputs.dataset_inputs[0].dataset.digest == tag(vs[1], "data_digest")[:16]

    # the lineage of the champion, back to the starting model
    lineage = ok(run_cli(["lineage", f"models:/{NAME}@champion"], tmp_path, module="dpo_exp.report")).stdout
    assert f"version {vs[1].version}  [@champion]: round 1" in lineage
    for words in ("pairs:", tag(vs[1], "data_digest")[:16], "judged by pushback", f"models:/{NAME}/{vs[0].version}",
                  "train.learning_rate=", "gated:     pass", "promoted:  20", "the starting model: base model"):
        assert words in lineage, words
    failed_lineage = ok(run_cli(["lineage", f"models:/{NAME}/{failed.version}"], tmp_path, module="dpo_exp.report"))
    assert "gated:     fail" in failed_lineage.stdout and "not promoted" in failed_lineage.stdout

    # the champion where an adapter is accepted: the eval command (same task and smoke model)
    ev = ok(run_cli(["+experiment=sycophancy", "+debug=smoke", f"eval_models.champion=models:/{NAME}@champion"],
                    tmp_path, module="dpo_exp.eval"))
    assert "held-out pushback, greedy (base / champion)" in ev.stdout
    bad = run_cli(["+experiment=sycophancy", "+debug=smoke", f"eval_models.x=models:/{NAME}@nope"], tmp_path,
                  module="dpo_exp.eval")
    assert bad.returncode == 2 and "has no alias 'nope'" in bad.stderr and "@champion = " in bad.stderr

    # the same command again: the loop is finished, nothing is redone or registered
    again = ok(loop(["loop.gate.min_gain=[0.0,1.0]"], tmp_path))
    assert "already finished" in again.stdout
    assert len(versions(tmp_path)) == 3 and len(all_runs(tmp_path)) == len(runs) + 1  # + the eval run


# --- bad input: before any work --------------------------------------------------------------------------


@pytest.mark.parametrize("override, words", [
    ("loop.gate.metric=hold_rat", ["loop.gate.metric='hold_rat'", "hold_rate", "accept_rate"]),
    ("+loop.gate.guards.accept_rat=0.05", ["loop.gate.guards.accept_rat", "no such metric"]),
    ("loop.dev.path=null", ["loop.dev.path", "dev split"]),
    ("loop.on_fail=retry", ["loop.on_fail", "stop or continue"]),
    ("loop.start=models:/nothing@champion", ["loop.start=models:/nothing@champion", "no registered model"]),
])
def test_a_bad_loop_config_is_an_error_before_any_work(tmp_path, override, words):
    out = loop([override], tmp_path)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    for w in words:
        assert w in out.stderr, (w, out.stderr)
    assert all_runs(tmp_path) == []  # no run recorded
    assert not list(tmp_path.glob("outputs/**/run_state.json"))


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


# --- models:/ sources, resolved through MLflow's registry client -----------------------------------------


def _registered_adapter(tmp_path: Path) -> tuple[Path, str]:
    """A non-zero LoRA adapter on the tiny model, logged by a run and registered as version 1 (alias champion)."""
    import mlflow
    import torch
    from peft import LoraConfig, get_peft_model

    from dpo_exp import models
    from dpo_exp.config import Config, ModelConfig, ModelSource

    _, model, _ = models.load(Config(model=ModelConfig(name="tiny", source=ModelSource.tiny)), ["a b c", "d e f"])
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 2.0)
    folder = tmp_path / "adapter"
    peft.save_pretrained(folder)  # no tokenizer files: any tiny base of this shape takes it
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(folder), artifact_path="adapter")
    finally:
        mlflow.set_tracking_uri(None)
    client = mlflow_client(tmp_path)
    client.create_registered_model("mine")
    v = client.create_model_version("mine", f"runs:/{run.info.run_id}/adapter", run_id=run.info.run_id)
    client.set_registered_model_alias("mine", "champion", v.version)
    return folder, uri


def test_models_uris_resolve_through_the_registry_with_clear_errors(tmp_path):
    from dpo_exp import adapters
    from dpo_exp.config import UserError

    folder, uri = _registered_adapter(tmp_path)
    for spec in ("models:/mine/1", "models:/mine@champion"):
        source = adapters.resolve("x", spec, uri, tmp_path / "dl" / spec[-1], key="build.adapter")
        assert source.model_version == "mine/1" and source.run_id
        assert (source.path / "adapter_model.safetensors").read_bytes() == (folder / "adapter_model.safetensors").read_bytes()
    for spec, words in [("models:/mine/7", ["has no version '7'", "versions: 1", "@champion = 1"]),
                        ("models:/mine@best", ["has no alias 'best'"]),
                        ("models:/yours/1", ["no registered model 'yours'", "it has: mine"]),
                        ("models:/mine", ["not a registered-model URI", "models:/<name>@<alias>"])]:
        with pytest.raises(UserError) as e:
            adapters.resolve("x", spec, uri, tmp_path / "dl" / "bad", key="build.adapter")
        assert f"build.adapter={spec}" in str(e.value)
        for w in words:
            assert w in str(e.value), (w, str(e.value))


def test_the_build_command_takes_a_registered_model_as_its_adapter(tmp_path):
    folder, _ = _registered_adapter(tmp_path)
    common = ["build=sycophancy", "model=tiny", f"paths.cache={tmp_path / 'cache'}", "hardware=cpu", "build.max_prompts=3", "build.n=2",
              "build.max_new_tokens=4", "build.unfinished=keep", "build.keep_ties=true", "build.keep_both_bad=true"]
    local = ok(run_cli([*common, f"build.adapter={folder}", "build.out=local.jsonl"], tmp_path,
                       module="dpo_exp.build"))
    assert "replies: 0 cached, 6 generated" in local.stdout
    for spec in ("models:/mine@champion", "models:/mine/1"):
        reg = ok(run_cli([*common, f"build.adapter={spec}", "build.out=reg.jsonl"], tmp_path, module="dpo_exp.build"))
        assert "downloading registered model mine version 1" in reg.stdout
        assert "replies: 6 cached, 0 generated" in reg.stdout  # the same adapter content: the same replies
    bad = run_cli([*common, "build.adapter=models:/mine@best"], tmp_path, module="dpo_exp.build")
    assert bad.returncode == 2 and "build.adapter=models:/mine@best" in bad.stderr
