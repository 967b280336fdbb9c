"""GPU proof and speed (issues 12, 18): dpo_exp's bf16 and 4-bit paths on a real GPU, training
throughput against plain TRL, MFU at larger batches, and the reference pass against a training step, as
one prepared script that fits one device call.

On the device machine (from the repository root; docs/benchmarks.md, "GPU", has the exact call):
    python3 benchmarks/gpu_check.py --wheels .whl --deadline-s 500    # .whl/ from `make gpu-wheels`
Here, on a CPU, the same code path on tiny shapes (tests/test_gpu_check.py runs it):
    python benchmarks/gpu_check.py --dry-run [--out DIR] [--wheels DIR]

Stages, in this order; a failing stage is recorded and the next one still runs. Times are estimates
for an H200 from the 2026-11-26 call; the script skips a stage (an MFU batch) that would end past
--deadline-s (default 500 s, under the 600 s a device command may run):
  install  the carried wheels into /tmp/dpo_exp_site (pip --no-index --no-deps --target),      ~20 s
  env      versions, the GPU, nvidia-smi, a bf16 8192^3 matmul rate (the achievable peak),       ~20 s
  smoke    python -m dpo_exp +experiment=sycophancy +debug=smoke with hardware=gpu_4bit (the tiny
           model, quantized to NF4): metrics finite, adapter saved, MLflow run FINISHED in its
           sqlite store, model on CUDA, 4-bit layers in 4-bit, no fp32 weights but LoRA's
           (--smoke-hardware gpu_bf16,gpu_4bit adds the bf16 run)                                ~40 s
  4bit     benchmarks/bench_trl.py on random weights in Qwen2.5-0.5B's shape (model=random),
           hardware=gpu_4bit: dpo_exp and tuned, LoRA r=16, batch 8 pairs, 512-token sequences
           (no padding), 5 warm-up + 30 measured steps + 1 under torch.profiler, each            ~85 s
  bf16     the same with hardware=gpu_bf16. In both, dpo_exp's reference pass is timed (the whole
           pass, its first batch apart) and set against its training step, per pair            ~75 s
  mfu      dpo_exp alone, bf16, at larger batches (--mfu-batches, default 16,32,64 pairs of 512
           tokens; the reference pass at the same batch), 3 warm-up + 10 measured steps each,
           then the best batch again with each --mfu-extra (default train.torch_compile=true)   ~4 min
Total ~8 min of command (the deadline cuts the mfu stage first), plus the machine's start (1-2 min):
one call, timeout_s=600. If a stage is cut, rerun only what is missing with --parts (e.g. --parts mfu).
--variants dpo_exp,tuned,tutorial brings back the tutorial script in the 4bit/bf16 stages.

Everything printed also goes to $OUT (or --out): gpu_check.log, gpu_check.json (all numbers),
gpu_check.md (the tables for docs/benchmarks.md), logs.tar.gz (each child's log, step records,
profiler tables). They are rewritten after every stage, so a run cut short still returns its part.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "bench_trl.py"
STEPTIMER = REPO / "benchmarks" / "steptimer.py"
SITE = Path("/tmp/dpo_exp_site")
PARTS = ("smoke", "4bit", "bf16", "mfu")
# Estimates, see the docstring; mfu: per batch, mfu_extra: per --mfu-extra run (torch.compile compiles first).
EXPECTED_S = {"smoke": 45, "4bit": 90, "bf16": 80, "mfu": 40, "mfu_extra": 90}
# A model with Qwen2.5-0.5B's dimensions cut down to seconds on a CPU (the dry run).
TINY_SHAPE = ["hidden_size=64", "intermediate_size=128", "num_hidden_layers=2", "num_attention_heads=4",
              "num_key_value_heads=2", "vocab_size=8192"]

ENV_PROBE = r'''
import importlib, importlib.metadata as md, json, platform, sys
out = {"python": platform.python_version(), "versions": {}, "imports": {}}
for name in ["torch", "transformers", "trl", "peft", "accelerate", "datasets", "hydra-core", "omegaconf",
             "mlflow-skinny", "mlflow", "bitsandbytes", "tokenizers", "huggingface-hub", "safetensors", "pyarrow",
             "pandas", "numpy", "protobuf", "sqlalchemy"]:
    try:
        out["versions"][name] = md.version(name)
    except md.PackageNotFoundError:
        out["versions"][name] = None
for module in sys.argv[1].split(","):
    try:
        m = importlib.import_module(module)
        out["imports"][module] = getattr(m, "__file__", None) or "ok"
    except Exception as e:
        out["imports"][module] = f"FAILED: {type(e).__name__}: {e}"
import torch
out["cuda_available"] = torch.cuda.is_available()
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    out["gpu"] = {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "sm": p.multi_processor_count,
                  "capability": f"{p.major}.{p.minor}", "torch_cuda": torch.version.cuda}
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn_like(a)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(); a @ b; end.record(); end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    out["matmul_bf16_tflops"] = round(2 * 8192**3 / times[len(times) // 2] / 1e12, 1)
print("ENV_JSON " + json.dumps(out))
'''

SMOKE_CHECK = r'''
import json, math, sys
from pathlib import Path
from mlflow.tracking import MlflowClient
uri, workdir = sys.argv[1], Path(sys.argv[2])
client = MlflowClient(uri)
runs = client.search_runs([e.experiment_id for e in client.search_experiments()], order_by=["attributes.start_time DESC"])
out = {"problems": []}
if not runs:
    out["problems"].append(f"no MLflow run in {uri}")
else:
    run = runs[0]
    out["run_id"], out["status"] = run.info.run_id, run.info.status
    keys = ["loss", "rewards/margins", "rewards/accuracies", "eval_loss", "eval_rewards/margins", "eval_kl/sampled_full_vocab"]
    out["metrics"] = {k: run.data.metrics.get(k) for k in keys}
    out["params"] = {k: run.data.params.get(k) for k in ["hardware.device", "hardware.dtype", "hardware.load_in_4bit", "model.source"]}
    if run.info.status != "FINISHED":
        out["problems"].append(f"MLflow run status {run.info.status}")
    for k, v in out["metrics"].items():
        if v is None or not math.isfinite(v):
            out["problems"].append(f"metric {k} = {v}")
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    out["artifacts"] = artifacts
    if "adapter" not in artifacts:
        out["problems"].append("no adapter/ among the MLflow artifacts")
    run_dir = Path(run.data.tags.get("dpo_exp.run_dir", ""))
    out["adapter_files"] = sorted(p.name for p in (run_dir / "adapter").glob("*")) if run_dir.name else []
    if "adapter_model.safetensors" not in out["adapter_files"]:
        out["problems"].append(f"no adapter_model.safetensors in {run_dir / 'adapter'}")
print("SMOKE_JSON " + json.dumps(out))
'''


class Check:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.t0 = time.time()
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
        self.logfile = open(self.out / "gpu_check.log", "a")
        self.result: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "dry_run": args.dry_run,
                             "command": " ".join(sys.argv), "stages": {}}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.env.update(TQDM_DISABLE="1", PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        self.pythonpath = [str(REPO)]

    # --- plumbing -------------------------------------------------------------------------------

    def log(self, msg: str) -> None:
        line = f"[gpu_check {time.time() - self.t0:6.0f}s] {msg}"
        print(line, flush=True)
        self.logfile.write(line + "\n")
        self.logfile.flush()

    def child_env(self) -> dict:
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(self.pythonpath + ([self.env["PYTHONPATH"]] if self.env.get("PYTHONPATH") else []))
        return env

    def remaining(self) -> float:
        return self.args.deadline_s - (time.time() - self.t0)

    def sh(self, cmd: list[str], log: Path, cwd: Path | None = None, timeout: float | None = None) -> tuple[int, float]:
        """Run a child in its own process group (killed whole at the timeout); its output to `log`."""
        timeout = max(10.0, timeout if timeout is not None else self.remaining())
        start = time.time()
        with open(log, "w") as handle:
            proc = subprocess.Popen(cmd, cwd=cwd or REPO, env=self.child_env(), stdout=handle, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = 124
                with open(log, "a") as h:
                    h.write(f"\n[gpu_check] killed after {timeout:.0f} s (deadline)\n")
        return rc, time.time() - start

    def tail(self, log: Path, n: int = 25) -> str:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return "\n".join(lines[-n:])

    # --- stages ---------------------------------------------------------------------------------

    def install(self) -> dict:
        wheels = sorted(Path(self.args.wheels).glob("*.whl")) if self.args.wheels else []
        if not wheels:
            return {"skipped": "no --wheels folder with wheels: using this Python's own packages"}
        site = Path(self.args.site)
        stamp = site / ".dpo_exp_wheels"
        names = "\n".join(w.name for w in wheels)
        if stamp.is_file() and stamp.read_text() == names:  # a warm machine from an earlier call
            self.pythonpath.insert(0, str(site))
            return {"reused": str(site), "wheels": len(wheels)}
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)]
        rc, seconds = self.sh(cmd, self.work / "install.log", timeout=300)
        if rc != 0:
            raise RuntimeError(f"pip install failed (exit {rc}):\n{self.tail(self.work / 'install.log')}")
        stamp.write_text(names)
        self.pythonpath.insert(0, str(site))
        return {"site": str(site), "wheels": len(wheels), "seconds": round(seconds, 1),
                "megabytes": round(sum(w.stat().st_size for w in wheels) / 2**20, 1)}

    def probe_env(self) -> dict:
        modules = "trl,datasets,hydra,omegaconf,mlflow,peft,accelerate,transformers,dpo_exp.train"
        if not self.args.dry_run:
            modules += ",bitsandbytes"
        rc, _ = self.sh([sys.executable, "-c", ENV_PROBE, modules], self.work / "env.log", timeout=300)
        text = (self.work / "env.log").read_text(errors="replace")
        line = next((ln for ln in text.splitlines() if ln.startswith("ENV_JSON ")), None)
        if rc != 0 or line is None:
            raise RuntimeError(f"environment probe failed (exit {rc}):\n{self.tail(self.work / 'env.log')}")
        env = json.loads(line[len("ENV_JSON "):])
        try:
            env["nvidia_smi"] = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            env["nvidia_smi"] = None
        failed = {m: e for m, e in env["imports"].items() if str(e).startswith("FAILED")}
        if failed:
            env["problems"] = [f"import {m}: {e}" for m, e in failed.items()]
        if not self.args.dry_run and not env.get("cuda_available"):
            env.setdefault("problems", []).append("torch sees no CUDA GPU")
        return env

    def smoke(self, hardware: str) -> dict:
        name = f"smoke-{hardware}"
        workdir = self.work / name
        workdir.mkdir()
        uri = f"sqlite:///{workdir / 'mlflow.db'}"
        steps_json = self.work / f"{name}.steps.json"
        cmd = [sys.executable, str(STEPTIMER), "--out", str(steps_json), "--", "-m", "dpo_exp",
               "+experiment=sycophancy", "+debug=smoke", f"hardware={hardware}", f"paths.outputs={workdir / 'outputs'}",
               f"paths.cache={self.work / 'cache'}", f"tracking.uri={uri}"]
        rc, seconds = self.sh(cmd, self.work / f"{name}.log", cwd=workdir, timeout=min(self.remaining(), 400))
        out: dict = {"exit": rc, "seconds": round(seconds, 1), "problems": []}
        if rc != 0:
            out["problems"].append(f"python -m dpo_exp exited {rc}; log tail:\n{self.tail(self.work / f'{name}.log')}")
        rc2, _ = self.sh([sys.executable, "-c", SMOKE_CHECK, uri, str(workdir)], self.work / f"{name}.check.log",
                         timeout=120)
        text = (self.work / f"{name}.check.log").read_text(errors="replace")
        line = next((ln for ln in text.splitlines() if ln.startswith("SMOKE_JSON ")), None)
        if line is None:
            out["problems"].append(f"the MLflow check failed (exit {rc2}):\n{self.tail(self.work / f'{name}.check.log')}")
        else:
            checked = json.loads(line[len("SMOKE_JSON "):])
            out["problems"] += checked.pop("problems")
            out.update(checked)
        record = json.loads(steps_json.read_text()) if steps_json.exists() else {}
        model, out["cuda"] = record.get("model") or {}, record.get("cuda")
        out["model"] = model
        gpu = hardware != "cpu"
        if gpu and not str(model.get("device", "")).startswith("cuda"):
            out["problems"].append(f"model on {model.get('device')}, not CUDA")
        if gpu and not model.get("bf16_autocast"):
            out["problems"].append("trainer runs without bf16 autocast")
        if hardware == "gpu_4bit" and not model.get("linear_4bit_layers"):
            out["problems"].append("no bitsandbytes Linear4bit layer in the model: it was not quantized")
        if hardware == "gpu_bf16" and model.get("linear_4bit_layers"):
            out["problems"].append("4-bit layers in a bf16 run")
        if hardware == "gpu_4bit" and (model.get("param_dtypes") or {}).get("float32"):
            out["problems"].append(f"fp32 weights in the 4-bit model ({model['param_dtypes']}): something upcast "
                                   "what bitsandbytes left unquantized (peft's k-bit preparation did)")
        out["ok"] = not out["problems"]
        return out

    def bench(self, hardware: str, name: str | None = None, batch: int | None = None, variants: str | None = None,
              warmup: int | None = None, steps: int | None = None, profile: bool | None = None,
              dpo_exp_args: tuple[str, ...] = (), timeout: float | None = None) -> dict:
        a = self.args
        name = name or f"bench-{hardware}"
        batch, warmup, steps = batch or a.batch_size, a.warmup if warmup is None else warmup, steps or a.steps
        summary = self.work / f"{name}.json"
        cmd = [sys.executable, str(BENCH), "--model", "random", "--architecture", "qwen2.5-0.5b", "--hardware", hardware,
               "--variants", variants or a.variants, "--seq-len", str(a.seq_len), "--batch-size", str(batch),
               "--steps", str(warmup + steps), "--warmup-steps", str(warmup), "--pairs", str(batch * (warmup + steps)),
               "--cache", str(self.work / "cache"), "--out-dir", str(self.work / name), "--summary", str(summary),
               "--results", str(self.work / "results.jsonl")]
        if a.profile if profile is None else profile:
            cmd.append("--profile")
        for item in a.arch_override:
            cmd += ["--arch-override", item]
        for item in dpo_exp_args:
            cmd += ["--dpo-exp-arg", item]
        rc, seconds = self.sh(cmd, self.work / f"{name}.log", timeout=timeout or self.remaining())
        if rc != 0 or not summary.exists():
            raise RuntimeError(f"bench_trl.py exited {rc}:\n{self.tail(self.work / f'{name}.log', 40)}")
        out = json.loads(summary.read_text())
        out["seconds"] = round(seconds, 1)
        prof = self.work / name / "dpo_exp.profile.txt"
        if prof.exists():
            out["dpo_exp_profile_head"] = "\n".join(prof.read_text().splitlines()[:22])
        return out

    def mfu(self) -> dict:
        """dpo_exp alone in bf16 at growing batches (the reference pass at the same batch), until one fails
        (out of memory) or the deadline is near; then the best batch again with each --mfu-extra override."""
        a = self.args
        hardware = "cpu" if a.dry_run else "gpu_bf16"
        runs: dict[str, dict] = {}
        self.result["stages"]["mfu"] = {"runs": runs}  # reported after each run: a cut call keeps the ones done

        def one(label: str, batch: int, extra: tuple[str, ...]) -> bool:
            if not a.dry_run and self.remaining() < EXPECTED_S["mfu_extra" if extra else "mfu"]:
                runs[label] = {"skipped": f"{self.remaining():.0f} s left before the deadline"}
                return False
            self.log(f"mfu: {label}")
            try:
                runs[label] = self.bench(hardware, name=f"mfu-{label.replace('=', '-')}", batch=batch,
                                         variants="dpo_exp", warmup=a.mfu_warmup, steps=a.mfu_steps, profile=False,
                                         dpo_exp_args=(f"train.eval_batch_size={batch}", *extra))
            except RuntimeError as e:
                runs[label] = {"error": str(e)[-1500:]}
            self.report()
            return "results" in runs[label]

        for batch in a.mfu_batches:
            if not one(f"b{batch}", batch, ()):
                break
        done = {label: r for label, r in runs.items() if "results" in r}
        if done:
            best = max(done, key=lambda label: done[label]["results"]["dpo_exp"].get("tokens_per_s") or 0)
            for extra in a.mfu_extra:
                one(f"{best},{extra}", done[best]["batch_size"], tuple(extra.split(",")))
        return {"runs": runs}

    # --- report ---------------------------------------------------------------------------------

    def report(self) -> None:
        self.result["elapsed_s"] = round(time.time() - self.t0, 1)
        (self.out / "gpu_check.json").write_text(json.dumps(self.result, indent=1, default=str))
        (self.out / "gpu_check.md").write_text(markdown(self.result))
        with tarfile.open(self.out / "logs.tar.gz", "w:gz") as tar:
            for path in sorted(self.work.glob("*")):
                if path.suffix in (".log", ".json", ".txt") and path.is_file():
                    tar.add(path, arcname=path.name)
            for path in sorted([*self.work.glob("bench-*/*"), *self.work.glob("mfu-*/*")]):
                if path.suffix in (".log", ".json", ".txt") and path.is_file():
                    tar.add(path, arcname=f"{path.parent.name}/{path.name}")

    def stage(self, name: str, fn, *args) -> None:
        expected = EXPECTED_S.get(name.split(":")[0], 30) if not self.args.dry_run else 0
        if self.remaining() < expected:
            self.result["stages"][name] = {"skipped": f"{self.remaining():.0f} s left before the deadline, "
                                                      f"~{expected} s needed: rerun with --parts"}
            self.log(f"{name}: skipped (deadline)")
            return
        self.log(f"{name}: start")
        started = time.time()
        try:
            value = fn(*args)
        except Exception as e:  # recorded; the next stage still runs
            value = {"error": str(e)}
        value["stage_seconds"] = round(time.time() - started, 1)
        self.result["stages"][name] = value
        status = "FAILED: " + value["error"] if "error" in value else (
            "problems: " + "; ".join(value["problems"]) if value.get("problems") else "ok")
        self.log(f"{name}: {status} ({value['stage_seconds']:.0f} s)")
        self.report()

    def run(self) -> int:
        a = self.args
        gpu = {"bf16": "gpu_bf16", "4bit": "gpu_4bit"}
        self.stage("install", self.install)
        self.stage("env", self.probe_env)
        parts = a.parts.split(",")
        if "smoke" in parts:
            for hw in (["cpu"] if a.dry_run else a.smoke_hardware.split(",")):
                self.stage(f"smoke:{hw}", self.smoke, hw)
        for part in ("4bit", "bf16"):
            if part in parts and not (a.dry_run and part == "4bit"):  # one CPU run stands for both in the dry run
                self.stage(f"{part}:bench", self.bench, "cpu" if a.dry_run else gpu[part])
        if "mfu" in parts:
            self.stage("mfu", self.mfu)
        self.report()
        md = (self.out / "gpu_check.md").read_text()
        print("\n" + md, flush=True)
        self.logfile.write("\n" + md)
        failed = [n for n, s in self.result["stages"].items()
                  if "error" in s or s.get("problems") or s.get("ok") is False or ("skipped" in s and n != "install")
                  or (n == "mfu" and not any("results" in r for r in s.get("runs", {}).values()))]
        if not a.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)
        self.log(f"done in {time.time() - self.t0:.0f} s; " + (f"not ok: {', '.join(failed)}" if failed else "all ok")
                 + f"; files in {self.out}")
        return 1 if failed else 0


def fmt(value, spec: str = ".3f", none: str = "n/a") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return none
    return format(value, spec)


def markdown(result: dict) -> str:
    """The tables for docs/benchmarks.md, from gpu_check.json."""
    stages = result["stages"]
    env = stages.get("env", {})
    gpu = env.get("gpu") or {}
    v = env.get("versions", {})
    lines = [f"# gpu_check {result['started']}{' (DRY RUN on a CPU: tiny shapes, not GPU numbers)' if result['dry_run'] else ''}",
             "",
             f"- card: {gpu.get('name', 'no GPU')} ({gpu.get('memory_gib', '?')} GiB, {gpu.get('sm', '?')} SMs), "
             f"CUDA {gpu.get('torch_cuda', '-')}; measured bf16 8192^3 matmul: {env.get('matmul_bf16_tflops', 'n/a')} TFLOP/s",
             "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
             f"- elapsed: {result.get('elapsed_s', 0):.0f} s", ""]
    for name, stage in stages.items():
        if "error" in stage or "skipped" in stage:
            lines.append(f"- **{name}**: {stage.get('error') or stage.get('skipped')}")
    smokes = {n.split(":", 1)[1]: s for n, s in stages.items() if n.startswith("smoke:") and "exit" in s}
    if smokes:
        lines += ["", "## Smoke runs (`+experiment=sycophancy +debug=smoke`)", "",
                  "| hardware | ok | train loss | eval loss | eval margin | KL | model device, dtypes | 4-bit layers | peak GPU GiB | MLflow | s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for hw, s in smokes.items():
            m, model = s.get("metrics") or {}, s.get("model") or {}
            dtypes = ", ".join(f"{k} {n}" for k, n in (model.get("param_dtypes") or {}).items())
            lines.append(f"| {hw} | {'yes' if s.get('ok') else 'NO'} | {fmt(m.get('loss'))} | {fmt(m.get('eval_loss'))} | "
                         f"{fmt(m.get('eval_rewards/margins'))} | {fmt(m.get('eval_kl/sampled_full_vocab'))} | "
                         f"{model.get('device')}, {dtypes} | {model.get('linear_4bit_layers', 'n/a')} | "
                         f"{fmt((s.get('cuda') or {}).get('peak_allocated_gib'), '.2f')} | {s.get('status', 'n/a')} | "
                         f"{s.get('seconds')} |")
        lines += [""] + [f"- smoke {hw} problem: {p.splitlines()[0]}" for hw, s in smokes.items() for p in s.get("problems", [])]
    benches = {n.split(":")[0]: s for n, s in stages.items() if n.endswith(":bench") and "results" in s}
    matmul = env.get("matmul_bf16_tflops")
    if benches:
        first = next(iter(benches.values()))
        shape = first.get("shape", {})
        lines += ["", "## Throughput: dpo_exp vs plain TRL (`benchmarks/bench_trl.py --model random`)", "",
                  f"Random weights in Qwen2.5-0.5B's shape ({shape.get('params', 0) / 1e6:.0f}M parameters, "
                  f"{shape.get('layers')} layers, vocab {shape.get('vocab')}"
                  f"{', overrides ' + str(first.get('arch_overrides')) if first.get('arch_overrides') else ''}), "
                  f"LoRA r=16 on q/k/v/o, batch {first['batch_size']} pairs = {2 * first['batch_size']} sequences "
                  f"of {first['seq_len']} tokens, {first['steps'] - first['warmup_steps']} measured steps after "
                  f"{first['warmup_steps']} warm-up. Model FLOPs/token: 4N + 12·L·d·T for dpo_exp (reference "
                  f"precomputed), 6N + 16·L·d·T for tuned and tutorial (reference forward every step); MFU "
                  f"against the card's dense bf16 spec ({first.get('peak_bf16_tflops') or 'unknown'} TFLOP/s) and "
                  f"against the measured matmul rate.", "",
                  "| hardware | variant | step ms (median) | tokens/s | x tuned | peak GPU GiB | model TFLOP/s | MFU (spec) | of measured matmul | tokens/s incl. ref pass | ref pass + setup s | wall s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for part, b in benches.items():
            tuned = (b["results"].get("tuned") or {}).get("tokens_per_s")
            for variant, r in b["results"].items():
                tps = r.get("tokens_per_s")
                cuda = r.get("cuda") or {}
                lines.append(
                    f"| {b['hardware']} | {variant} | {fmt(r.get('step_s_median') and r['step_s_median'] * 1000, '.0f')} | "
                    f"{fmt(tps, ',.0f')} | {fmt(tps / tuned if tps and tuned else None, '.2f')} | "
                    f"{fmt(cuda.get('peak_allocated_gib'), '.2f')} | {fmt(r.get('model_tflops'), '.1f')} | "
                    f"{fmt(r.get('mfu'), '.1%')} | {fmt(r['model_tflops'] / matmul if matmul and r.get('model_tflops') else None, '.1%')} | "
                    f"{fmt(r.get('e2e_tokens_per_s'), ',.0f')} | {fmt(r.get('before_first_step_s'), '.1f')} | {r.get('seconds')} |")
    mfu_runs = {label: r for label, r in (stages.get("mfu") or {}).get("runs", {}).items() if "results" in r}
    ref_rows = [(f"{b['hardware']} b{b['batch_size']}", b) for b in benches.values()]
    ref_rows += [(f"{b['hardware']} {label}", b) for label, b in mfu_runs.items()]
    ref_rows = [(label, b, b["results"]["dpo_exp"]) for label, b in ref_rows
                if (b["results"].get("dpo_exp") or {}).get("ref_batches")]
    if mfu_runs:
        lines += ["", "## MFU at larger batches (dpo_exp alone, bf16, `gpu_check.py` stage mfu)", "",
                  "Model FLOPs per token 4N + 12·L·d·T: policy forward 2N, backward through the frozen weights "
                  "2N (activation gradients only: frozen weights get no weight gradient), attention 4·L·d·T forward "
                  "+ 8·L·d·T backward (PaLM's count, no causal halving), the chosen and the rejected sequence both "
                  "counted; the reference pass is precomputed, so not in the step; LoRA's own FLOPs (<1%) not "
                  "counted. N = parameters doing matmuls (tied LM head included).", "",
                  "| run | pairs/step | step ms (median) | tokens/s | model TFLOP/s | MFU (spec) | of measured matmul | peak GPU GiB | wall s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for label, b in mfu_runs.items():
            r = b["results"]["dpo_exp"]
            lines.append(f"| {label} | {b['batch_size']} | {fmt(r.get('step_s_median') and r['step_s_median'] * 1000, '.0f')} | "
                         f"{fmt(r.get('tokens_per_s'), ',.0f')} | {fmt(r.get('model_tflops'), '.1f')} | "
                         f"{fmt(r.get('mfu'), '.1%')} | {fmt(r['model_tflops'] / matmul if matmul and r.get('model_tflops') else None, '.1%')} | "
                         f"{fmt((r.get('cuda') or {}).get('peak_allocated_gib'), '.2f')} | {b.get('seconds')} |")
    for label, r in ((k, v) for k, v in (stages.get("mfu") or {}).get("runs", {}).items() if "results" not in v):
        lines.append(f"- mfu {label}: {(r.get('error') or r.get('skipped') or '').splitlines()[-1:]}")
    if ref_rows:
        lines += ["", "## dpo_exp's reference pass against its training step (per pair)", "",
                  "One forward per batch without gradients (FLOPs 2N + 4·L·d·T per token), under bf16 autocast, "
                  "batch = train.eval_batch_size, over the train split; the pass timed between CUDA syncs, its "
                  "first batch (first kernels: Triton's compile of TRL's log-prob kernel, cuBLAS/cuDNN set-up) "
                  "apart, between syncs of its own; the rest per pair.", "",
                  "| run | ref batch (pairs) | batches | whole pass s | first batch s | ref ms/pair (after the first) | step ms/pair | ref / step | ref TFLOP/s | ref MFU |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for label, b, r in ref_rows:
            lines.append(f"| {label} | {r.get('ref_batch_pairs')} | {r.get('ref_batches')} | {fmt(r.get('ref_s'), '.2f')} | "
                         f"{fmt(r.get('ref_first_batch_s'), '.2f')} | "
                         f"{fmt(r.get('ref_s_per_pair') and r['ref_s_per_pair'] * 1000, '.2f')} | "
                         f"{fmt(r.get('step_s_per_pair') and r['step_s_per_pair'] * 1000, '.2f')} | "
                         f"{fmt(r.get('ref_per_pair_vs_step'), '.2f')} | {fmt(r.get('ref_tflops'), '.1f')} | "
                         f"{fmt(r.get('ref_mfu'), '.1%')} |")
    for part, b in benches.items():
        if b.get("dpo_exp_profile_head"):
            lines += ["", f"dpo_exp, {b['hardware']}: one step under torch.profiler (top of the table)", "", "```",
                      b["dpo_exp_profile_head"], "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, 3 steps: the same code path")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="results (default: $OUT)")
    parser.add_argument("--wheels", default=None, help="folder of wheels to install first (the device lacks them)")
    parser.add_argument("--site", default=str(SITE), help="where the wheels are installed (pip --target)")
    parser.add_argument("--parts", default=",".join(PARTS), help="which of smoke,4bit,bf16,mfu to run")
    parser.add_argument("--smoke-hardware", default="gpu_4bit", help="smoke runs: gpu_4bit and/or gpu_bf16")
    parser.add_argument("--variants", default="dpo_exp,tuned", help="4bit and bf16 stages: of dpo_exp,tuned,tutorial")
    parser.add_argument("--mfu-batches", default="16,32,64", type=lambda v: [int(x) for x in v.split(",")],
                        help="mfu stage: pairs per step, in order (stops at the first that fails)")
    parser.add_argument("--mfu-extra", action="append", default=None, metavar="KEY=VALUE[,KEY=VALUE]",
                        help="mfu stage: the best batch again with these dpo_exp overrides (repeatable; default: "
                             "train.torch_compile=true; dry run: lora.dropout=0, no compiling on the CPU)")
    parser.add_argument("--mfu-steps", type=int, default=10, help="mfu stage: measured steps per batch")
    parser.add_argument("--mfu-warmup", type=int, default=3, help="mfu stage: warm-up steps per batch")
    parser.add_argument("--steps", type=int, default=30, help="measured steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up steps per variant, not measured")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--seq-len", type=int, default=512, help="tokens per sequence")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="skip the profiled extra step")
    parser.add_argument("--arch-override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep-work", action="store_true", help="keep the work folder (outputs, caches, logs)")
    parser.add_argument("--deadline-s", type=float, default=None,
                        help="skip stages that would end later than this (default 500; dry run: none)")
    args = parser.parse_args()
    if args.deadline_s is None:  # a device command may run 600 s; a CPU dry run on a busy machine takes longer
        args.deadline_s = 3600.0 if args.dry_run else 500.0
    if args.mfu_extra is None:  # the dry run checks the mechanism with a cheap override (CPU compiling takes minutes)
        args.mfu_extra = ["lora.dropout=0" if args.dry_run else "train.torch_compile=true"]
    if args.dry_run:  # tiny shapes unless the caller chose some
        args.arch_override = args.arch_override or TINY_SHAPE
        args.steps, args.warmup, args.batch_size, args.seq_len = min(args.steps, 2), min(args.warmup, 1), 2, 64
        args.mfu_batches, args.mfu_steps, args.mfu_warmup = [4], 2, 1
    return Check(args).run()


if __name__ == "__main__":
    sys.exit(main())
