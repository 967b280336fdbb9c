"""benchmarks/gpu_check.py and what it carries: the GPU proof's script runs here in its CPU dry run, so
that the one device call a GPU session gets does not fail on something a CPU could have caught."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check, gpu_wheels, bench_trl = load("gpu_check"), load("gpu_wheels"), load("bench_trl")


def test_dry_run_runs_every_stage_and_returns_the_report_the_device_call_would(tmp_path):
    """The device command's path on a CPU: smoke run, tiny-shaped throughput of dpo_exp and tuned, the
    reference pass timed against the step, the MFU stage at a larger batch and with an extra override, report."""
    out = tmp_path / "OUT"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    # What comes back from a device call: at most 8 files, plain names, no deeper than 2 folders.
    files = sorted(p.name for p in out.rglob("*"))
    assert files == ["gpu_check.json", "gpu_check.log", "gpu_check.md", "logs.tar.gz"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)

    result = json.loads((out / "gpu_check.json").read_text())
    stages = result["stages"]
    assert list(stages) == ["install", "env", "smoke:cpu", "bf16:bench", "mfu"]
    assert all(v is None or not str(v).startswith("FAILED") for v in stages["env"]["imports"].values())
    smoke = stages["smoke:cpu"]
    assert smoke["ok"] and smoke["status"] == "FINISHED" and "adapter_model.safetensors" in smoke["adapter_files"]
    assert smoke["model"]["device"] == "cpu" and smoke["model"]["linear_4bit_layers"] == 0

    bench = stages["bf16:bench"]
    assert bench["model"] == "random" and bench["architecture"] == "qwen2.5-0.5b" and bench["data"] == "claims"
    assert set(bench["results"]) == {"dpo_exp", "tuned"}
    for variant, r in bench["results"].items():
        # 2 pairs = 4 sequences of exactly 64 tokens each (synthetic pairs, truncated): no padding.
        assert r["measured_steps"] == 2 and r["tokens_per_step"] == 4 * 64 and r["padding_share"] == 0, variant
        assert r["tokens_per_s"] > 0 and r["model_tflops"] > 0 and r["mfu"] is None  # no spec peak for a CPU
        assert not r["model"]["gradient_checkpointing"], variant
    # dpo_exp precomputes the reference (4N per token), the plain scripts run it every step (6N).
    n = bench["shape"]["flops_params"]
    assert bench["results"]["dpo_exp"]["flops_per_token"] < 5 * n < bench["results"]["tuned"]["flops_per_token"]
    # The reference pass: 2 pairs per step x (1 warm-up + 2 measured steps) = 6 pairs, one batch (eval_batch_size 8).
    ref = bench["results"]["dpo_exp"]
    assert ref["ref_pairs"] == 6 and ref["ref_batches"] == 1 and ref["ref_batch_pairs"] == 6
    assert ref["ref_s"] >= ref["ref_first_batch_s"] > 0 and "ref_s_per_pair" not in ref  # one batch: none after it
    assert "ref_batches" not in bench["results"]["tuned"]  # its reference runs inside every step

    runs = stages["mfu"]["runs"]
    assert list(runs) == ["b4", "b4,lora.dropout=0"]
    for label, run in runs.items():
        r = run["results"]["dpo_exp"]
        assert list(run["results"]) == ["dpo_exp"] and run["batch_size"] == 4, label
        assert r["tokens_per_step"] == 8 * 64 and r["measured_steps"] == 2, label
        # The reference pass at the run's batch: 4 pairs per batch, 3 steps x 4 pairs.
        assert r["ref_batch_pairs"] == 4 and r["ref_batches"] == 3 and r["ref_s_per_pair"] > 0, label
        assert r["ref_per_pair_vs_step"] > 0 and r["ref_tflops"] > 0, label
    assert runs["b4,lora.dropout=0"]["dpo_exp_args"] == ["train.eval_batch_size=4", "lora.dropout=0"]

    md = (out / "gpu_check.md").read_text()
    assert "DRY RUN" in md and "| cpu | yes |" in md and "| cpu | dpo_exp |" in md and "torch.profiler" in md
    assert "## MFU at larger batches" in md and "| b4,lora.dropout=0 | 4 |" in md
    assert "## dpo_exp's reference pass against its training step" in md and "| cpu b4 | 4 | 3 |" in md


def test_step_summary_leaves_out_warm_up_and_the_profiled_step():
    record = {"t_trainer_init": 0.0, "t_train_begin": 10.0, "t_train_end": 20.5,
              "step_end": [12.0, 13.0, 14.0, 15.0, 20.0], "tokens": [100, 100, 100, 100, 100],
              "padded_tokens": [100, 100, 100, 200, 100], "sequences": [4, 4, 4, 4, 4], "profiled_step": 5}
    s = bench_trl.summarize(record, warmup=1)
    assert s["measured_steps"] == 3 and s["step_s_median"] == 1.0 and s["tokens_per_s"] == 100.0
    assert s["padding_share"] == pytest.approx(1 - 300 / 400) and s["tokens_per_sequence"] == 25
    assert s["before_first_step_s"] == 10.0
    assert s["e2e_s"] == pytest.approx(20.5 - 5.0) and s["e2e_tokens_per_s"] == pytest.approx(400 / 15.5)


def test_reference_pass_is_compared_per_pair_with_the_first_batch_apart():
    entry = {"name": "train", "pairs": 28, "batches": 4, "seconds": 2.11, "first_batch_s": 2.0, "first_batch_pairs": 8}
    r = bench_trl.ref_pass(entry, step_s=0.12, step_tokens=8192, step_sequences=16)
    assert r["ref_batches"] == 4 and r["ref_pairs"] == 28 and r["ref_first_batch_s"] == 2.0 and r["ref_batch_pairs"] == 8
    assert r["ref_s_per_pair"] == pytest.approx(0.11 / 20) and r["step_s_per_pair"] == pytest.approx(0.015)
    assert r["ref_per_pair_vs_step"] == pytest.approx(0.11 / 20 / 0.015)
    assert r["ref_tokens_per_s"] == pytest.approx(1024 * 20 / 0.11)
    assert bench_trl.ref_pass(None, 0.1, 1, 2) == {}


def test_flops_per_token_count_is_4n_or_6n_plus_attention():
    shape = {"flops_params": 494_032_768, "layers": 24, "attn_width": 896}
    attention = 24 * 896 * 512
    assert bench_trl.flops_per_token(shape, 512, online_reference=False) == 4 * 494_032_768 + 12 * attention
    assert bench_trl.flops_per_token(shape, 512, online_reference=True) == 6 * 494_032_768 + 16 * attention
    assert bench_trl.forward_flops_per_token(shape, 512) == 2 * 494_032_768 + 4 * attention
    assert bench_trl.peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.4
    assert bench_trl.peak_tflops("NVIDIA H100 PCIe", None) == 756.0
    assert bench_trl.peak_tflops("NVIDIA H200", None) == 989.4 and bench_trl.peak_tflops(None, None) is None


def fake_bitsandbytes_wheel(path: Path) -> Path:
    libs = ["cuda118", "cuda128", "cuda130", "cuda132", "cpu", "rocm72", "xpu2026"]
    files = {"bitsandbytes/__init__.py": b"__version__ = '0.50.2'\n",
             **{f"bitsandbytes/libbitsandbytes_{lib}.so": lib.encode() * 1000 for lib in libs},
             "bitsandbytes-0.50.2.dist-info/METADATA": b"Metadata-Version: 2.1\nName: bitsandbytes\nVersion: 0.50.2\n",
             "bitsandbytes-0.50.2.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
                                                    b"Tag: py3-none-manylinux_2_24_x86_64\n"}
    record = "".join(f"{name},sha256=x,{len(data)}\n" for name, data in files.items())
    files["bitsandbytes-0.50.2.dist-info/RECORD"] = (record + "bitsandbytes-0.50.2.dist-info/RECORD,,\n").encode()
    wheel = path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel


def test_slimmed_bitsandbytes_keeps_one_cuda_major_with_a_true_record_and_installs(tmp_path):
    wheel, dropped = gpu_wheels.slim_bitsandbytes(fake_bitsandbytes_wheel(tmp_path), cuda_major=13)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        libs = sorted(n.rsplit("_", 1)[1] for n in names if "libbitsandbytes_" in n)
        assert libs == ["cpu.so", "cuda130.so", "cuda132.so"]
        assert len(dropped) == 4
        rows = list(csv.reader(io.StringIO(z.read("bitsandbytes-0.50.2.dist-info/RECORD").decode())))
        assert {r[0] for r in rows} == names
        for name, digest, size in rows:
            if digest:
                data = z.read(name)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={expected}" and int(size) == len(data)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=120)
    assert (site / "bitsandbytes" / "libbitsandbytes_cuda130.so").is_file()
    with pytest.raises(SystemExit, match="no CUDA 12"):
        gpu_wheels.slim_bitsandbytes(wheel, cuda_major=12)


def test_carried_wheels_pin_what_pyproject_pins():
    pins = dict(re.findall(r'"([A-Za-z0-9_.-]+)==([^"]+)"', (REPO / "pyproject.toml").read_text()))
    carried = dict(req.split("==") for req, _ in gpu_wheels.WHEELS)
    for name in ("trl", "transformers", "peft", "datasets", "hydra-core", "bitsandbytes"):
        assert carried[name] == pins[name], name
    assert carried["mlflow-skinny"].startswith("3.")  # pyproject: mlflow>=3.17,<4
    assert carried["omegaconf"].startswith("2.3.")  # pyproject: omegaconf>=2.3,<2.4
    assert len(carried) == len(gpu_wheels.WHEELS)  # one version of each: two would stop the install


def test_carried_wheel_list_resolves_for_the_devices_python_3_12(tmp_path):
    """Every binary wheel exists for CPython 3.12 on manylinux x86_64 (metadata only, no download)."""
    reqs = [req for req, _ in gpu_wheels.WHEELS if req.split("==")[0] not in gpu_wheels.SOURCE_ONLY]
    platforms = [a for p in gpu_wheels.PLATFORMS for a in ("--platform", p)]
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                           "--target", str(tmp_path / "t"), "--python-version", "3.12", "--implementation", "cp",
                           *platforms, "--only-binary=:all:", "--report", str(tmp_path / "report.json"), "-q", *reqs],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and re.search(r"NewConnectionError|Network is unreachable|Temporary failure in name|"
                                          r"Could not fetch URL|ProxyError", proc.stderr):
        pytest.skip("no package index reachable: " + proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["install"]) == len(reqs)
    for item in report["install"]:
        wheel = item["download_info"]["url"].rsplit("/", 1)[1]
        assert re.search(r"-(py3|py312|cp312|cp311-abi3)-", wheel), wheel
