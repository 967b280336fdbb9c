"""Bad inputs and faults, as a user meets them: real commands, real signals, real stores and filesystems.

Each case asserts the exit code, the key words of the message (what is wrong, where, the fix) and
the MLflow state afterwards: no run at all when the input is rejected before a run is recorded,
otherwise a run in a true state (FAILED with its reason, KILLED, FINISHED), never one left RUNNING.
The read-only and full-disk cases mount a real read-only bind mount and a real 64 KiB tmpfs in a
private mount namespace (`unshare --mount`, needs root); without that permission they skip.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, all_runs, mlflow_client, run_cli
from dpo_exp import runs

SMOKE = ["+experiment=sycophancy", "+debug=smoke"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_mount() -> bool:
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


MOUNTS = can_mount()
needs_mount = pytest.mark.skipif(not MOUNTS, reason="no permission for a private mount namespace (unshare --mount)")


def env_for_cli(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(REPO), TQDM_DISABLE="1", **(extra or {}))
    return env


def run_mounted(args: list[str], cwd: Path, mount: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m dpo_exp args` inside a private mount namespace after running the shell `mount` line."""
    script = f'{mount} && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                           sys.executable, "-m", "dpo_exp", *args], cwd=cwd, env=env_for_cli(), capture_output=True,
                          text=True, timeout=timeout)


class Watched:
    """A CLI process whose output is collected line by line while it runs."""

    def __init__(self, args: list[str], cwd: Path, env: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "dpo_exp", *args], cwd=cwd, env=env_for_cli(env),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.threads = [threading.Thread(target=self._read, args=(s, buf), daemon=True)
                        for s, buf in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    @staticmethod
    def _read(stream, buf):
        for line in stream:
            buf.append(line)

    def wait_for(self, condition, timeout: float = 400) -> None:
        deadline = time.time() + timeout
        while not condition():
            assert self.proc.poll() is None, "".join(self.out[-30:]) + "".join(self.err[-30:])
            assert time.time() < deadline, "timed out: " + "".join(self.out[-30:])
            time.sleep(0.1)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.out)

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=180)
        for t in self.threads:
            t.join(timeout=10)
        return code

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)


# --- bad input, rejected before any model is loaded and before any run is recorded -------------------

# (case, arguments, environment, exit code, regex the message must match)
EARLY = [
    ("unknown key with +", ["+train.some_typo=1"], {}, 2,
     r"Unknown config key train\.some_typo.*silently ignored.*Fix: remove it"),
    ("unknown key without +", ["train.some_typo=1"], {}, 1, r"Could not override 'train\.some_typo'.*Key 'some_typo' not in 'TrainConfig'"),
    ("--cfg job validates values", ["--cfg", "job", "beta=-1"], {}, 2, r"beta\.value=-1\.0.*beta must be > 0.*Fix"),
    ("--cfg job rejects unknown keys", ["--cfg", "job", "+train.lerning_rate=1"], {}, 2,
     r"Unknown config key train\.lerning_rate.*Did you mean train\.learning_rate"),
    ("unknown lr scheduler", ["train.lr_scheduler=nope"], {}, 1,
     r"train\.lr_scheduler.*Invalid value 'nope'.*cosine"),
    ("unknown optimizer", ["train.optim=nope"], {}, 1, r"train\.optim.*Invalid value 'nope'.*adamw_torch"),
    ("warmup ratio above 1", ["train.warmup_ratio=3"], {}, 2, r"train\.warmup_ratio=3\.0.*\[0, 1\].*Fix"),
    ("num_threads <= 0", ["hardware.num_threads=0"], {}, 2, r"hardware\.num_threads=0.*at least one.*Fix"),
    ("folder tracking store", ["tracking.uri=file:///tmp/dpo_exp_mlruns"], {}, 2,
     r"file:///tmp/dpo_exp_mlruns.*folder store.*Fix: .*sqlite:////"),
    ("unknown tracking scheme", ["tracking.uri=foo://bar"], {}, 2, r"foo://bar.*cannot be opened.*Fix"),
    ("tracking server down", [], {"MLFLOW_TRACKING_URI": "http://127.0.0.1:{port}"}, 2,
     r"http://127\.0\.0\.1:\d+ is unreachable.*MLFLOW_TRACKING_URI.*mlflow server"),
    ("data.where on an absent field", ["+data.where.nope=1"], {}, 2,
     r"data\.where filters on 'nope'.*no row of .*pushback_train\.jsonl.*fields seen: .*kind.*Fix"),
    ("hub id, hub switched off", ["model=local", "model.path=gpt2"], {"HF_HUB_OFFLINE": "1", "HF_HOME": "{tmp}/hf"}, 2,
     r"model\.path='gpt2' is a Hugging Face hub id that is not in the local cache.*HF_HUB_OFFLINE.*hf download gpt2"),
    ("hub id, hub unreachable", ["model=local", "model.path=openai-community/gpt2"],
     {"HF_ENDPOINT": "http://127.0.0.1:{port}", "HF_HOME": "{tmp}/hf"}, 2,
     r"openai-community/gpt2.*the hub \(http://127\.0\.0\.1:\d+\) cannot be reached.*hf download"),
]
if not __import__("torch").cuda.is_available():
    EARLY.append(("hardware=gpu_bf16 without a GPU", ["hardware=gpu_bf16"], {}, 2,
                  r"hardware\.device=cuda but PyTorch sees no CUDA GPU.*Fix: use hardware=cpu"))


