"""Time each optimizer step of any Hugging Face Trainer run, without changing the code that runs it.

    python benchmarks/steptimer.py --out steps.json [--profile-step N --profile-out prof.txt] -- -m dpo_exp ARGS...
    python benchmarks/steptimer.py --out steps.json -- some_script.py ARGS...

Every `transformers.Trainer` built in the process (TRL's DPOTrainer and dpo_exp's subclass of it
included) gets a callback that reads the wall clock at the end of each optimizer step, after
`torch.cuda.synchronize()` so that a step's GPU work is counted in that step, and a wrapper around
its `training_step` that counts the tokens of each batch (`attention_mask`: real tokens;
`input_ids`: tokens with padding). Nothing else changes: the target runs as `python -m ...` or
`python script.py` would run it. At exit (also on failure) the JSON written to `--out` holds:

- `t_start`, `t_trainer_init` (end of Trainer.__init__, before TRL's reference pass),
  `t_train_begin`, `t_train_end`: wall-clock times (time.time());
- `step_end`, `tokens`, `padded_tokens`, `sequences`: one entry per optimizer step;
- `ref_passes`: one entry per precomputed reference pass (TRL's `_precompute_ref_logps`, dpo_exp's
  included): split name, pairs, batches, seconds (between CUDA syncs), and the first batch's seconds
  and pairs (timed between syncs of its own; the later batches run unsynced, as without the timer);
- `profiled_step`: the step run under torch.profiler (leave it out of timings), if any;
- `model`: device, parameter dtypes, trainable parameters, count of 4-bit (bitsandbytes) layers;
- `cuda`: device name, peak memory allocated/reserved over the process and during training (GiB).
"""

from __future__ import annotations

import argparse
import atexit
import json
import runpy
import sys
import time
from collections import Counter
from pathlib import Path

T_START = time.time()


def install(out: Path, profile_step: int | None = None, profile_out: Path | None = None) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback

    cuda = torch.cuda.is_available()
    record: dict = {"t_start": T_START, "step_end": [], "tokens": [], "padded_tokens": [], "sequences": [],
                    "ref_passes": [], "profiled_step": None, "model": None, "cuda": None, "argv": sys.argv[1:]}
    pending = Counter()
    profiler = {"p": None}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def gib(n: int) -> float:
        return round(n / 2**30, 3)

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            sync()
            record["t_train_begin"] = time.time()
            if cuda:
                record["peak_allocated_before_train_gib"] = gib(torch.cuda.max_memory_allocated())
                torch.cuda.reset_peak_memory_stats()

        def on_step_begin(self, args, state, control, **kwargs):
            if profile_step is not None and state.global_step + 1 == profile_step:
                acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
                profiler["p"] = torch.profiler.profile(activities=acts, record_shapes=False)
                profiler["p"].__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            record["step_end"].append(time.time())
            record["tokens"].append(pending["tokens"])
            record["padded_tokens"].append(pending["padded"])
            record["sequences"].append(pending["sequences"])
            pending.clear()
            if profiler["p"] is not None:
                prof, profiler["p"] = profiler["p"], None
                prof.__exit__(None, None, None)
                record["profiled_step"] = state.global_step
                if profile_out is not None:
                    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
                    profile_out.write_text(f"step {state.global_step}, sorted by {sort}\n"
                                           + prof.key_averages().table(sort_by=sort, row_limit=40))

        def on_train_end(self, args, state, control, **kwargs):
            sync()
            record["t_train_end"] = time.time()

    original_init = Trainer.__init__

    def patched_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        record["t_trainer_init"] = time.time()
        self.add_callback(StepTimer())
        inner = self.training_step

        def training_step(model, inputs, *rest, **kw):
            ids, mask = inputs.get("input_ids"), inputs.get("attention_mask")
            if ids is not None:
                pending["padded"] += ids.numel()
                pending["sequences"] += ids.shape[0]
                pending["tokens"] += int(mask.sum()) if mask is not None else ids.numel()
            return inner(model, inputs, *rest, **kw)

        self.training_step = training_step
        if hasattr(self, "_precompute_ref_logps"):
            time_ref_pass(self)
        params = list(self.model.parameters())
        record["model"] = {
            "class": type(self.model).__name__,
            "device": str(params[0].device) if params else None,
            "param_dtypes": dict(Counter(str(p.dtype).removeprefix("torch.") for p in params)),
            "trainable_params": sum(p.numel() for p in params if p.requires_grad),
            "linear_4bit_layers": sum(type(m).__name__ == "Linear4bit" for m in self.model.modules()),
            "bf16_autocast": bool(getattr(self.args, "bf16", False)),
            "gradient_checkpointing": bool(getattr(self.args, "gradient_checkpointing", False)),
        }

    Trainer.__init__ = patched_init

    try:
        from trl import DPOTrainer
    except ImportError:  # a plain transformers Trainer run
        DPOTrainer = None
    if DPOTrainer is not None:
        original_ref = DPOTrainer.compute_ref_log_probs

        def timed_ref(self, model, inputs):
            current = record["ref_passes"][-1] if record["ref_passes"] else None
            if current is None or "seconds" in current:  # a batch outside a precomputed pass
                return original_ref(self, model, inputs)
            pairs = inputs["input_ids"].shape[0] // 2
            current["batches"] += 1
            current["pairs"] += pairs
            if current["batches"] > 1:
                return original_ref(self, model, inputs)
            sync()
            start = time.time()
            out = original_ref(self, model, inputs)
            sync()
            current["first_batch_s"], current["first_batch_pairs"] = time.time() - start, pairs
            return out

        DPOTrainer.compute_ref_log_probs = timed_ref

    def time_ref_pass(trainer) -> None:
        # Per instance: dpo_exp's trainer overrides the method, and TRL calls it from __init__, after
        # Trainer.__init__ (where this runs).
        inner = trainer._precompute_ref_logps

        def precompute(dataset, name, *args, **kwargs):
            entry = {"name": name, "pairs": 0, "batches": 0}
            record["ref_passes"].append(entry)
            sync()
            start = time.time()
            out = inner(dataset, name, *args, **kwargs)
            sync()
            entry["seconds"] = time.time() - start
            return out

        trainer._precompute_ref_logps = precompute

    def write() -> None:
        if cuda:
            record["cuda"] = {
                "device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
                "peak_allocated_gib": max(gib(torch.cuda.max_memory_allocated()),
                                          record.get("peak_allocated_before_train_gib", 0.0)),
                "train_peak_allocated_gib": gib(torch.cuda.max_memory_allocated()),
                "train_peak_reserved_gib": gib(torch.cuda.max_memory_reserved()),
            }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1))

    atexit.register(write)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile-step", type=int, default=None, help="run this step (1-based) under torch.profiler")
    parser.add_argument("--profile-out", type=Path, default=None, help="the profiler's table, as text")
    parser.add_argument("target", nargs=argparse.REMAINDER, help="-- -m module ARGS... | -- script.py ARGS...")
    args = parser.parse_args()
    target = args.target[1:] if args.target[:1] == ["--"] else args.target
    if not target:
        parser.error("nothing to run: give `-- -m module ARGS...` or `-- script.py ARGS...`")
    install(args.out, args.profile_step, args.profile_out)
    if target[0] == "-m":
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(target)
        sys.path.insert(0, str(Path(target[0]).resolve().parent))
        runpy.run_path(target[0], run_name="__main__")


if __name__ == "__main__":
    main()
