"""Prepare the folder of wheels that `benchmarks/gpu_check.py` installs on the device machine.

    python benchmarks/gpu_wheels.py                 # -> .whl/ (gitignored), about 37 MB; `make gpu-wheels`
    python benchmarks/gpu_wheels.py --dest DIR --python-version 3.11    # e.g. to rehearse on this machine

The device machine (README of the `device` tool, KINDS.md) runs Python 3.12 with torch 2.11 (CUDA 13.0),
transformers 5.17, peft, accelerate 1.15, pandas, pyarrow, numpy, pyyaml, requests, protobuf and more,
but not TRL, datasets, Hydra, MLflow or bitsandbytes, and it cannot download anything. A call carries
at most 64 MiB (working tree included), so this list is what dpo_exp imports there and nothing more,
found by running `+debug=smoke` and benchmarks/bench_trl.py over `pip install --no-deps` of these
wheels in an environment holding only the device's package list:

- dpo_exp's pins: TRL, transformers 5.23 (the device's 5.17 would also change what is measured),
  peft, datasets (+ dill, multiprocess), Hydra (+ omegaconf, antlr4, a source-only release built
  into a wheel here);
- MLflow: `mlflow-skinny` (4 MB; the full `mlflow` wheel adds the UI and server: 12 MB and Flask,
  gunicorn, ...) plus what its sqlite store and tracing imports need (sqlalchemy, alembic, mako,
  cryptography + cffi, opentelemetry, pydantic, fastapi/starlette, databricks-sdk, ...), so runs
  are tracked in the same `sqlite:///mlflow.db` store as everywhere else;
- bitsandbytes 0.50.2, whose wheel (43 MB) ships native libraries for CUDA 11.8-13.2, ROCm and XPU:
  the copy written here keeps those of one CUDA major version (`--bnb-cuda-major`, 13 for the
  device's torch 2.11+cu130) and the CPU one, about 3 MB; bitsandbytes picks the closest library
  of the runtime's major version, as with the full wheel.
Prints each wheel's size and the total against the 64 MiB a call may carry.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARRY_LIMIT = 64 * 2**20

# name==version, why. Versions: dpo_exp's pins (pyproject.toml), and for MLflow's needs the versions
# the project's own environment resolves with mlflow 3.17.2.
WHEELS = [
    ("trl==1.16.0", "the trainer"),
    ("transformers==5.23.0", "dpo_exp's pin (the device has 5.17)"),
    ("peft==0.21.2", "dpo_exp's pin"),
    ("datasets==5.2.0", "TRL's data"),
    ("dill==0.4.1", "datasets"),
    ("multiprocess==0.70.19", "datasets"),
    ("hydra-core==1.3.8", "dpo_exp's configs"),
    ("omegaconf==2.3.1", "Hydra"),
    ("antlr4-python3-runtime==4.9.3", "omegaconf (source-only on PyPI: built into a wheel here)"),
    ("bitsandbytes==0.50.2", "hardware=gpu_4bit (slimmed to one CUDA major version)"),
    ("mlflow-skinny==3.17.2", "tracking, without the UI and server"),
    ("sqlalchemy==2.1.9", "MLflow's sqlite store"),
    ("alembic==1.20.1", "MLflow's sqlite store (schema migrations)"),
    ("mako==1.4.3", "alembic"),
    ("cryptography==50.0.2", "MLflow's sqlite store imports it"),
    ("cffi==2.1.1", "cryptography"),
    ("opentelemetry-api==1.45.2", "MLflow tracing, imported by `import mlflow`"),
    ("opentelemetry-sdk==1.45.2", "MLflow tracing"),
    ("opentelemetry-proto==1.45.2", "MLflow tracing"),
    ("opentelemetry-semantic-conventions==0.66b2", "opentelemetry-sdk"),
    ("pydantic==2.14.4", "MLflow"),
    ("pydantic-core==2.50.5", "pydantic"),
    ("annotated-types==0.8.0", "pydantic"),
    ("typing-inspection==0.4.5", "pydantic"),
    ("fastapi==0.165.0", "MLflow (imported by its tracking client)"),
    ("starlette==1.10.0", "fastapi"),
    ("databricks-sdk==0.162.0", "MLflow"),
    ("cachetools==7.3.3", "MLflow"),
    ("sqlparse==0.6.1", "MLflow"),
    ("importlib-metadata==9.1.0", "MLflow"),
    ("datasketch==2.0.0", "the pre-train data audit (near-duplicate pairs); numpy and scipy are there"),
]
SOURCE_ONLY = {"antlr4-python3-runtime"}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "any"]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def slim_bitsandbytes(wheel: Path, cuda_major: int) -> tuple[Path, list[str]]:
    """Rewrite a bitsandbytes wheel without the native libraries of other CUDA majors, ROCm and XPU.

    Returns the new wheel's path (same name, in place) and the dropped members. RECORD is rewritten
    to list exactly what the new wheel holds.
    """
    keep_lib = re.compile(rf"libbitsandbytes_(cuda{cuda_major}\d|cpu)\.(so|dylib|dll)$")
    dropped: list[str] = []
    with zipfile.ZipFile(wheel) as src:
        members = {}
        for info in src.infolist():
            name = info.filename
            if re.search(r"libbitsandbytes_\w+\.(so|dylib|dll)$", name) and not keep_lib.search(name):
                dropped.append(name)
                continue
            members[name] = (info, src.read(name))
    kept_cuda = [n for n in members if re.search(rf"libbitsandbytes_cuda{cuda_major}\d", n)]
    if not kept_cuda:
        raise SystemExit(f"{wheel.name} has no CUDA {cuda_major}.x library: nothing would load on the device")
    record_name = next(n for n in members if n.endswith(".dist-info/RECORD"))
    rows = []
    for name, (_, data) in members.items():
        if name != record_name:
            rows.append([name, _record_hash(data), str(len(data))])
    rows.append([record_name, "", ""])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    members[record_name] = (members[record_name][0], buf.getvalue().encode())
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name, (info, data) in members.items():
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    tmp.replace(wheel)
    return wheel, dropped


def tree_size(repo: Path = REPO) -> int:
    """Bytes of what travels besides the wheels: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout
    return sum((repo / p).stat().st_size for p in out.decode().split("\0") if p and (repo / p).is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=REPO / ".whl")
    parser.add_argument("--python-version", default="3.12", help="the device's Python")
    parser.add_argument("--bnb-cuda-major", type=int, default=13, help="CUDA major version of the device's torch")
    parser.add_argument("--no-bnb", action="store_true", help="leave bitsandbytes out (no 4-bit runs)")
    args = parser.parse_args()

    args.dest.mkdir(parents=True, exist_ok=True)
    wanted = [req for req, _ in WHEELS if not (args.no_bnb and req.startswith("bitsandbytes"))]
    for old in args.dest.glob("*.whl"):  # one version of each: two would stop the install
        old.unlink()
    binary = [req for req in wanted if req.split("==")[0] not in SOURCE_ONLY]
    pip = [sys.executable, "-m", "pip"]
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
                    args.python_version, "--implementation", "cp", *platform_args, "-d", str(args.dest), *binary],
                   check=True)
    for req in wanted:
        if req.split("==")[0] in SOURCE_ONLY:  # pure Python, so the wheel built here fits any Python 3
            subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(args.dest), req], check=True)
    if not args.no_bnb:
        bnb = next(args.dest.glob("bitsandbytes-*.whl"))
        before = bnb.stat().st_size
        _, dropped = slim_bitsandbytes(bnb, args.bnb_cuda_major)
        print(f"bitsandbytes: {before / 2**20:.1f} MB -> {bnb.stat().st_size / 2**20:.1f} MB "
              f"(dropped {len(dropped)} native libraries of other CUDA majors, ROCm, XPU)")
    wheels = sorted(args.dest.glob("*.whl"), key=lambda p: -p.stat().st_size)
    if len(wheels) != len(wanted):
        raise SystemExit(f"expected {len(wanted)} wheels in {args.dest}, found {len(wheels)}")
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:7.2f} MB  {w.name}")
    total = sum(w.stat().st_size for w in wheels)
    tree = tree_size()
    print(f"wheels {total / 2**20:.1f} MB + working tree {tree / 2**20:.1f} MB = {(total + tree) / 2**20:.1f} MB "
          f"of the {CARRY_LIMIT / 2**20:.0f} MiB a device call may carry")
    if total + tree > CARRY_LIMIT:
        raise SystemExit("too large for one device call: drop something (e.g. --no-bnb for a bf16-only call)")


if __name__ == "__main__":
    main()