@pytest.mark.parametrize("case, args, env, code, message", EARLY, ids=[c[0] for c in EARLY])
def test_bad_input_fails_early_with_one_clear_paragraph(case, args, env, code, message, workdir):
    env = {k: v.format(port=closed_port(), tmp=workdir) for k, v in env.items()}
    started = time.time()
    out = run_cli([*SMOKE, *args], cwd=workdir, env=env, timeout=300)
    assert out.returncode == code, out.stdout[-2000:] + out.stderr[-3000:]
    assert re.search(message, out.stderr, re.S), out.stderr[-3000:]
    assert "loaded on" not in out.stdout  # before any model
    assert "Traceback" not in out.stderr
    if (workdir / "mlflow.db").exists():
        assert not all_runs(workdir)  # nothing recorded
    assert "learning_rate:" not in out.stdout  # --cfg printed no config
    assert time.time() - started < 120  # no minute of hub retries


def test_a_bare_hub_id_is_not_taken_for_a_missing_folder(workdir):
    out = run_cli([*SMOKE, "model=local", "model.path=gpt2"], cwd=workdir,
                  env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(workdir / "hf")}, timeout=300)
    assert out.returncode == 2 and "not a Hugging Face model folder" not in out.stderr


def test_report_names_an_unknown_sweep_and_the_fix(workdir):
    from dpo_exp import tracking

    tracking.open_client(f"sqlite:///{workdir / 'mlflow.db'}")  # a real, empty store where the report looks
    for target, words in (("0123456789abcdef0123456789abcdef", r"neither a sweep directory nor a run in the MLflow "
                                                                 r"store sqlite:///.*mlflow\.db.*Fix: pass"),
                          ("no_such_dir", r"neither a sweep directory nor a run.*Fix")):
        out = subprocess.run([sys.executable, "-m", "dpo_exp.report", target], cwd=workdir, env=env_for_cli(),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr[-2000:]
        assert re.search(words, out.stderr, re.S) and "Traceback" not in out.stderr, out.stderr[-2000:]
    missing = subprocess.run([sys.executable, "-m", "dpo_exp.report", "abc", "--tracking-uri",
                              f"sqlite:///{workdir / 'nowhere.db'}"], cwd=workdir, env=env_for_cli(),
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "There is no MLflow store at" in missing.stderr
    assert not (workdir / "nowhere.db").exists()  # a typo in the URI does not create an empty store


@needs_mount
def test_read_only_output_dir_is_named_before_anything_runs(workdir):
    (workdir / "ro").mkdir()
    out = run_mounted([*SMOKE, f"paths.outputs={workdir / 'ro'}"], cwd=workdir,
                      mount=f"mount --bind {workdir / 'ro'} {workdir / 'ro'} && mount -o remount,bind,ro {workdir / 'ro'}")
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert re.search(rf"Cannot write the run directory {workdir / 'ro'}/sycophancy/.*not writable.*Read-only file "
                     r"system.*Fix: set paths\.outputs", out.stderr, re.S), out.stderr[-2000:]
    assert "Traceback" not in out.stderr and not (workdir / "mlflow.db").exists()


# --- what only the loaded model can tell: checked right after loading; the run is FAILED, with why ---

@pytest.mark.parametrize("args, message", [
    (["lora.target_modules=[q_proj,nope]"],
     r"lora\.target_modules names nope, but model 'tiny' has no module of that name\. Its linear layers: .*q_proj.*"
     r"Fix: lora\.target_modules="),
    (["train.max_length=8"],
     r"train\.max_length=8 is shorter than the prompts: 64 of 64 pairs have a prompt of 8 tokens or more.*"
     r"Fix: train\.max_length=\d+ fits every pair"),
], ids=["lora target naming no module", "max_length shorter than the prompts"])
def test_model_dependent_checks_fail_right_after_loading(args, message, workdir):
    out = run_cli([*SMOKE, *args], cwd=workdir, timeout=600)
    assert out.returncode == 2, out.stderr[-3000:]
    assert re.search(message, out.stderr, re.S), out.stderr[-3000:]
    assert "loaded on" in out.stdout and "training:" not in out.stdout and "Traceback" not in out.stderr
    (run,) = all_runs(workdir)
    assert run.info.status == "FAILED" and re.search(message, run.data.tags["dpo_exp.error"], re.S)
    state = json.loads((Path(run.data.tags["dpo_exp.run_dir"]) / runs.STATE_FILE).read_text())
    assert state["status"] == "failed"


# --- warnings: the run goes on, the console and MLflow say what is off ---------------------------

@pytest.mark.parametrize("audit", ["warn", "off"])
def test_warnings_for_no_eval_split_tiny_data_and_mostly_skipped_rows(audit, workdir):
    good = '{"prompt": "Is ice cold?", "chosen": "Yes, it is.", "rejected": "No, it is hot."}\n'
    (workdir / "pairs.jsonl").write_text(good * 2 + '{"prompt": "x"}\n' * 3)
    out = run_cli(["+debug=smoke", "data=file", "data.path=pairs.jsonl", "data.on_error=skip", "data.eval_fraction=0",
                   "train.max_steps=1", f"data.audit={audit}"], cwd=workdir, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for words in ("warning: no eval split", "warning: only 2 train pairs, fewer than one batch"):
        assert out.stdout.count(words) == 1, out.stdout[-3000:]
    (run,) = all_runs(workdir)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert "no eval metrics" in tags["dpo_exp.warning.no_eval"]
    assert "fewer than one batch" in tags["dpo_exp.warning.small_data"]
    if audit == "off":
        assert out.stdout.count("warning: 3 of 5 rows were malformed and skipped") == 1
        assert "3 of 5 rows" in tags["dpo_exp.warning.skipped_rows"]
    else:  # the pre-train data audit reports them (once: not a second time as dpo_exp.warning.skipped_rows)
        assert tags["dpo_exp.audit.malformed"] == "error (3/5)" and "dpo_exp.warning.skipped_rows" not in tags


# --- runs never share a directory; a fresh store is safe to open at once ---------------------------

def test_two_runs_started_at_once_get_their_own_directories_and_one_store(workdir):
    args = [*SMOKE, "train.max_steps=2", "eval.at_start=false", "eval.max_new_tokens=0"]
    procs = [subprocess.Popen([sys.executable, "-m", "dpo_exp", *args], cwd=workdir, env=env_for_cli(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    found = all_runs(workdir)
    assert len(found) == 2 and all(r.info.status == "FINISHED" for r in found)
    dirs = {r.data.tags["dpo_exp.run_dir"] for r in found}
    assert len(dirs) == 2  # started in the same second, still apart
    for run in found:
        state = json.loads((Path(run.data.tags["dpo_exp.run_dir"]) / runs.STATE_FILE).read_text())
        assert state["mlflow_run_id"] == run.info.run_id and state["status"] == "finished"


# --- interrupts and crashes: MLflow states stay true -------------------------------------------------

def test_sigterm_marks_the_run_killed_with_one_line_and_no_traceback(workdir):
    w = Watched([*SMOKE, "train.max_steps=200", "eval.at_start=false"], cwd=workdir)
    w.wait_for(lambda: w.saw("training:"))
    code = w.stop(signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert "Traceback" not in w.stderr, w.stderr[-3000:]
    lines = [line for line in w.stderr.splitlines() if "KILLED" in line]
    assert len(lines) == 1 and "resume=true" in lines[0], w.stderr[-2000:]
    (run,) = all_runs(workdir)
    assert run.info.status == "KILLED"
    state = json.loads((Path(run.data.tags["dpo_exp.run_dir"]) / runs.STATE_FILE).read_text())
    assert state["status"] == "killed"


def test_sigkilled_run_is_marked_killed_later_and_resumes_with_one_value_per_step(workdir):
    args = [*SMOKE, "train.max_steps=30", "train.eval_steps=5", "train.logging_steps=1", "eval.kl_prompts=1",
            "eval.at_start=false", "eval.max_new_tokens=0"]
    w = Watched(args, cwd=workdir)

    def logged_past_a_checkpoint() -> bool:
        states = list(workdir.glob(f"outputs/**/{runs.STATE_FILE}"))
        checkpoint = runs.last_checkpoint(states[0].parent) if states else None
        if checkpoint is None:
            return False
        # Opened only now, when the run has long created the store: this test's own MlflowClient would
        # otherwise race the run's schema migration of a fresh sqlite file (what dpo_exp's file lock prevents).
        run_id = json.loads(states[0].read_text()).get("mlflow_run_id")
        steps = {m.step for m in mlflow_client(workdir).get_metric_history(run_id, "loss")}
        return max(steps, default=0) >= int(checkpoint.name.split("-")[1]) + 2

    w.wait_for(logged_past_a_checkpoint)
    w.stop(signal.SIGKILL)
    client = mlflow_client(workdir)
    (run,) = all_runs(workdir)
    assert run.info.status == "RUNNING"  # nothing could mark it: the process is gone
    run_dir = Path(run.data.tags["dpo_exp.run_dir"])
    assert json.loads((run_dir / runs.STATE_FILE).read_text())["owner"].startswith(f"{w.proc.pid}@")
    checkpoint_step = int(runs.last_checkpoint(run_dir).name.split("-")[1])
    before = {m.step for m in client.get_metric_history(run.info.run_id, "loss")}
    assert max(before) > checkpoint_step  # steps after the checkpoint are logged and will be recomputed

    # A later command on the same outputs: resume=true, but into another store. It marks the dead run
    # KILLED (saying so once), then refuses, naming both stores.
    other = f"sqlite:///{workdir / 'other.db'}"
    wrong = run_cli([*args, "resume=true", f"tracking.uri={other}"], cwd=workdir, timeout=300)
    assert wrong.returncode == 2, wrong.stderr[-2000:]
    assert wrong.stdout.count("KILLED whose process is gone") == 1 and str(run_dir) in wrong.stdout
    assert re.search(rf"logged to the MLflow store sqlite:///{workdir}/mlflow\.db, but this command logs to "
                     rf"{other}.*Fix: run with tracking\.uri=sqlite:///{workdir}/mlflow\.db", wrong.stderr, re.S)
    (run,) = all_runs(workdir)
    assert run.info.status == "KILLED" and "was gone" in run.data.tags["dpo_exp.error"]
    assert json.loads((run_dir / runs.STATE_FILE).read_text())["status"] == "killed"
    from mlflow.tracking import MlflowClient

    other_client = MlflowClient(other)
    assert not [r for e in other_client.search_experiments() for r in other_client.search_runs([e.experiment_id])]

    out = run_cli([*args, "resume=true"], cwd=workdir, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"continuing {run_dir} from {run_dir}/checkpoint-{checkpoint_step}" in out.stdout
    assert "KILLED whose process is gone" not in out.stdout  # said once, by the first command that found it
    (run,) = all_runs(workdir)
    assert run.info.status == "FINISHED" and "dpo_exp.error" not in run.data.tags
    for key in run.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), (key, sorted(steps))
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == list(range(1, 31))


# --- sweeps: the parent run is never left RUNNING, and never FINISHED with a failed job -------------

def sweep_parent(workdir: Path):
    (parent,) = [r for r in all_runs(workdir) if r.data.tags.get("dpo_exp.role") == "sweep"]
    return parent


def test_sweep_with_failed_jobs_exits_nonzero_says_why_and_reruns_without_a_second_row(workdir):
    grid = ["-m", *SMOKE, "beta=-1,-2"]  # both fail validation: fast, no model
    for attempt in range(2):
        out = run_cli(grid, cwd=workdir, timeout=600)
        assert out.returncode == 1, out.stderr[-3000:]
        assert "Not finished (2 of 2):" in out.stdout and out.stdout.count("beta must be > 0") >= 2
        assert "marked FAILED" in out.stdout
        parent = sweep_parent(workdir)
        assert parent.info.status == "FAILED" and parent.data.tags["dpo_exp.failed_jobs"] == "2"
        children = [r for r in all_runs(workdir) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == 2 and all(c.info.status == "FAILED" for c in children)  # re-run: no new rows
        newest = max(workdir.glob("outputs/sycophancy/multirun_*/summary"), key=lambda p: p.parent.name)
        assert len((newest / "summary.csv").read_text().strip().splitlines()) == 3  # header + one row per job
        time.sleep(1.1)


def test_sweep_composition_error_marks_the_parent_failed(workdir):
    out = run_cli(["-m", *SMOKE, "train.no_such_key=1,2"], cwd=workdir, timeout=300)
    assert out.returncode == 1
    assert "no_such_key" in out.stderr
    parent = sweep_parent(workdir)
    assert parent.info.status == "FAILED" and "stopped on an error" in parent.data.tags["dpo_exp.error"]


def test_sweep_crash_marks_the_parent_failed(workdir):
    sweep_dir = workdir / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "summary").write_text("a file where the summary folder goes: the sweep process crashes there")
    out = run_cli(["-m", *SMOKE, "beta=-1", f"hydra.sweep.dir={sweep_dir}"], cwd=workdir, timeout=300)
    assert out.returncode == 1
    assert "FileExistsError" in out.stderr or "File exists" in out.stderr
    assert sweep_parent(workdir).info.status == "FAILED"


def test_interrupted_sweep_marks_its_job_and_parent_killed(workdir):
    w = Watched(["-m", *SMOKE, "beta=0.1,0.5", "train.max_steps=200", "eval.at_start=false"], cwd=workdir)
    w.wait_for(lambda: w.saw("training:"))
    code = w.stop(signal.SIGTERM)
    assert code == 128 + signal.SIGTERM and "Traceback" not in w.stderr, w.stderr[-3000:]
    parent = sweep_parent(workdir)
    assert parent.info.status == "KILLED"
    (child,) = [r for r in all_runs(workdir) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert child.info.status == "KILLED"


def test_sigkilled_sweep_is_marked_killed_by_the_next_command(workdir):
    w = Watched(["-m", *SMOKE, "beta=0.1,0.5", "train.max_steps=200", "eval.at_start=false"], cwd=workdir)
    w.wait_for(lambda: w.saw("training:"))
    w.stop(signal.SIGKILL)
    assert {r.info.status for r in all_runs(workdir)} == {"RUNNING"}
    (sweep_dir,) = workdir.glob("outputs/sycophancy/multirun_*")
    out = subprocess.run([sys.executable, "-m", "dpo_exp.report", str(sweep_dir)], cwd=workdir, env=env_for_cli(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("marked 2 run(s) KILLED whose process is gone") == 1, out.stdout[-2000:]
    assert {r.info.status for r in all_runs(workdir)} == {"KILLED"}  # the parent and the job it was running


# --- a full disk: the original error is kept, the run is FAILED ---------------------------------------

@needs_mount
def test_full_disk_fails_the_run_with_the_path_and_the_original_error(workdir):
    full = workdir / "small"
    full.mkdir()
    out = run_mounted([*SMOKE, f"paths.outputs={full}", "train.max_steps=6", "train.eval_steps=3",
                       "eval.at_start=false"], cwd=workdir, mount=f"mount -t tmpfs -o size=64k tmpfs {full}")
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
    assert re.search(rf"The disk holding {full}/sycophancy/\S+ ran out of space \(\d+ bytes free now\): .*No space left "
                     r"on device.*The run is marked FAILED.*Fix: free space", out.stderr, re.S), out.stderr[-3000:]
    (run,) = all_runs(workdir)  # the store is outside the full disk: the run's state there is true
    assert run.info.status == "FAILED" and run.data.tags["dpo_exp.error"]
