"""One run on several processes: real torchrun / accelerate launch, real gloo process groups, real TRL.

Two CPU processes with 4 pairs each must train exactly like one process with 8 (same global
batch), leave one run directory, one MLflow run and one summary, and share the reference cache.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, all_runs, free_port, mlflow_client, run_cli
from dpo_exp import distributed, runs

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

# 64 rows: 48 train pairs = 6 steps of 8, and 16 eval pairs = one batch of 8 per process. The same
# global batch for evaluation too: TRL averages some eval metrics per batch (logits/*), so 2 x 8 only
# equals 1 x 16. An eval set that does not divide evenly is padded by accelerate (every rank needs a
# batch), and TRL's eval reward metrics then count the repeated pairs: equal only on even splits.
# Before the first update the policy is the reference, so every margin is float noise (the shared-prefix
# forward's sums depend on the batch's padded width), and rewards/accuracies, a step function of the margin
# (margin > 0), is a coin toss there: it is compared only where the margins are not noise. Every step is
# logged (train.logging_steps=1) so that step 1 stands alone.
SMOKE = ["+experiment=sycophancy_facts", "+debug=smoke", "data.eval_fraction=0.25", "train.logging_steps=1"]
ONE_PROCESS = [*SMOKE, "train.batch_size=8", "train.eval_batch_size=16"]
TWO_PROCESSES = [*SMOKE, "train.batch_size=4", "train.eval_batch_size=8"]
# Timing and counters differ by construction; everything else must match.
NOT_COMPARED = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",
                "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch")
TOLERANCE = 1e-5  # absolute; and 1e-6 relative: log-probs are sums over a sequence (-400 nats)
# accuracy -> the margin it is a step function of
NOISE_GATED = {"rewards/accuracies": "rewards/margins", "eval_rewards/accuracies": "eval_rewards/margins"}


def env_for(workdir: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DPO_EXP_", "ACCELERATE_"))}
    # HF_HOME: no user-level accelerate config file changes what `accelerate launch` does here.
    env.update(PYTHONPATH=str(REPO), TQDM_DISABLE="1", HF_HOME=str(workdir / "hf"), **(extra or {}))
    return env


def torchrun(n: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n)]


def accelerate_launch(*flags: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()), *flags]


def launch(launcher: list[str], args: list[str], cwd: Path, timeout: int = 420) -> subprocess.CompletedProcess:
    """`<launcher> -m dpo_exp <args>`, as a user types it; a deadlock fails on the timeout."""
    out = subprocess.run([*launcher, "-m", "dpo_exp", *args], cwd=cwd, env=env_for(cwd), capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out


def histories(cwd: Path, run_id: str) -> dict[str, list[tuple[int, float]]]:
    client = mlflow_client(cwd)
    keys = [k for k in client.get_run(run_id).data.metrics if k not in NOT_COMPARED]
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}


def assert_same_metrics(got: dict, expected: dict) -> None:
    assert set(got) == set(expected), set(got) ^ set(expected)
    gated_compared = 0
    for key, points in expected.items():
        assert [s for s, _ in got[key]] == [s for s, _ in points], key
        margins = dict(expected.get(NOISE_GATED.get(key), []))
        for (step, a), (_, b) in zip(got[key], points):
            if key in NOISE_GATED and abs(margins.get(step, 1.0)) < 1e-4:
                continue  # the policy is still the reference: margins are noise, accuracy a coin toss
            gated_compared += key in NOISE_GATED
            assert math.isclose(a, b, rel_tol=1e-6, abs_tol=TOLERANCE), f"{key} at step {step}: {a} vs {b} (one process)"
    assert gated_compared >= 2, "no reward accuracy was compared: every logged margin was noise"


def the_one_run(cwd: Path, out: subprocess.CompletedProcess, n_runs: int = 1, like: set[str] | None = None):
    """The newest run, after checking that a launch left exactly one of everything (and, with `like`,
    the same files in its run directory as a one-process run: ranks > 0 write none of their own)."""
    assert out.stdout.count("== dpo_exp summary ==") == 1  # one summary, from rank 0
    finished = [r for r in all_runs(cwd) if r.info.status == "FINISHED"]
    assert len(all_runs(cwd)) == n_runs and len(finished) == n_runs, [r.info.run_name for r in all_runs(cwd)]
    run = max(finished, key=lambda r: r.info.start_time)
    assert len(list(cwd.glob("outputs/sycophancy_facts/*"))) == n_runs  # ranks agreed on one directory
    run_dir = Path(run.data.tags["dpo_exp.run_dir"])
    state = json.loads((run_dir / runs.STATE_FILE).read_text())
    assert state["status"] == "finished" and state["mlflow_run_id"] == run.info.run_id
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    if like is not None:
        assert listing(run_dir) == like
    return run


def listing(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if "checkpoint-" not in str(p)} | {
        p.name for p in run_dir.glob("checkpoint-*")}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    """The reference: one process, batch 8 (its metric histories and its run directory's files)."""
    cwd = tmp_path_factory.mktemp("one_process")
    out = run_cli([*ONE_PROCESS, f"paths.cache={cwd / 'cache'}"], cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = all_runs(cwd)
    return {"metrics": histories(cwd, run.info.run_id), "files": listing(Path(run.data.tags["dpo_exp.run_dir"]))}


def test_two_torchrun_processes_train_one_run_exactly_like_one_process(one_process, workdir):
    cache = f"paths.cache={workdir / 'cache'}"
    cold = launch(torchrun(), [*TWO_PROCESSES, cache], workdir)
    run = the_one_run(workdir, cold, like=one_process["files"])
    assert "global batch 8 pairs = 4 per process x 2 process(es)" in cold.stdout
    assert run.data.params["run.num_processes"] == "2" and run.data.params["run.global_batch_size"] == "8"
    assert run.data.params["run.parallelism"] == "ddp"
    # Cold cache: both ranks took part in the reference pass, rank 0 wrote each file once.
    assert run.data.tags["dpo_exp.ref_logps.train"] == "computed"
    assert sorted(p.suffix for p in (workdir / "cache" / "ref_logps").iterdir()) == [".lock", ".lock", ".pt", ".pt"]
    assert_same_metrics(histories(workdir, run.info.run_id), one_process["metrics"])

    warm = launch(torchrun(), [*TWO_PROCESSES, cache], workdir)
    run = the_one_run(workdir, warm, n_runs=2)
    assert run.data.tags["dpo_exp.ref_logps.train"] == "cached"
    assert_same_metrics(histories(workdir, run.info.run_id), one_process["metrics"])


def test_accelerate_launch_multi_gpu_flag_runs_gloo_processes_on_cpu(one_process, workdir):
    out = launch(accelerate_launch("--multi_gpu"), [*TWO_PROCESSES, f"paths.cache={workdir / 'cache'}"], workdir)
    run = the_one_run(workdir, out)
    assert run.data.params["run.num_processes"] == "2"
    assert_same_metrics(histories(workdir, run.info.run_id), one_process["metrics"])


def test_accelerate_launch_cpu_flag_says_it_started_one_process(workdir):
    # accelerate's --cpu launcher ignores --num_processes; the user hears about it at once.
    out = subprocess.run([*accelerate_launch("--cpu"), "-m", "dpo_exp", *SMOKE, "--cfg", "job"], cwd=workdir,
                         env=env_for(workdir), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "started ONE process" in out.stderr and "--multi_gpu --num_processes 2" in out.stderr


def test_interrupted_two_process_run_resumes_into_the_same_mlflow_run(workdir):
    args = [*TWO_PROCESSES, "train.max_steps=30", "train.eval_steps=5", "eval.kl_prompts=1", "eval.at_start=false",
            f"paths.cache={workdir / 'cache'}"]
    proc = subprocess.Popen([*torchrun(), "-m", "dpo_exp", *args], cwd=workdir, env=env_for(workdir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not any(
            runs.last_checkpoint(s.parent) for s in workdir.glob(f"outputs/**/{runs.STATE_FILE}")):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on to both ranks
    proc.wait(timeout=120)
    (run,) = all_runs(workdir)
    assert run.info.status == "KILLED"
    run_dir = Path(run.data.tags["dpo_exp.run_dir"])
    assert json.loads((run_dir / runs.STATE_FILE).read_text())["status"] == "killed"

    out = launch(torchrun(), [*args, "resume=true"], workdir)
    assert f"continuing {run_dir}" in out.stdout and "resuming at step" in out.stdout, out.stdout[-3000:]
    (run,) = all_runs(workdir)  # the same MLflow run, continued and finished
    assert run.info.status == "FINISHED"
    assert [p.name for p in workdir.glob("outputs/sycophancy_facts/*") if (p / runs.STATE_FILE).exists()] == [run_dir.name]
    steps = [m.step for m in mlflow_client(workdir).get_metric_history(run.info.run_id, "loss")]
    assert max(steps) == 30


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                    reason='DeepSpeed is not installed (DS_BUILD_OPS=0 pip install -e ".[deepspeed]"; .ci/run does)')
def test_deepspeed_zero2_on_two_cpu_processes_matches_one_process(one_process, workdir):
    out = launch(torchrun(), [*TWO_PROCESSES, "distributed=zero2", f"paths.cache={workdir / 'cache'}"], workdir)
    run = the_one_run(workdir, out)
    assert run.data.params["run.parallelism"] == "deepspeed" and run.data.params["distributed.strategy"] == "zero2"
    assert_same_metrics(histories(workdir, run.info.run_id), one_process["metrics"])


def test_fsdp_on_a_cpu_is_refused_before_any_work(workdir):
    out = run_cli([*SMOKE, "distributed=fsdp"], cwd=workdir)
    assert out.returncode == 2
    assert "distributed=fsdp needs CUDA GPUs" in out.stderr and "distributed=ddp" in out.stderr
    assert "loaded on" not in out.stdout
    assert not (workdir / "mlflow.db").exists() or not all_runs(workdir)


def test_deepspeed_without_a_launcher_is_refused_with_the_command_to_use(workdir):
    out = run_cli([*SMOKE, "distributed=zero2"], cwd=workdir)
    assert out.returncode == 2
    if importlib.util.find_spec("deepspeed") is None:
        assert "DS_BUILD_OPS=0 pip install" in out.stderr
    else:
        assert "torchrun --standalone --nproc_per_node N" in out.stderr


def test_a_sweep_inside_a_multi_process_launch_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(distributed.UserError, match="cannot run inside a multi-process launch"):
        distributed.setup(["dpo_exp", "-m", "beta=0.1,0.5"])


def test_deepspeed_settings_come_from_the_config():
    from conftest import compose
    from dpo_exp import config

    zero3 = distributed.trainer_args(config.to_object(compose([*SMOKE, "distributed=zero3_offload"])))["deepspeed"]
    assert zero3["zero_optimization"]["stage"] == 3
    assert zero3["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert zero3["train_micro_batch_size_per_gpu"] == "auto"  # filled by transformers from train.batch_size
    fsdp = distributed.trainer_args(config.to_object(compose([*SMOKE, "distributed=fsdp", "distributed.offload=true"])))
    assert fsdp["fsdp"] is True and fsdp["fsdp_config"]["cpu_offload"] is True
