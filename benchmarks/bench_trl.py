"""Benchmark: dpo_exp against two plain TRL scripts, same machine, model, data, batch size, steps.

    python benchmarks/bench_trl.py [--steps 30] [--pairs 60] [--batch-size 4] [--data claims]  # make bench (CPU)
    python benchmarks/bench_trl.py --model random --hardware gpu_bf16 --seq-len 512 --batch-size 8 \\
        --steps 35 --warmup-steps 5 --pairs 280 --profile                                        # GPU throughput

Variants, each in its own process (wall time from process start to exit; peak RSS of that process):
  dpo_exp   `python -m dpo_exp` with its defaults (precomputed reference log-probs, length-grouped
            batches, the shared-prefix forward, no gradient checkpointing except in 4-bit), evaluation
            and held-out generation off so that all do the same work (they still log to MLflow and save
            the adapter). Its reference cache is off (`train.cache_ref_log_probs=false`): the reference
            pass is always computed and timed.
  dpo_exp_standard  the same with `train.forward=standard` (TRL's own forward: dpo_exp before issue 18).
  tutorial  DPOTrainer with TRL's default DPOConfig except what the machine forces (bf16=False on a
            CPU): gradient checkpointing on, reference computed online at every step.
  tuned     a hand-tuned plain script with dpo_exp's precision and checkpointing (off, on in 4-bit) and
            learning rate, but TRL's default online reference and random batches.
Same LoRA everywhere (r=16 on the attention projections), same data, same `max_length`.

Models: `--model bundled` (SmolLM2-135M-Instruct, the cached safetensors folder) or `--model random`
(random weights in `--architecture`'s shape, default Qwen2.5-0.5B: dpo_exp's `model=random`, built
once into `--cache`; every variant loads that same folder). Data: `--data claims` (the fact-claims
pairs, dpo_exp's `data=sycophancy_facts`) or `--data pushback` (the flagship's pairs, `data=sycophancy`),
read by dpo_exp's own loader (the preset's file, `data.where` filter and seeded shuffle) and written
to one file that every variant trains on: its first `--pairs` pairs, or with `--seq-len N` synthetic
pairs made of the preset's sentences, long enough that every sequence is truncated to exactly N tokens
(prompt ~0.4 N): no padding, known token counts. `--dpo-exp-arg KEY=VALUE` adds a Hydra override to
the dpo_exp variant only (e.g. train.eval_batch_size=32: the reference pass's batch).
`--hardware gpu_bf16|gpu_4bit` runs all three on the GPU (bf16; NF4 base weights with bf16 compute).

Every variant runs under benchmarks/steptimer.py, which times each optimizer step (after a CUDA
sync) and counts its tokens, and each batch of dpo_exp's reference pass (`ref_*` in the results: per
pair, against a training step per pair). Steady state = the steps after `--warmup-steps`, minus the one step
run under torch.profiler with `--profile` (one extra step per variant, table in --out-dir).
Model FLOPs per token (MFU): policy forward + backward through frozen weights (input gradients
only, LoRA) = 4N, plus 2N for a reference forward when it runs at every step (tuned, tutorial),
plus attention 12·L·d·T (16·L·d·T with the reference), PaLM's count (no causal halving); LoRA's
own FLOPs (<1%) and gradient-checkpointing recomputation are not counted. N = parameters doing
matmuls (the tied LM head included, an untied input embedding not). Peak: the card's dense bf16
spec (H100 SXM / H200: 989.4 TFLOP/s) or `--peak-tflops`.
Results are printed, written as JSON to `--summary` and appended to `--results`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPTIMER = REPO / "benchmarks" / "steptimer.py"
VARIANTS = ("dpo_exp", "dpo_exp_standard", "tuned", "tutorial")
DEFAULT_VARIANTS = ("dpo_exp", "tuned", "tutorial")
# --data NAME -> dpo_exp's data config group: its file, filter and shuffle (the files may move).
DATA_PRESETS = {"claims": "sycophancy_facts", "pushback": "sycophancy"}

# Dense bf16 tensor-core peak by device name, TFLOP/s (vendor spec sheets, no sparsity).
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0,
                    "L40S": 362.1, "L4": 121.0}

PLAIN = r'''
import json, sys, torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

s = json.loads(sys.argv[1])
gpu = s["hardware"] != "cpu"
tok = AutoTokenizer.from_pretrained(s["model_dir"])
load = dict(dtype=torch.bfloat16 if gpu else torch.float32)
if s["hardware"] == "gpu_4bit":  # QLoRA as TRL documents it: NF4 base weights, bf16 compute
    from transformers import BitsAndBytesConfig
    load.update(device_map={"": 0}, quantization_config=BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16))
model = AutoModelForCausalLM.from_pretrained(s["model_dir"], **load)
if s["hardware"] == "gpu_bf16":
    model = model.to("cuda")
ds = load_dataset("json", data_files=s["data_file"], split="train").select_columns(["prompt", "chosen", "rejected"])
peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                  task_type="CAUSAL_LM")
common = dict(output_dir=s["out_dir"], max_steps=s["steps"], per_device_train_batch_size=s["batch_size"],
              report_to="none", save_strategy="no", max_length=s["max_length"], bf16=gpu, use_cpu=not gpu, seed=42)
if s["variant"] == "tutorial":  # TRL's defaults, except bf16 on a CPU (it errors without a GPU)
    args = DPOConfig(**common)
else:  # tuned: dpo_exp's precision, checkpointing (on only in 4-bit) and learning rate
    args = DPOConfig(**common, activation_checkpointing=s["hardware"] == "gpu_4bit", learning_rate=5e-5,
                     logging_steps=5)
trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=peft)
trainer.train()
'''


def busy_cpu_seconds() -> float | None:
    """CPU seconds the CPUs this process may run on (`taskset`) have spent busy since boot (/proc/stat),
    None off Linux."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    cores = os.sched_getaffinity(0)
    mine = [line for line in lines if re.match(r"cpu(\d+) ", line) and int(line.split()[0][3:]) in cores]
    total = 0.0
    for line in mine:
        fields = [int(x) for x in line.split()[1:]]
        total += sum(fields[:8]) - fields[3] - fields[4]  # less idle and iowait
    return total / os.sysconf("SC_CLK_TCK")


