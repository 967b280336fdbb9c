"""Benchmark: dpo_exp against two plain TRL scripts, same machine, model, data, batch size, steps.

    python benchmarks/bench_trl.py [--steps 30] [--pairs 60] [--batch-size 4]

Variants, each in its own process (wall time from process start to exit; peak RSS of that process):
  dpo_exp   `python -m dpo_exp` with its defaults (precomputed reference log-probs, length-grouped
            batches, fp32, no gradient checkpointing), evaluation and held-out generation off so
            that all three do the same work (they still log to MLflow and save the adapter).
  tutorial  DPOTrainer with TRL's default DPOConfig except what the machine forces (bf16=False on a
            CPU): gradient checkpointing on, reference computed online at every step.
  tuned     a hand-tuned plain script with dpo_exp's precision and checkpointing (fp32, no
            checkpointing), but TRL's default online reference and random batches.
All use the bundled SmolLM2-135M-Instruct (cached safetensors folder), the same LoRA (r=16 on the
attention projections), the same first `--pairs` rows of the shipped sycophancy data, and
`--steps` optimizer steps of `--batch-size` pairs. Results are printed and appended to
benchmarks/results.jsonl; docs/benchmarks.md records them.
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

REPO = Path(__file__).resolve().parents[1]

PLAIN = r'''
import json, sys, torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

model_dir, data_file, out_dir, variant, steps, batch = sys.argv[1:7]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
ds = load_dataset("json", data_files=data_file, split="train").select_columns(["prompt", "chosen", "rejected"])
peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                  task_type="CAUSAL_LM")
common = dict(output_dir=out_dir, max_steps=int(steps), per_device_train_batch_size=int(batch), report_to="none",
              save_strategy="no", bf16=False, use_cpu=True, seed=42)
if variant == "tutorial":   # TRL's defaults, except bf16 (errors without a GPU)
    args = DPOConfig(**common)
else:                       # tuned: dpo_exp's precision/checkpointing and learning rate
    args = DPOConfig(**common, activation_checkpointing=False, learning_rate=5e-5, logging_steps=5)
trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=peft)
trainer.train()
'''


def run(cmd: list[str], cwd: Path, env: dict, log: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of one child process, from its own rusage."""
    start = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed; its output is in {log}:\n{log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--variants", default="dpo_exp,tuned,tutorial")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from dpo_exp.models import bundled_folder

    model_dir = bundled_folder("~/.cache/dpo_exp")  # converted once, outside the timings
    work = Path(tempfile.mkdtemp(prefix="dpo_bench_"))
    data_file = work / "pairs.jsonl"
    rows = (REPO / "dpo_exp/datasets/sycophancy_train.jsonl").read_text().splitlines()[: args.pairs]
    data_file.write_text("\n".join(rows) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(TQDM_DISABLE="1", PYTHONPATH=str(REPO))

    results = {}
    for variant in args.variants.split(","):
        out_dir = work / variant
        if variant == "dpo_exp":
            cmd = [sys.executable, "-m", "dpo_exp", "data=file", f"data.path={data_file}", "data.eval_fraction=0",
                   f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}", "eval.at_start=false",
                   f"paths.outputs={out_dir}", "hardware=cpu", f"train.eval_steps={args.steps}"]
        else:
            script = work / "plain.py"
            script.write_text(PLAIN)
            cmd = [sys.executable, str(script), str(model_dir), str(data_file), str(out_dir), variant,
                   str(args.steps), str(args.batch_size)]
        wall, peak = run(cmd, work, env, work / f"{variant}.log")
        results[variant] = {"seconds": round(wall, 1), "peak_rss_gib": round(peak, 2)}
        print(f"{variant:9s} {wall:7.1f} s   peak RSS {peak:.2f} GiB", flush=True)

    record = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "steps": args.steps, "pairs": args.pairs, "batch_size": args.batch_size, "results": results,
    }
    if "dpo_exp" in results:
        for other in ("tuned", "tutorial"):
            if other in results:
                record[f"dpo_exp/{other}"] = round(results["dpo_exp"]["seconds"] / results[other]["seconds"], 3)
                print(f"dpo_exp / {other}: {record[f'dpo_exp/{other}']:.2f}x")
    with open(REPO / "benchmarks" / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
