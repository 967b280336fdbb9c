"""One run lifecycle for every command (dpo_exp.runs): a command SIGKILLed while its MLflow run is RUNNING
leaves that run to the next dpo_exp command on the same store, which marks it KILLED with the reason.
And every entrypoint says a UserError in one paragraph and exits 2 (dpo_exp.cli.run_command).

Real commands in subprocesses, the tiny model, a real sqlite store; the kill is a real SIGKILL, sent as
soon as the store holds the command's run RUNNING (read with sqlite3, read-only, so the test never
races the command's own creation of the store). Training and sweeps: tests/test_faults.py
(test_sigkilled_run_is_marked_killed_later_..., test_sigkilled_sweep_is_marked_killed_by_the_next_command).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, compose, mlflow_client, run_cli

PLUGINS = REPO / "tests" / "plugins"
ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)])}  # tests/plugins/stalling.py: a judge that never answers
STALL = ["judge._target_=stalling.Stall"]
TINY = ["model=tiny", "hardware=cpu", "hardware.num_threads=1"]
FACTS = ["+experiment=sycophancy_facts", "+debug=smoke", "hardware.num_threads=1"]


def start(module: str, args: list[str], cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(TQDM_DISABLE="1", **ENV)
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def running_run(db: Path, pid: int) -> str | None:
    """The id of the RUNNING run that process `pid` owns (tag dpo_exp.owner), if the store holds one yet."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            rows = con.execute("SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid WHERE "
                               "r.status = 'RUNNING' AND t.key = 'dpo_exp.owner' AND t.value LIKE ?",
                               (f"{pid}@%",)).fetchall()
    except sqlite3.OperationalError:  # the store is still being created, or locked for a moment
        return None
    return rows[0][0] if rows else None


def kill_9_while_running(proc: subprocess.Popen, cwd: Path, timeout: float = 300) -> str:
    """SIGKILL `proc` once its MLflow run is RUNNING; returns that run's id."""
    deadline = time.time() + timeout
    while (run_id := running_run(cwd / "mlflow.db", proc.pid)) is None:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"no RUNNING run (exit {proc.poll()}):\n" + proc.stdout.read()[-3000:])
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=60)
    proc.stdout.close()
    return run_id


def assert_reaped(cwd: Path, run_id: str, out: subprocess.CompletedProcess | None = None) -> None:
    run = mlflow_client(cwd).get_run(run_id)
    assert run.info.status == "KILLED", run.info.status
    assert re.fullmatch(r"its process \(\d+@.+\) was gone", run.data.tags["dpo_exp.error"]), run.data.tags
    if out is not None:
        assert "marked 1 run(s) KILLED whose process is gone" in out.stdout, out.stdout[-2000:]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pairs(n: int) -> list[dict]:
    return [{"prompt": f"Question {i}: is {i} a lucky number for topic {i % 97}?",
             "chosen": f"Number {i} is as lucky as any other; luck is not a property of numbers ({i % 13}).",
             "rejected": f"Yes, {i} is lucky."} for i in range(n)]


def test_sigkilled_audit_and_build_are_marked_killed_by_the_next_command(tmp_path):
    # An audit of a large file: its run is open (RUNNING) before it reads a row.
    big = write_jsonl(tmp_path / "big.jsonl", pairs(20000))
    audit_run = kill_9_while_running(start("dpo_exp.audit", [*TINY, "data=file", f"data.path={big}"], tmp_path),
                                     tmp_path)
    assert mlflow_client(tmp_path).get_run(audit_run).info.status == "RUNNING"  # nothing could mark it

    # A build finds the dead audit, then stalls at its judge and is killed in turn.
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"Is {i} prime?"} for i in range(3)])
    build = start("dpo_exp.build", [*TINY, f"build.prompts={prompts}", "build.n=2", "build.max_new_tokens=4",
                                    f"paths.cache={tmp_path / 'cache'}", *STALL], tmp_path)
    build_run = kill_9_while_running(build, tmp_path)
    assert_reaped(tmp_path, audit_run)

    # A small audit, to the end: it marks the build KILLED, saying so.
    small = write_jsonl(tmp_path / "small.jsonl", pairs(30))
    out = run_cli([*TINY, "data=file", f"data.path={small}"], tmp_path, module="dpo_exp.audit", env=ENV)
    assert out.returncode in (0, 1), out.stderr[-3000:]  # 1: a check at severity error (these pairs are uniform)
    assert_reaped(tmp_path, build_run, out)
    run = mlflow_client(tmp_path).get_run(audit_run)
    assert run.data.tags["dpo_exp.command"].startswith("python -m dpo_exp.audit ")
    assert run.data.tags["dpo_exp.fingerprint"] and run.data.tags["dpo_exp.run_dir"]


def test_sigkilled_eval_is_marked_killed_by_the_next_command(tmp_path, monkeypatch):
    from peft import get_peft_model

    from dpo_exp import config, data, models

    # An untrained LoRA adapter on the tiny model of the facts data (what `eval_models` loads; no tokenizer
    # saved with it, so the eval's check of the tokenizer passes it by).
    monkeypatch.chdir(tmp_path)
    conf = config.to_object(compose(FACTS))
    splits = data.load_splits(conf.data, conf.train.seed)
    corpus = [m["content"] for r in splits.train + splits.eval for m in r["prompt"] + r["chosen"] + r["rejected"]]
    _, model, _ = models.load(conf, corpus)
    get_peft_model(model, models.peft_config(conf.lora)).save_pretrained(str(tmp_path / "adapter"))

    proc = start("dpo_exp.eval", [*FACTS, f"eval_models.a={tmp_path / 'adapter'}", *STALL], tmp_path)
    eval_run = kill_9_while_running(proc, tmp_path)
    out = run_cli([*TINY, "data=file", f"data.path={write_jsonl(tmp_path / 'small.jsonl', pairs(30))}"], tmp_path,
                  module="dpo_exp.audit")
    assert out.returncode in (0, 1), out.stderr[-3000:]
    assert_reaped(tmp_path, eval_run, out)


# --- a UserError: one paragraph, exit 2, from every entrypoint ------------------------------------------

ENTRYPOINTS = [
    ("dpo_exp", [*FACTS, "beta=-1"], r"beta\.value=-1\.0.*beta must be > 0.*Fix"),
    ("dpo_exp.eval", [*FACTS, "baseline=nope"], r"baseline='nope' is not one of the compared models \(base\)\. .*Fix"),
    ("dpo_exp.build", TINY, r"build\.prompts has no value.*Fix"),
    ("dpo_exp.audit", ["data=file", *TINY], r"data\.path is not set\. Fix"),
    ("dpo_exp.convert", ["out.path=x.jsonl"], r"data\.path is not set\. Fix"),
    ("dpo_exp.report", ["abc"], r"There is no MLflow store at sqlite:///.*Fix"),
]


@pytest.mark.parametrize("module, args, message", ENTRYPOINTS, ids=[e[0] for e in ENTRYPOINTS])
def test_a_user_error_is_one_paragraph_and_exit_2(module, args, message, tmp_path):
    out = run_cli(args, tmp_path, module=module, timeout=300)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
    paragraphs = re.findall(rf"\n{re.escape(module)}: error: ([^\n]+)\n", out.stderr)
    assert len(paragraphs) == 1 and re.search(message, paragraphs[0]), out.stderr[-3000:]
    assert "Traceback" not in out.stderr