def run(cmd: list[str], cwd: Path, env: dict, log: Path) -> tuple[float, float, float | None]:
    """Wall seconds and peak RSS (GiB) of one child process, from its own rusage, and the CPU seconds every
    other process used meanwhile on the CPUs the child may use (a timing is only a measurement when that is ~0;
    under `taskset -c 0` the other cores' work does not count)."""
    start, busy = time.time(), busy_cpu_seconds()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - start
    others = None if busy is None else max(0.0, busy_cpu_seconds() - busy - usage.ru_utime - usage.ru_stime)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:6]} failed; its output is in {log}:\n{log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 2**20, others  # ru_maxrss is in KiB on Linux


def parse_overrides(items: list[str]) -> dict:
    """KEY=VALUE pairs, values read as JSON where they parse (numbers, true/false), else strings."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def hydra_mapping(values: dict) -> str:
    return "{" + ",".join(f"{k}:{json.dumps(v)}" for k, v in values.items()) + "}"


def hydra_quote(value) -> str:
    """A value as Hydra's override grammar reads it back unchanged: paths (`~`, spaces, `=`, ...) quoted."""
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./:+-]+", text) and not text.startswith(("+", "-")):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def preset_rows(preset: str, seed: int = 42) -> list[dict]:
    """The train rows of `--data PRESET` as `python -m dpo_exp data=<group> data.eval_fraction=0` reads them."""
    import dataclasses

    from hydra import compose, initialize_config_module

    from dpo_exp import config
    from dpo_exp.data import load_splits

    config.register()
    with initialize_config_module("dpo_exp.conf", version_base="1.3"):
        cfg = config.to_object(compose("config", overrides=[f"data={DATA_PRESETS[preset]}"]))
    return load_splits(dataclasses.replace(cfg.data, eval_fraction=0.0), seed).train


def long_pairs(rows: list[dict], n: int, seq_len: int, tokenizer, seed: int = 0) -> list[dict]:
    """Pairs of the rows' sentences, joined until prompt >= 0.4*seq_len and each reply >= seq_len tokens:
    every prompt+reply is longer than seq_len, so TRL truncates each sequence to exactly seq_len."""
    pieces = {part: [(r[part][-1]["content"], len(tokenizer(r[part][-1]["content"])["input_ids"])) for r in rows]
              for part in ("prompt", "chosen", "rejected")}
    rng = random.Random(seed)

    def text(part: str, min_tokens: int) -> str:
        chosen, total = [], 0
        while total < min_tokens:
            piece, count = rng.choice(pieces[part])
            chosen.append(piece)
            total += count
        return " ".join(chosen)

    return [{"prompt": [{"role": "user", "content": text("prompt", int(0.4 * seq_len))}],
             "chosen": [{"role": "assistant", "content": text("chosen", seq_len)}],
             "rejected": [{"role": "assistant", "content": text("rejected", seq_len)}]} for _ in range(n)]


