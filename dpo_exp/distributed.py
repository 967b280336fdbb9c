"""One run on several processes: torchrun or `accelerate launch`, with DDP, DeepSpeed ZeRO or FSDP.

dpo_exp never starts processes itself. A launcher starts N copies of `python -m dpo_exp` and sets
RANK / WORLD_SIZE / LOCAL_RANK; the copies train one run together:

- `setup(argv)`, before Hydra composes: join the process group, agree on one run directory (rank
  0 picks $DPO_EXP_RUN_STAMP, which names it, and sends it to the others) and keep ranks > 0 from
  writing Hydra's files into it.
- rank 0 alone owns the run's record (MLflow run, run_state.json, config.yaml, summary):
  `is_main()` guards those writes, `from_main(fn)` computes a decision once and hands it to all.
- every rank trains, evaluates and generates (ZeRO-3 shards the weights, so every forward pass,
  generation included, needs all ranks); TRL/Trainer gathers the metrics.
- `distributed.strategy` (conf/distributed/) picks DDP, DeepSpeed ZeRO-2/3 or FSDP; `trainer_args`
  turns it into TrainingArguments fields, so transformers/accelerate do the sharding.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, TypeVar

from dpo_exp.config import RUN_STAMP_ENV, Config, UserError, run_stamp

DEEPSPEED_INSTALL = 'DS_BUILD_OPS=0 pip install -e ".[deepspeed]"'
T = TypeVar("T")


def launched() -> bool:
    """Started by torchrun / accelerate launch (even with one process)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def _initialized() -> bool:
    if "torch" not in sys.modules:  # no process group without torch; keeps `--help` fast
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def setup(argv: list[str]) -> list[str]:
    """Join the process group and agree on the run directory; returns argv for Hydra.

    A no-op without a launcher. Ranks > 0 get `hydra.output_subdir=null` and console-only logging,
    so rank 0 alone writes `.hydra/` and the job log.
    """
    warn_single_process_accelerate_cpu()
    if not launched():
        return argv
    if world_size() > 1 and any(a in ("-m", "--multirun") or a.startswith("--multirun=") for a in argv):
        raise UserError(
            f"A sweep (-m) cannot run inside a multi-process launch (WORLD_SIZE={world_size()}): every rank would "
            "run the whole sweep. Fix: launch each run with torchrun/accelerate, or run the sweep with one "
            "process per job (e.g. hydra/launcher=submitit_slurm)."
        )
    import torch
    from accelerate import PartialState

    # Without a GPU, PartialState(cpu=False) sees no distributed backend and every rank believes it is
    # rank 0 of 1; cpu=True gives a gloo group. On GPUs: nccl, and cuda:LOCAL_RANK as this rank's device.
    PartialState(cpu=not torch.cuda.is_available())
    if not os.environ.get(RUN_STAMP_ENV):
        stamp = [run_stamp() if is_main() else None]
        torch.distributed.broadcast_object_list(stamp, src=0)
        os.environ[RUN_STAMP_ENV] = stamp[0]  # ${run_stamp:} in hydra.run.dir reads it
    if not is_main():
        argv = [*argv, "hydra.output_subdir=null", "hydra/job_logging=stdout"]
    return argv


def from_main(fn: Callable[[], T]) -> T:
    """fn() run on rank 0 only, its result (or its exception) given to every rank."""
    if not _initialized():
        return fn()
    import torch.distributed as dist

    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", fn())
        except Exception as e:  # the other ranks raise it too instead of waiting forever
            box[0] = ("error", e)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def barrier() -> None:
    if _initialized():
        import torch.distributed as dist

        dist.barrier()


