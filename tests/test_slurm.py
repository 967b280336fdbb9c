"""Sweeps on a real Slurm cluster: a single-node cluster (munged, slurmctld, slurmd) started here.

Debian's `slurmctld slurmd slurm-client munge` packages (.ci/run installs them) run as plain
background processes with a private munge socket and free ports, so nothing system-wide changes.
The sweep goes through Hydra's submitit_slurm launcher, like on a real cluster, with a real
`mlflow server`. Marked `slurm` (part of the default run; deselect with -m "not slurm").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, free_port, run_cli
from dpo_exp import runs, sweep

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
MISSING = [d for d in DAEMONS if not (shutil.which(d) or Path("/usr/sbin", d).exists())]
needs_slurm = pytest.mark.skipif(
    bool(MISSING) or os.geteuid() != 0,
    reason=f"a local Slurm cluster needs Debian's slurmctld slurmd slurm-client munge ({', '.join(MISSING)} missing; "
           ".ci/run installs them) and root (slurmd runs jobs as their user)" if MISSING else
           "slurmd must run as root to start jobs")


def daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A one-node Slurm cluster; yields the environment its client commands need (SLURM_CONF)."""
    root = tmp_path_factory.mktemp("slurm")
    root.chmod(0o755)  # munged wants its socket's folder reachable by everyone
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge.sock"
    procs: list[subprocess.Popen] = []

    def start(cmd: list[str], log: str, env: dict | None = None) -> None:
        procs.append(subprocess.Popen(cmd, stdout=open(root / log, "w"), stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True))

    # --force: munged as root, which a CI container is; the socket and key are this cluster's own.
    start([daemon("munged"), "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
           f"--pid-file={root / 'munged.pid'}", f"--seed-file={root / 'munged.seed'}"], "munged.out")
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=dpoexp",
        f"SlurmctldHost={host}(127.0.0.1)",
        "SlurmUser=root", "SlurmdUser=root",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        # cred_expire: also how long a requeued job waits before it may start again (default 120 s).
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock},cred_expire=10",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}", f"SlurmdLogFile={root / 'slurmd.log'}",
        # No cgroups, no accounting database: what a container can run.
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none", "MpiDefault=none", "ReturnToService=2",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ]) + "\n")
    (root / "state").mkdir()
    (root / "spool").mkdir()
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        deadline = time.time() + 30
        while not sock.exists() and time.time() < deadline:
            time.sleep(0.1)
        start([daemon("slurmctld"), "-D", "-c"], "slurmctld.out", env)  # -c: no state from an earlier cluster
        start([daemon("slurmd"), "-D", "-N", host], "slurmd.out", env)
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            if state.stdout.strip() == "idle":
                break
            time.sleep(0.3)
        else:
            logs = "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in root.glob("*.log") if p.is_file())
            pytest.fail(f"the Slurm cluster did not come up: {state.stdout} {state.stderr}\n{logs}")
        yield {"SLURM_CONF": str(conf)}
    finally:
        subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True)
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def slurm_job_ids(sweep_dir: Path) -> dict[int, str]:
    """Array task number -> Slurm job id ('<array>_<task>'), from submitit's folders."""
    return {int(p.name.split("_")[1]): p.name for p in (sweep_dir / ".submitit").iterdir()
            if re.fullmatch(r"\d+_\d+", p.name)}


