"""`python -m dpo_exp.loop` end to end on the tiny model (+debug=smoke), its config checks, and the gate's rules.

Real parts: the loop command in a subprocess (Hydra, TRL training, the build and its cache, the gate), a real
MLflow sqlite store and its model registry. What a user cares about: the champion alias moves only on a gate pass
(a failed candidate is registered with its reason), the lineage names data, judge, config and gate numbers, the
champion is usable where an adapter is, and a bad gate config fails before any work. SIGKILL and resume:
tests/test_loop_resume.py; `models:/` sources: tests/test_loop_registry.py.
"""

from __future__ import annotations

import subprocess
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
    # the smoke dev split (10 rows: 2 plain questions) cannot resolve a 5-point guard: said before any work
    assert "warning: loop.gate.guards.plain_correct=0.05 is finer than one reply" in out.stdout.split("round 1 build")[0]

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
    seeds = ok(run_cli(["loops", NAME], tmp_path, module="dpo_exp.report")).stdout  # the 3-seed summary's command
    assert f"| {NAME} | v{vs[1].version} | " in seeds and "mean change +- sd" in seeds and "hold_rate" in seeds

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
    ("loop.start=models:/nothing@champion", ["loop.start=models:/nothing@champion", "no registered model"]),
])
def test_a_bad_loop_config_is_an_error_before_any_work(tmp_path, override, words):
    out = loop([override], tmp_path)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    for w in words:
        assert w in out.stderr, (w, out.stderr)
    assert all_runs(tmp_path) == []  # no run recorded
    assert not list(tmp_path.glob("outputs/**/run_state.json"))


# --- the gate's rules (pure) ------------------------------------------------------------------------------


def test_gate_target_guards_nan_and_significance():
    from dpo_exp.loop.gate import decide, paired_bootstrap
    from dpo_exp.loop.schema import GateConfig, SignificanceConfig

    g = GateConfig(metric="hold_rate", min_gain=0.05, guards={"accept_rate": 0.05, "cave_rate": 0.0},
                   lower_is_better=["cave_rate"])
    champ = {"hold_rate": 0.30, "accept_rate": 0.70, "cave_rate": 0.40}
    v = decide(g, 1, 0.05, {"hold_rate": 0.40, "accept_rate": 0.66, "cave_rate": 0.35}, champ)
    assert v.passed and abs(v.gain - 0.10) < 1e-9
    v = decide(g, 1, 0.05, {"hold_rate": 0.40, "accept_rate": 0.60, "cave_rate": 0.35}, champ)
    assert not v.passed and "guard accept_rate 0.700 -> 0.600, loss 0.100 > allowed 0.050" in v.summary()
    v = decide(g, 1, 0.05, {"hold_rate": 0.40, "accept_rate": 0.70, "cave_rate": 0.45}, champ)  # lower is better
    assert not v.passed and "guard cave_rate" in v.summary()
    v = decide(g, 1, 0.05, {"hold_rate": 0.32, "accept_rate": 0.70, "cave_rate": 0.40}, champ)
    assert not v.passed and "gain +0.020 < required +0.050" in v.summary()
    v = decide(g, 1, 0.05, {"hold_rate": 0.40, "accept_rate": float("nan"), "cave_rate": 0.40}, champ)
    assert not v.passed and "not measurable" in v.summary()
    sig = GateConfig(metric="hold_rate", significance=SignificanceConfig(enabled=True, alpha=0.05, resamples=200))
    v = decide(sig, 1, 0.0, {"hold_rate": 0.40}, {"hold_rate": 0.30}, lambda: 0.2)
    assert not v.passed and v.p_value == 0.2 and "p = 0.200 > alpha 0.05" in v.summary()
    # the paired bootstrap: a candidate better on every row is significant, one equal on every row is not
    assert paired_bootstrap(lambda idx: 1.0, 40, 200, 0) == 0.0
    assert paired_bootstrap(lambda idx: 0.0, 40, 200, 0) == 1.0


def test_a_guard_finer_than_one_dev_reply_is_named_with_the_size_that_resolves_it():
    from dpo_exp import data
    from dpo_exp.loop.gate import finer_than_one_reply, on_empty_replies, rows_per_metric
    from dpo_exp.loop.schema import GateConfig
    from dpo_exp.tasks.pushback.metric import PushbackMetric

    # the flagship's dev split: 34 pushbacks, 34 corrections, 17 plain questions
    dev = data.load_heldout(str(REPO / "dpo_exp" / "tasks" / "pushback" / "pushback_dev.jsonl"), None)
    metric = PushbackMetric()
    rows_of = rows_per_metric(metric, on_empty_replies(metric, dev))
    assert (rows_of["hold_rate"], rows_of["accept_rate"], rows_of["plain_correct"]) == (34, 34, 17)
    warned = finer_than_one_reply(GateConfig(guards={"accept_rate": 0.05, "plain_correct": 0.05}), rows_of)
    assert len(warned) == 1 and warned[0].startswith("loop.gate.guards.plain_correct=0.05 is finer than one reply")
    assert "17 rows" in warned[0] and "allow at least 0.059" in warned[0]
    assert finer_than_one_reply(GateConfig(guards={"accept_rate": 0.05, "plain_correct": 0.06}), rows_of) == []
    assert finer_than_one_reply(GateConfig(guards={"plain_correct": 0.0}), {}) == []  # a metric without counts


@pytest.mark.parametrize("override, words", [
    ("loop.dev.path=null", ["loop.dev.path", "dev split"]),
    ("loop.dev.path=${data.heldout_path}", ["loop.dev.path", "held-out set"]),
    ("loop.on_fail=retry", ["loop.on_fail", "stop or continue"]),
    ("loop.gate.min_gain=[0.1,x]", ["loop.gate.min_gain", "a number or a list of numbers"]),
    ("loop.rounds=0", ["loop.rounds", "at least one round"]),
    ("lora=none", ["lora", "LoRA adapter"]),
])
def test_loop_keys_are_checked_as_the_config_is_read(override, words):
    from hydra import compose, initialize_config_module

    from dpo_exp.config import UserError
    from dpo_exp.loop import schema

    schema.register()
    with initialize_config_module(config_module="dpo_exp.conf", version_base="1.3"):
        cfg = compose(config_name="loop", overrides=["+experiment=sycophancy_loop", override])
    with pytest.raises(UserError) as e:
        schema.to_object(cfg)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_the_loop_experiment_composes_and_only_the_loop_sees_it():
    from hydra import compose, initialize_config_module

    from dpo_exp.loop import schema

    schema.register()
    with initialize_config_module(config_module="dpo_exp.conf", version_base="1.3"):
        cfg = compose(config_name="loop", overrides=["+experiment=sycophancy_loop"])
        conf = schema.to_object(cfg)
        smoke = schema.to_object(compose(config_name="loop", overrides=["+experiment=sycophancy_loop", "+debug=smoke"]))
    assert conf.tracking.experiment == conf.loop.model_name == NAME
    assert conf.loop.dev.path.endswith("pushback_dev.jsonl") and conf.build.n == 6 and conf.model.name != "tiny"
    assert conf.loop.gate.guards == {"accept_rate": 0.05, "plain_correct": 0.05}
    assert (smoke.model.name, smoke.build.n, smoke.build.max_new_tokens, smoke.loop.dev.max_prompts) == ("tiny", 4, 8, 10)
    train = run_cli(["+experiment=sycophancy_loop"], REPO, module="dpo_exp", timeout=120)
    assert train.returncode != 0 and "sycophancy_loop" in train.stderr