def warn_single_process_accelerate_cpu() -> None:
    """`accelerate launch --cpu --num_processes N` silently starts one process: say so."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() != "true" or "WORLD_SIZE" in os.environ:
        return
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            parent = f.read().decode(errors="replace").split("\0")
    except OSError:
        return
    for i, arg in enumerate(parent):
        key, _, value = arg.partition("=")
        if key in ("--num_processes", "--num-processes") and not value and i + 1 < len(parent):
            value = parent[i + 1]
        if key in ("--num_processes", "--num-processes") and value.isdigit() and int(value) > 1:
            print(f"[dpo_exp] warning: `accelerate launch --cpu --num_processes {value}` started ONE process "
                  "(accelerate's --cpu launcher does not spawn several). For several CPU processes (gloo) use "
                  f"`accelerate launch --multi_gpu --num_processes {value} -m dpo_exp ...` or "
                  f"`torchrun --nproc_per_node {value} -m dpo_exp ...`.", file=sys.stderr, flush=True)
            return


def check(conf: Config) -> None:
    """Strategy vs machine, before any model work."""
    strategy = conf.distributed.strategy.value
    if strategy.startswith("zero"):
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise UserError(
                f"distributed={strategy} needs DeepSpeed, which is not installed. Fix: `{DEEPSPEED_INSTALL}` "
                "(DS_BUILD_OPS=0 skips compiling its CUDA kernels; they are built on first use where needed), "
                "or use distributed=ddp."
            )
        if not launched():
            raise UserError(
                f"distributed={strategy} runs DeepSpeed, which needs a process group even for one process, and "
                "this run was not started by a launcher (no LOCAL_RANK/WORLD_SIZE). Fix: `torchrun --standalone "
                f"--nproc_per_node N -m dpo_exp ... distributed={strategy}` (N = number of GPUs, or 2+ processes "
                "on a CPU), or distributed=ddp for one plain process."
            )
    if strategy == "fsdp" or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":  # or accelerate's --use_fsdp
        import torch

        asked = "distributed=fsdp" if strategy == "fsdp" else "accelerate launch --use_fsdp"
        if conf.hardware.device.value == "cpu" or not torch.cuda.is_available():
            raise UserError(
                f"{asked} needs CUDA GPUs: on a CPU, FSDP either fails or quietly trains as plain data "
                f"parallel (torch.cuda.is_available() is {torch.cuda.is_available()}, hardware.device="
                f"{conf.hardware.device.value}). Fix: use distributed=ddp (or distributed=zero3, which DeepSpeed "
                "runs on CPUs too) here, and distributed=fsdp on a GPU machine."
            )
    if conf.distributed.offload and strategy not in ("zero2", "zero3", "fsdp"):
        raise UserError(
            f"distributed.offload=true needs a sharding strategy (distributed={strategy} keeps everything on the "
            "device). Fix: use distributed=zero3_offload, distributed=zero2 distributed.offload=true or "
            "distributed=fsdp distributed.offload=true, or distributed.offload=false."
        )


def trainer_args(conf: Config) -> dict[str, Any]:
    """TrainingArguments fields for `distributed.strategy`; transformers/accelerate do the rest."""
    strategy, offload = conf.distributed.strategy.value, conf.distributed.offload
    if strategy == "ddp":
        # LoRA trains every adapter weight on every step: skip DDP's per-step search for unused ones.
        return {"ddp_find_unused_parameters": False}
    if strategy == "fsdp":
        return {"fsdp": True, "fsdp_config": {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                              "cpu_offload": offload, "state_dict_type": "FULL_STATE_DICT"}}
    stage = 2 if strategy == "zero2" else 3
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": False}
    if offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": False}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True  # save_model writes the whole adapter/model
    # "auto": transformers fills these from TrainingArguments, so batch, accumulation, clipping and
    # precision stay where the rest of the config sets them.
    ds = {"zero_optimization": zero, "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
          "gradient_accumulation_steps": "auto", "gradient_clipping": "auto", "bf16": {"enabled": "auto"},
          "fp16": {"enabled": "auto"}}
    return {"deepspeed": ds}


def prepare_accelerator_state(conf: Config) -> dict[str, Any]:
    """TrainingArguments fields that make accelerate see this process group as it is.

    On a machine without GPUs, accelerate pairs DeepSpeed with no backend, so every rank would
    count one process (DeepSpeed then rejects the batch sizes: 4 != 4 x 1 x 2). Here the state is
    built with the gloo group that `setup` joined, and transformers told to use it.
    """
    if not (uses_deepspeed(conf) and _initialized()):
        return {}
    import torch

    if torch.cuda.is_available():  # nccl: accelerate gets it right by itself
        return {}
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)
    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    PartialState(backend="gloo")
    return {"accelerator_config": {"use_configured_state": True}}


def uses_deepspeed(conf: Config) -> bool:
    return conf.distributed.strategy.value.startswith("zero") or os.environ.get(
        "ACCELERATE_USE_DEEPSPEED", "").lower() == "true"


def describe(args) -> str:
    """'global batch 8 pairs = 4 per process x 2 processes x 1 accumulation step(s)' from TrainingArguments."""
    per, n, acc = args.per_device_train_batch_size, args.world_size, args.gradient_accumulation_steps
    return f"global batch {per * n * acc} pairs = {per} per process x {n} process(es) x {acc} accumulation step(s)"