@needs_slurm
def test_slurm_sweep_with_export_none_and_a_requeued_job_resumes_into_the_same_runs(slurm, mlflow_server, workdir):
    from mlflow.tracking import MlflowClient

    job_setup = [
        # What a cluster that submits with --export=NONE leaves a job: none of the submitting shell's
        # variables (not the parent run id, not MLFLOW_TRACKING_URI); srun then passes the script's own.
        "unset DPO_EXP_PARENT_RUN_ID MLFLOW_TRACKING_URI",
        "export SLURM_EXPORT_ENV=ALL",
        f"export PYTHONPATH={REPO}",
        "export TQDM_DISABLE=1",
    ]
    args = ["-m", "+experiment=sycophancy", "+debug=smoke", "beta=0.1,0.5", "train.max_steps=20",
            "train.eval_steps=5", "eval.kl_prompts=1", f"paths.cache={workdir / 'cache'}",
            "hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10",
            "hydra.launcher.max_num_timeout=2", "+hydra.launcher.additional_parameters={export: NONE}",
            "hydra.launcher.setup=[" + ",".join(json.dumps(s) for s in job_setup) + "]"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DPO_EXP_"))}
    env.update(PYTHONPATH=str(REPO), TQDM_DISABLE="1", MLFLOW_TRACKING_URI=mlflow_server, **slurm)
    proc = subprocess.Popen([sys.executable, "-m", "dpo_exp", *args], cwd=workdir, env=env, text=True,
                            stdout=open(workdir / "sweep.out", "w"), stderr=subprocess.STDOUT)
    try:
        # Time out job 1 once it has a checkpoint: Slurm's USR2 (what --signal=USR2@120 sends before the
        # time limit), submitit checkpoints the launcher and requeues the job, which starts again.
        deadline = time.time() + 300
        job_dir = None
        while time.time() < deadline and proc.poll() is None:
            dirs = list(workdir.glob("outputs/sycophancy/multirun_*/1"))
            if dirs and runs.last_checkpoint(dirs[0]) and runs.RunState.load(dirs[0]):
                job_dir = dirs[0]
                break
            time.sleep(0.1)
        assert job_dir is not None, (workdir / "sweep.out").read_text()[-3000:]
        first_run_id = runs.RunState.load(job_dir).mlflow_run_id
        sweep_dir = job_dir.parent
        slurm_id = slurm_job_ids(sweep_dir)[1]
        subprocess.run(["scancel", "--signal=USR2", slurm_id], env=env, check=True)
        proc.wait(timeout=420)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (workdir / "sweep.out").read_text()
    assert proc.returncode == 0, out[-4000:]
    job_log = (sweep_dir / ".submitit" / slurm_id / f"{slurm_id}_0_log.out").read_text()
    job_err = (sweep_dir / ".submitit" / slurm_id / f"{slurm_id}_0_log.err").read_text()
    assert "Requeued job" in job_log + job_err, job_err[-3000:]
    assert f"continuing {job_dir}" in job_log and "resuming at step" in job_log, job_log[-3000:]

    assert json.loads((sweep_dir / runs.PARENT_FILE).read_text())["tracking_uri"] == mlflow_server
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("sycophancy")
    all_runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in all_runs if r.data.tags.get(sweep.TAG_ROLE) == "sweep"]
    children = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(all_runs) == 3 and len(children) == 2, [r.info.run_name for r in all_runs]
    assert all(c.info.status == "FINISHED" for c in children)
    for child in children:
        assert {"loss", "eval_rewards/margins", "eval_kl/sampled_full_vocab"} <= set(child.data.metrics)
    # The requeued job went on in the MLflow run it started, up to the last step.
    assert first_run_id in {c.info.run_id for c in children}
    assert max(m.step for m in client.get_metric_history(first_run_id, "loss")) == 20
    assert parent.info.status == "FINISHED" and (sweep_dir / "summary" / "summary.csv").is_file()


def test_a_slurm_sweep_with_a_sqlite_store_stops_before_submitting(workdir):
    out = run_cli(["-m", "+experiment=sycophancy", "+debug=smoke", "beta=0.1,0.5", "hydra/launcher=submitit_slurm"],
                  cwd=workdir)
    assert out.returncode == 2
    assert "sqlite" in out.stderr and "mlflow server --host 0.0.0.0" in out.stderr and "tracking.uri=" in out.stderr
    assert not list(workdir.glob("outputs/**/.submitit"))  # nothing was submitted


def test_local_parallel_jobs_with_a_sqlite_store_get_a_warning(capsys):
    sweep.check_store_for_launcher("sqlite:////tmp/mlflow.db",
                                   "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher")
    assert "mlflow server" in capsys.readouterr().err
    sweep.check_store_for_launcher("sqlite:////tmp/mlflow.db", "hydra._internal.core_plugins.basic_launcher.BasicLauncher")
    sweep.check_store_for_launcher("http://127.0.0.1:5000",
                                   "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher")
    assert capsys.readouterr().err == ""  # one process at a time, or a server: nothing to say
