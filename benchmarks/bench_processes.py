"""Benchmark: one run on 1 process vs N processes (torchrun, gloo on a CPU), same global batch.

    python benchmarks/bench_processes.py [--steps 20] [--pairs 96] [--global-batch 8] [--processes 2]

Both variants train the bundled SmolLM2-135M-Instruct with LoRA on the first `--pairs` sycophancy
pairs for `--steps` optimizer steps of `--global-batch` pairs (1 process: that many per step; N
processes: global/N each), with evaluation and held-out generation off, from a warm reference cache
(filled by an untimed 1-step run first, so neither variant pays the reference pass). Reported per
variant: wall time (process start to exit), MLflow `train_runtime` (the training loop alone), and the
peak RSS of every training process (polled every 0.1 s). The final losses are printed too: they must
agree. Results are printed and appended to benchmarks/results.jsonl; docs/benchmarks.md ("1 vs 2
processes") records them. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path, env: dict, log: Path) -> tuple[float, list[float]]:
    """Wall seconds, and the peak RSS (GiB) of each process that trains (ranks, or the one process)."""
    peaks: dict[int, int] = {}
    start = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in tree:
                try:
                    # torchrun's own agent process does not train: count only ranks (RANK set) or a lone process.
                    if p.pid == proc.pid and "torch.distributed.run" in " ".join(p.cmdline()):
                        continue
                    peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
                except psutil.Error:
                    pass
            time.sleep(0.1)
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:6]} failed; its output is in {log}:\n{log.read_text()[-3000:]}")
    big = sorted((v / 2**30 for v in peaks.values()), reverse=True)
    return wall, [round(v, 2) for v in big if v > 0.3]  # drop helpers (e.g. compile workers) under 0.3 GiB


def last_run_metrics(db: Path) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              order_by=["attributes.start_time DESC"], max_results=1)
    return dict(runs[0].data.metrics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    if args.global_batch % args.processes:
        raise SystemExit("--global-batch must be a multiple of --processes")

    sys.path.insert(0, str(REPO))
    from dpo_exp.models import bundled_folder

    bundled_folder("~/.cache/dpo_exp")  # converted once, outside the timings
    work = Path(tempfile.mkdtemp(prefix="dpo_bench_procs_"))
    data_file = work / "pairs.jsonl"
    rows = (REPO / "dpo_exp/tasks/claims/sycophancy_train.jsonl").read_text().splitlines()[: args.pairs]
    data_file.write_text("\n".join(rows) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DPO_EXP_"))}
    env.update(TQDM_DISABLE="1", PYTHONPATH=str(REPO))
    common = ["data=file", f"data.path={data_file}", "data.eval_fraction=0", "hardware=cpu", "eval.at_start=false",
              f"paths.cache={work / 'cache'}", f"paths.outputs={work / 'outputs'}", f"train.eval_steps={args.steps}"]
    # Copy the converted model into this cache so the warm-up below only adds the reference pass.
    (work / "cache" / "models").mkdir(parents=True)
    src = Path("~/.cache/dpo_exp/models").expanduser()
    for model in src.iterdir():
        os.symlink(model, work / "cache" / "models" / model.name)

    print("warming the reference cache (untimed) ...", flush=True)
    run([sys.executable, "-m", "dpo_exp", *common, "train.max_steps=1", f"train.batch_size={args.global_batch}"],
        work, env, work / "warmup.log")

    n = args.processes
    variants = {
        "1 process": [sys.executable, "-m", "dpo_exp", *common, f"train.max_steps={args.steps}",
                      f"train.batch_size={args.global_batch}"],
        f"{n} processes": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
                           "-m", "dpo_exp", *common, f"train.max_steps={args.steps}",
                           f"train.batch_size={args.global_batch // n}"],
    }
    results = {}
    for name, cmd in variants.items():
        wall, peaks = run(cmd, work, env, work / f"{name.replace(' ', '_')}.log")
        metrics = last_run_metrics(work / "mlflow.db")
        results[name] = {"seconds": round(wall, 1), "train_runtime_s": round(metrics.get("train_runtime", 0), 1),
                         "peak_rss_gib_per_process": peaks, "final_loss": metrics.get("loss")}
        print(f"{name:12s} {wall:7.1f} s wall, {metrics.get('train_runtime', 0):7.1f} s training loop, "
              f"peak RSS per process {peaks} GiB, final loss {metrics.get('loss')}", flush=True)

    record = {"bench": "processes", "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "steps": args.steps, "pairs": args.pairs,
              "global_batch": args.global_batch, "processes": n, "results": results}
    with open(REPO / "benchmarks" / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