def model_shape(model_dir: Path) -> dict:
    """Parameter counts and attention shape for the FLOPs count, from the folder's config (meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        net = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in net.parameters())
    embed = net.get_input_embeddings().weight.numel()
    tied = bool(getattr(config, "tie_word_embeddings", False))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return {"params": total, "flops_params": total if tied else total - embed, "tied_embeddings": tied,
            "layers": config.num_hidden_layers, "attn_width": config.num_attention_heads * head_dim,
            "vocab": config.vocab_size, "model_type": config.model_type}


def flops_per_token(shape: dict, seq_len: float, online_reference: bool) -> float:
    n, la = shape["flops_params"], shape["layers"] * shape["attn_width"] * seq_len
    return (6 * n + 16 * la) if online_reference else (4 * n + 12 * la)


def forward_flops_per_token(shape: dict, seq_len: float) -> float:
    """One forward, no gradients (the reference pass): 2N + 4·L·d·T."""
    return 2 * shape["flops_params"] + 4 * shape["layers"] * shape["attn_width"] * seq_len


def peak_tflops(device: str | None, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS.items():  # most specific names first
        if device and key in device:
            return value
    return None


def summarize(rec: dict, warmup: int) -> dict:
    """Steady-state and end-to-end numbers from one steptimer record."""
    ends, prof = rec.get("step_end", []), rec.get("profiled_step")
    begin = rec.get("t_train_begin")
    if not ends or begin is None:
        return {}
    durations = [ends[i] - (ends[i - 1] if i else begin) for i in range(len(ends))]
    steady = [i for i in range(len(ends)) if i + 1 > warmup and i + 1 != prof]
    if not steady:
        return {}
    step_s = [durations[i] for i in steady]
    tokens = sum(rec["tokens"][i] for i in steady)
    padded = sum(rec["padded_tokens"][i] for i in steady)
    seqs = sum(rec["sequences"][i] for i in steady)
    out = {"measured_steps": len(steady), "step_s_median": statistics.median(step_s),
           "step_s_mean": sum(step_s) / len(step_s), "tokens_per_s": tokens / sum(step_s),
           "tokens_per_step": tokens / len(steady), "padding_share": 1 - tokens / padded if padded else 0.0,
           "tokens_per_sequence": tokens / seqs if seqs else 0.0}
    # End to end: from the end of Trainer.__init__ (before TRL's reference pass) to the end of training,
    # every step's tokens, the profiled step left out.
    if rec.get("t_trainer_init") is not None and rec.get("t_train_end") is not None:
        keep = [i for i in range(len(ends)) if i + 1 != prof]
        span = rec["t_train_end"] - rec["t_trainer_init"] - sum(durations[i] for i in range(len(ends)) if i + 1 == prof)
        out["e2e_s"] = span
        out["e2e_tokens_per_s"] = sum(rec["tokens"][i] for i in keep) / span if span > 0 else None
        out["before_first_step_s"] = begin - rec["t_trainer_init"]  # reference pass (dpo_exp) + trainer setup
    train_pass = next((p for p in rec.get("ref_passes") or [] if p["name"] == "train" and p.get("batches")), None)
    out.update(ref_pass(train_pass, out["step_s_median"], out["tokens_per_step"], seqs / len(steady)))
    return out


def ref_pass(entry: dict | None, step_s: float, step_tokens: float, step_sequences: float) -> dict:
    """The reference pass over the train split (one forward per batch, no gradients) per pair, against a
    training step per pair. The first batch (first kernels: Triton's compile of TRL's log-prob kernel,
    cuBLAS and cuDNN set-up) apart: the rest is the pass's steady rate."""
    if not entry:
        return {}
    step_pairs = step_sequences / 2
    out = {"ref_batches": entry["batches"], "ref_pairs": entry["pairs"], "ref_s": entry["seconds"],
           "ref_first_batch_s": entry["first_batch_s"], "ref_batch_pairs": entry["first_batch_pairs"],
           "step_s_per_pair": step_s / step_pairs if step_pairs else None}
    rest_pairs = entry["pairs"] - entry["first_batch_pairs"]
    if rest_pairs > 0:
        out["ref_s_per_pair"] = (entry["seconds"] - entry["first_batch_s"]) / rest_pairs
        out["ref_tokens_per_s"] = step_tokens / step_pairs / out["ref_s_per_pair"] if step_pairs else None
        if out["step_s_per_pair"]:
            out["ref_per_pair_vs_step"] = out["ref_s_per_pair"] / out["step_s_per_pair"]
    return out


def dpo_exp_args(args: argparse.Namespace, *, data_file: Path, steps: int, max_length: int, out_dir: Path,
                 overrides: dict) -> list[str]:
    """The Hydra overrides of the dpo_exp variant (`python -m dpo_exp ...`), values quoted for Hydra's grammar."""
    values = {"data": "file", "data.path": data_file, "data.eval_fraction": 0, "train.max_steps": steps,
              "train.batch_size": args.batch_size, "eval.at_start": "false", "paths.outputs": out_dir,
              "hardware": args.hardware, "train.eval_steps": steps, "train.max_length": max_length,
              "train.cache_ref_log_probs": "false", "paths.cache": Path(args.cache).expanduser()}
    cmd = [f"{key}={hydra_quote(value)}" for key, value in values.items()]
    if args.model == "random":
        cmd += ["model=random", f"model.architecture={hydra_quote(args.architecture)}"]
        if overrides:
            cmd.append(f"model.architecture_overrides={hydra_mapping(overrides)}")
    return cmd + list(args.dpo_exp_arg)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps, warm-up included")
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"comma-separated, among {','.join(VARIANTS)}")
    parser.add_argument("--model", choices=["bundled", "random"], default="bundled")
    parser.add_argument("--architecture", default="qwen2.5-0.5b", help="--model random: dpo_exp/architectures/<name>")
    parser.add_argument("--arch-override", action="append", default=[], metavar="KEY=VALUE",
                        help="--model random: replace a config key (repeatable), e.g. num_hidden_layers=2")
    parser.add_argument("--hardware", choices=["cpu", "gpu_bf16", "gpu_4bit"], default="cpu")
    parser.add_argument("--seq-len", type=int, default=0, help="0: shipped pairs as they are; N: N-token sequences")
    parser.add_argument("--max-length", type=int, default=512, help="max prompt+reply tokens (--seq-len sets it)")
    parser.add_argument("--warmup-steps", type=int, default=0, help="steps left out of the steady-state numbers")
    parser.add_argument("--profile", action="store_true", help="one extra step per variant under torch.profiler")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s for MFU (default: spec)")
    parser.add_argument("--data", choices=sorted(DATA_PRESETS), default="claims",
                        help="claims: data=sycophancy_facts; pushback: data=sycophancy (the flagship's pairs)")
    parser.add_argument("--dpo-exp-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override for the dpo_exp variant only (repeatable)")
    parser.add_argument("--cache", default="~/.cache/dpo_exp", help="dpo_exp's paths.cache (converted/random models)")
    parser.add_argument("--out-dir", type=Path, default=None, help="logs and per-variant step records (default: temp)")
    parser.add_argument("--summary", type=Path, default=None, help="write the summary here as JSON")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results.jsonl")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose among {', '.join(VARIANTS)}")
    args.cache = str(Path(args.cache).expanduser().resolve())  # Hydra's grammar has no `~`; a child's cwd differs
    return args


def random_corpus() -> str:
    """The file `model=random` trains its tokenizer on (conf/model/random.yaml), so the folder built here is the
    one dpo_exp's own run finds in the cache."""
    from omegaconf import OmegaConf

    from dpo_exp.config import register

    register()  # ${pkg_file:...}
    return OmegaConf.load(REPO / "conf" / "model" / "random.yaml").tokenizer_corpus


def main() -> None:
    args = parse_args()

    sys.path.insert(0, str(REPO))
    from dpo_exp.config import ModelConfig, ModelSource
    from dpo_exp.models import bundled_folder, random_folder

    overrides = parse_overrides(args.arch_override)
    if args.model == "random":  # built once, outside the timings; every variant loads this folder
        model_cfg = ModelConfig(name="random", source=ModelSource.random, architecture=args.architecture,
                                architecture_overrides=overrides or None, tokenizer_corpus=random_corpus())
        model_dir = random_folder(model_cfg, args.cache)
    else:
        model_dir = bundled_folder(args.cache)  # converted once, outside the timings
    models_before = sorted(p.name for p in (Path(args.cache).expanduser() / "models").iterdir())
    work = args.out_dir or Path(tempfile.mkdtemp(prefix="dpo_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    data_file = work / "pairs.jsonl"
    max_length = args.seq_len or args.max_length
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in preset_rows(args.data)]
    if args.seq_len:
        from transformers import AutoTokenizer

        rows = long_pairs(rows, args.pairs, args.seq_len, AutoTokenizer.from_pretrained(model_dir))
    data_file.write_text("".join(json.dumps(r) + "\n" for r in rows[: args.pairs]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(TQDM_DISABLE="1", PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p))
    steps = args.steps + (1 if args.profile else 0)  # the profiled step is the last, left out of the timings

    results: dict[str, dict] = {}
    for variant in args.variants.split(","):
        out_dir = work / variant
        shutil.rmtree(out_dir, ignore_errors=True)
        timer = [sys.executable, str(STEPTIMER), "--out", str(work / f"{variant}.steps.json")]
        if args.profile:
            timer += ["--profile-step", str(steps), "--profile-out", str(work / f"{variant}.profile.txt")]
        if variant.startswith("dpo_exp"):
            cmd = [*timer, "--", "-m", "dpo_exp", *dpo_exp_args(args, data_file=data_file, steps=steps,
                                                                max_length=max_length, out_dir=out_dir,
                                                                overrides=overrides)]
            if variant == "dpo_exp_standard":
                cmd.append("train.forward=standard")
        else:
            script = work / "plain.py"
            script.write_text(PLAIN)
            settings = dict(model_dir=str(model_dir), data_file=str(data_file), out_dir=str(out_dir), variant=variant,
                            steps=steps, batch_size=args.batch_size, hardware=args.hardware, max_length=max_length)
            cmd = [*timer, "--", str(script), json.dumps(settings)]
        wall, peak, others = run(cmd, work, env, work / f"{variant}.log")
        record = json.loads((work / f"{variant}.steps.json").read_text())
        results[variant] = {"seconds": round(wall, 1), "peak_rss_gib": round(peak, 2),
                            "other_processes_cpu_s": None if others is None else round(others, 1),
                            **summarize(record, args.warmup_steps), "cuda": record.get("cuda"),
                            "model": record.get("model")}
        r = results[variant]
        line = f"{variant:9s} {wall:7.1f} s   peak RSS {peak:.2f} GiB"
        if "tokens_per_s" in r:
            line += f"   step {r['step_s_median'] * 1000:.0f} ms   {r['tokens_per_s']:,.0f} tokens/s"
        if r.get("cuda"):
            line += f"   peak GPU {r['cuda']['peak_allocated_gib']:.2f} GiB"
        if others is not None:
            line += f"   other processes {others:.0f} CPU-s" + ("  (NOT QUIET: not a measurement)" if others > 0.05 * wall else "")
        print(line, flush=True)
    models_after = sorted(p.name for p in (Path(args.cache).expanduser() / "models").iterdir())
    if models_after != models_before:  # dpo_exp built its own random model: the variants differ in weights
        raise SystemExit(f"dpo_exp's model=random did not reuse {model_dir}: models now {models_after}")

    shape = model_shape(model_dir)
    device = next((r["cuda"]["device"] for r in results.values() if r.get("cuda")), None)
    peak = peak_tflops(device, args.peak_tflops)
    for variant, r in results.items():
        if "tokens_per_sequence" in r:
            r["flops_per_token"] = flops_per_token(shape, r["tokens_per_sequence"], online_reference=variant != "dpo_exp")
            r["model_tflops"] = r["flops_per_token"] * r["tokens_per_s"] / 1e12
            r["mfu"] = r["model_tflops"] / peak if peak else None
        if r.get("ref_tokens_per_s"):
            r["ref_tflops"] = forward_flops_per_token(shape, r["tokens_per_sequence"]) * r["ref_tokens_per_s"] / 1e12
            r["ref_mfu"] = r["ref_tflops"] / peak if peak else None
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores"
        + (f", {device}" if device else ""), "steps": args.steps, "pairs": args.pairs, "batch_size": args.batch_size,
        "model": args.model, "architecture": args.architecture if args.model == "random" else None,
        "arch_overrides": overrides or None, "hardware": args.hardware, "seq_len": args.seq_len,
        "max_length": max_length, "data": args.data, "dpo_exp_args": args.dpo_exp_arg, "warmup_steps": args.warmup_steps, "profiled": args.profile,
        "shape": shape, "peak_bf16_tflops": peak, "results": results,
    }
    for ours in ("dpo_exp", "dpo_exp_standard"):
        for other in ("dpo_exp_standard", "tuned", "tutorial"):
            if ours in results and other in results and other != ours:
                record[f"{ours}/{other}"] = round(results[ours]["seconds"] / results[other]["seconds"], 3)
                line = f"{ours} / {other}: {record[f'{ours}/{other}']:.2f}x wall time"
                if results[ours].get("tokens_per_s") and results[other].get("tokens_per_s"):
                    speed = results[ours]["tokens_per_s"] / results[other]["tokens_per_s"]
                    record[f"{ours}/{other} tokens_per_s"] = round(speed, 3)
                    line += f", {speed:.2f}x steady-state tokens/s"
                print(line)
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(record, indent=1))
    with open(args.results, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
