"""Training: a TRL DPOConfig built from our config, and TRL's DPOTrainer with two additions.

- `DPOExpTrainer.evaluate` adds the sampled KL(policy || reference) estimate (dpo_exp.evaluate)
  to TRL's per-mode metrics before TRL logs them, so `eval_kl/sampled` sits beside
  `eval_rewards/margins` at every evaluation, in the console, in trainer state and in MLflow.
- Length-grouped batches computed from TRL's own tokenized columns (less padding per step).
- `train.forward=shared_prefix` (the default): TRL's loss and reference pass call the model through
  `dpo_exp.shared_prefix.SharedPrefixForward`, which runs each pair's prompt once.

The reference is TRL's: with LoRA, the policy with its adapter disabled; with `lora=none`, a
separate frozen copy. Reference log-probs are precomputed once by default.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.integrations import MLflowCallback
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import DPOConfig, DPOTrainer

from dpo_exp import distributed, evaluate, shared_prefix
from dpo_exp.cache import base_weights_hash, file_lock, json_cached
from dpo_exp.config import Config, UserError
from dpo_exp.monitor import DPOMonitor

# Metrics shown in the console progress line, by TRL's names.
CONSOLE_KEYS = (("loss", "loss"), ("rewards/margins", "margin"), ("rewards/accuracies", "acc"))


def dpo_config(cfg: Config, run_dir: Path, *, has_eval: bool, run_name: str, bf16: bool, use_cpu: bool,
               resuming: bool = False) -> DPOConfig:
    t, loss = cfg.train, cfg.loss
    eval_strategy = "steps" if has_eval else "no"
    return DPOConfig(
        output_dir=str(run_dir),
        run_name=run_name,
        seed=t.seed,
        data_seed=t.seed,
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_ratio,  # transformers 5: a value < 1 is a fraction of the total steps
        lr_scheduler_type=t.lr_scheduler.value,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=t.optim.value,
        max_length=t.max_length,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # Trainer's default logs an inf/NaN loss as 0: divergence must show
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps,
        eval_on_start=has_eval and cfg.eval.at_start and not resuming,  # a resumed run has its step-0 point
        save_strategy="steps",
        save_steps=t.eval_steps,
        save_total_limit=t.save_total_limit,
        # TRL defaults bf16 and gradient checkpointing on; both are slow on a CPU and for small models.
        bf16=bf16,
        fp16=False,
        use_cpu=use_cpu,
        # transformers 5's name; the old `gradient_checkpointing` warns a FutureWarning on every run.
        activation_checkpointing=cfg.hardware.gradient_checkpointing,
        precompute_ref_log_probs=t.precompute_ref_log_probs,
        torch_compile=t.torch_compile,
        precompute_ref_batch_size=t.eval_batch_size,
        loss_type=[loss.type.value, *loss.extra_types],
        loss_weights=loss.weights,
        beta=cfg.beta.value,
        label_smoothing=loss.label_smoothing,
        discopop_tau=loss.discopop_tau,
        f_divergence_type=loss.f_divergence_type,
        f_alpha_divergence_coef=loss.f_alpha_divergence_coef,
        ld_alpha=loss.ld_alpha,
        use_weighting=loss.use_weighting,
        report_to=["mlflow"],
        disable_tqdm=True,  # ConsoleProgress prints one line per log step instead
        dataloader_num_workers=0,
        save_only_model=False,  # optimizer and scheduler state too: resume continues exactly
        **distributed.trainer_args(cfg),  # DDP / DeepSpeed ZeRO / FSDP, from distributed.strategy
        **distributed.prepare_accelerator_state(cfg),
    )


def dataset_hash(dataset) -> str:
    """Hash of TRL's tokenized columns: changes with the data, the tokenizer and max_length."""
    h = hashlib.sha256()
    for column in ("prompt_ids", "chosen_ids", "rejected_ids"):
        for ids in dataset[column]:
            h.update(torch.tensor(ids, dtype=torch.int64).numpy().tobytes())
            h.update(b"|")
    return h.hexdigest()


class DPOExpTrainer(DPOTrainer):
    # Set before super().__init__, which precomputes the reference log-probs.
    ref_cache_dir: Path | None = None
    forward: str = "standard"
    start_eval_cache_dir: Path | None = None  # the step-0 evaluation's cache (eval.cache_start)
    start_eval_event: str | None = None  # "computed" | "cached", once the step-0 evaluation ran

    def __init__(self, *args, kl_prompts: list[list[dict]] | None = None, kl_samples_per_prompt: int = 2,
                 kl_max_new_tokens: int = 32, group_by_length: bool = False, ref_cache_dir: Path | None = None,
                 forward: str = "standard", **kwargs):
        self.ref_cache_dir = ref_cache_dir
        self.forward = forward
        self._forward_said: set[str] = set()  # fallback reasons already printed
        self.ref_cache_events: dict[str, str] = {}  # split -> "computed" | "cached"
        super().__init__(*args, **kwargs)
        self.kl_prompts = kl_prompts or []
        self.kl_samples_per_prompt = kl_samples_per_prompt
        self.kl_max_new_tokens = kl_max_new_tokens
        self.group_by_length = group_by_length
        self.last_kl: dict[str, float] = {}

    def reference_weights_hash(self) -> str:
        """`base_weights_hash` of the reference, computed once per trainer (it reads every weight): the key of
        the reference pass's cache and of the held-out replies' (`evaluate.reference_replies`)."""
        if not hasattr(self, "_ref_weights_hash"):
            self._ref_weights_hash = base_weights_hash(self.ref_model or self.model)
        return self._ref_weights_hash

    def _precompute_ref_logps(self, dataset, name: str, batch_size: int):
        """TRL's reference pass, cached under `paths.cache/ref_logps` by what the reference sees.

        The key covers the reference weights (LoRA excluded), the tokenized data, the batch size and
        LD-DPO's alpha (it weights the reference's tokens), and nothing else: jobs of a sweep over
        beta, learning rate or loss share it. Seeds do not: train.seed orders the rows (data/splits.py),
        and the key keeps the order because other batches pad differently (last-bit changes). With N
        processes rank 0 decides hit or miss (holding the file lock, which parallel sweep jobs wait on),
        on a miss every rank computes its share (TRL's gather is a collective), and rank 0 alone writes
        the file.
        """
        if self.ref_cache_dir is None:
            return self._with_ref_columns(dataset, self._compute_ref_logps(dataset, name, batch_size))
        # The shared-prefix forward's sums differ from the standard's in the last bits: keyed apart.
        layout = ":shared_prefix" if self.forward == "shared_prefix" else ""
        key = hashlib.sha256(f"{self.reference_weights_hash()}:{dataset_hash(dataset)}:{batch_size}:{self.ld_alpha}"
                             f"{layout}".encode()).hexdigest()[:24]
        path = self.ref_cache_dir / f"{key}.pt"
        lock = file_lock(self.ref_cache_dir / f"{key}.lock") if distributed.is_main() else contextlib.nullcontext()
        with lock:
            cached = distributed.from_main(lambda: torch.load(path) if path.is_file() else None)
            if cached is not None:
                self.ref_cache_events[name] = "cached"
                if distributed.is_main():
                    print(f"[dpo_exp] reference log-probs for {name}: reused from {path}", flush=True)
            else:
                cached = self._compute_ref_logps(dataset, name, batch_size)
                self.ref_cache_events[name] = "computed"
                if distributed.is_main():
                    tmp = path.with_suffix(f".tmp{os.getpid()}")
                    torch.save(cached, tmp)
                    tmp.replace(path)
        return self._with_ref_columns(dataset, cached)

    @staticmethod
    def _with_ref_columns(dataset, logps: dict[str, list[float]]):
        return dataset.add_column("ref_chosen_logps", logps["chosen"]).add_column("ref_rejected_logps", logps["rejected"])

    def _compute_ref_logps(self, dataset, name: str, batch_size: int) -> dict[str, list[float]]:
        """TRL's reference pass (its batches, `compute_ref_log_probs`, gather across ranks), kept in memory.

        TRL 1.16's own `_precompute_ref_logps` hands the gathered values from rank 0 to the other
        ranks through a datasets cache file, which for an in-memory dataset lies in each process's
        own temporary folder, so rank 1 fails to read it. Every rank has the gathered values already.
        """
        from accelerate.utils import tqdm  # a progress bar on the main process only
        from torch.utils.data import DataLoader
        from trl.models import prepare_deepspeed

        # The DataLoader draws a seed from torch's global RNG. Forked, so the training stream (LoRA
        # dropout, batch order) is the same whether the pass is computed or cached.
        with torch.random.fork_rng():
            loader = self.accelerator.prepare(DataLoader(dataset, batch_size=batch_size, collate_fn=self.data_collator,
                                                         num_workers=self.args.dataloader_num_workers, shuffle=False))
            model = self.ref_model or self.model
            if self.ref_model is None and self.is_deepspeed_enabled:
                # Before `train`, DeepSpeed's weights are not placed (ZeRO-2) or sharded (ZeRO-3) yet; TRL
                # wraps the model in an inference engine for this pass and reuses it.
                if self._precompute_engine is None:
                    self._precompute_engine = prepare_deepspeed(self.model, self.accelerator)
                model = self._precompute_engine
            chosen, rejected = [], []
            for batch in tqdm(loader, desc=f"Computing reference log probs for {name} dataset",
                              disable=bool(os.environ.get("TQDM_DISABLE", ""))):
                c, r = self.accelerator.gather_for_metrics(self.compute_ref_log_probs(self.model_forward(model), batch))
                # Kept on the device until the end: a copy to the host per batch would wait for the GPU
                # each time, so the next batch's collation and kernel launches could not overlap it.
                chosen.append(c.float())
                rejected.append(r.float())
        if distributed.is_main():
            print(f"[dpo_exp] reference log-probs for {name}: computed ({len(dataset)} pairs)", flush=True)
        return {"chosen": torch.cat(chosen).cpu().tolist(), "rejected": torch.cat(rejected).cpu().tolist()}

    def model_forward(self, model):
        """What TRL's loss and reference pass call as the model: the shared-prefix wrapper
        (`train.forward=shared_prefix`, where it applies), else the model itself."""
        if self.forward != "shared_prefix":
            return model
        reason = shared_prefix.fallback_reason(model)
        if reason is None:
            attention = getattr(self.accelerator.unwrap_model(model).config, "_attn_implementation", None) or "eager"
            return shared_prefix.SharedPrefixForward(model, attention=attention, on_fallback=self._say_fallback)
        self._say_fallback(f"{reason}; TRL's standard forward is used")
        return model

    def _say_fallback(self, reason: str) -> None:
        if reason not in self._forward_said and distributed.is_main():
            print(f"[dpo_exp] train.forward=shared_prefix: {reason}", flush=True)
        self._forward_said.add(reason)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return super().compute_loss(self.model_forward(model), inputs, return_outputs, num_items_in_batch)

    def _get_train_sampler(self, train_dataset=None):
        if not self.group_by_length:
            return super()._get_train_sampler(train_dataset)
        # Transformers' own length grouping looks for `input_ids`; TRL's columns are split, so
        # give the sampler the length of the longer of the two sequences of each pair.
        ds = self.train_dataset
        lengths = [len(p) + max(len(c), len(r)) for p, c, r in zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"])]
        # Grouped by the global batch: N processes then see, together, the order one process would.
        args = self.args
        return LengthGroupedSampler(args.train_batch_size * args.gradient_accumulation_steps * args.world_size,
                                    lengths=lengths)

    def policy_is_reference(self) -> bool:
        """Whether the policy is its reference bit for bit: a LoRA adapter (not DoRA) whose B matrices are all zero,
        as PEFT initialises them, against the adapter-disabled model. Then KL(policy || reference) is exactly 0."""
        from peft import PeftModel

        model = self.accelerator.unwrap_model(self.model)
        if (self.ref_model is not None or not isinstance(model, PeftModel) or "ref" in model.peft_config
                or self.is_deepspeed_enabled or self.is_fsdp_enabled):  # sharded weights are not all here to read
            return False
        adapter = model.peft_config.get("default")
        if adapter is None or getattr(adapter, "is_prompt_learning", False) or getattr(adapter, "use_dora", False):
            return False
        b = [p for name, p in model.named_parameters() if "lora_B" in name or "lora_embedding_B" in name]
        return bool(b) and not any(p.detach().any() for p in b)

    def estimate_kl(self) -> dict[str, float]:
        if not self.kl_prompts or self.kl_samples_per_prompt < 1 or self.kl_max_new_tokens < 1:
            return {}
        if self.policy_is_reference():  # before the first step: no sampling needed to know it is 0
            return dict.fromkeys(("kl/sampled", "kl/sampled_stderr", "kl/sampled_per_token", "kl/sampled_full_vocab"),
                                 0.0)
        return evaluate.sampled_kl(
            self.model, self.processing_class, self.kl_prompts, evaluate.reference_context(self),
            samples_per_prompt=self.kl_samples_per_prompt, max_new_tokens=self.kl_max_new_tokens,
            seed=self.args.seed, batch_size=self.args.per_device_eval_batch_size,
        )

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        if (self.state.global_step == 0 and eval_dataset is None and self.start_eval_cache_dir is not None
                and self.args.world_size == 1):  # N processes evaluate collectively: one cannot wait on a lock
            return self._start_evaluation(ignore_keys, metric_key_prefix)
        return self._evaluate_now(eval_dataset, ignore_keys, metric_key_prefix)

    def _start_evaluation(self, ignore_keys, metric_key_prefix):
        """The step-0 evaluation, from `paths.cache/eval_start` when an earlier run computed it from the same start.

        The evaluation draws from the random generators (each DataLoader draws a seed), and the batch order
        drawn after it depends on those draws: the cache keeps the generators' states before and after, and
        is used only when the states now are the "before" ones, which it then moves to the "after" ones. So
        a run that reuses it trains exactly as the run that computed it."""
        path = self.start_eval_cache_dir / f"{self.start_eval_key()}.json"
        before = rng_states()

        def compute():
            metrics = self._evaluate_now(None, ignore_keys, metric_key_prefix)
            return {"metrics": metrics, "rng_before": digest(before), "rng_after": rng_states()}

        entry, reused = json_cached(path, compute)
        if reused and entry.get("rng_before") != digest(before):  # another random stream: compute it here
            entry, reused = compute(), False
        self.start_eval_event = "cached" if reused else "computed"
        metrics = entry["metrics"]
        if reused:  # logged and passed to the callbacks as the computed evaluation was
            print(f"[dpo_exp] step-0 evaluation: reused from {path}", flush=True)
            restore_rng_states(entry["rng_after"])
            self.last_kl = {k.removeprefix("eval_"): v for k, v in metrics.items() if k.startswith("eval_kl/")}
            self.log(dict(metrics))
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _evaluate_now(self, eval_dataset, ignore_keys, metric_key_prefix):
        # TRL averages `_metrics["eval"]` into the eval log line; adding the KL here puts it in
        # the same line (and MLflow step) as TRL's eval metrics.
        self.last_kl = self.estimate_kl()
        for key, value in self.last_kl.items():
            self._metrics["eval"][key].append(value)
        return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def start_eval_key(self) -> str:
        """What the step-0 evaluation depends on: the reference, the starting weights (the trained ones: a fresh
        LoRA differs by seed), the eval pairs, the loss and its settings, the KL estimate's, and the numerics."""
        start = hashlib.sha256()
        for name, param in sorted(self.model.named_parameters(), key=lambda kv: kv[0]):
            if param.requires_grad:
                start.update(name.encode())
                start.update(param.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
        a = self.args
        # Before the first step of a fresh adapter every log-ratio is exactly 0, so every reward metric is 0 and
        # these losses are their value at 0 whatever beta is: a beta sweep then shares one step-0 evaluation.
        beta = None if self.policy_is_reference() and set(a.loss_type) <= BETA_FREE_AT_START else a.beta
        parts = [self.reference_weights_hash(), start.hexdigest(), dataset_hash(self.eval_dataset), self.forward,
                 beta, a.loss_type, a.loss_weights, a.label_smoothing, a.f_divergence_type, a.f_alpha_divergence_coef,
                 a.ld_alpha, a.use_weighting, a.discopop_tau, a.per_device_eval_batch_size, a.seed, a.bf16,
                 self.kl_prompts, self.kl_samples_per_prompt, self.kl_max_new_tokens, torch.__version__,
                 str(self.accelerator.device)]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


# TRL losses whose value at log-ratios of 0 does not depend on beta (-logsigmoid(0), relu(1), the smoothed
# sigmoid, the SFT term); the others (ipo's 1/(2 beta), ...) keep beta in the step-0 evaluation's key.
BETA_FREE_AT_START = {"sigmoid", "hinge", "robust", "sft"}


def rng_states() -> str:
    """Python's, NumPy's and torch's (CPU, and CUDA when present) random generator states, as text."""
    import base64
    import pickle
    import random

    import numpy as np

    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state().numpy(),
              "cuda": [s.numpy() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []}
    return base64.b64encode(pickle.dumps(states)).decode()


def restore_rng_states(text: str) -> None:
    import base64
    import pickle
    import random

    import numpy as np

    states = pickle.loads(base64.b64decode(text))  # written by rng_states into dpo_exp's own cache
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(torch.from_numpy(states["torch"]))
    if states["cuda"]:
        torch.cuda.set_rng_state_all([torch.from_numpy(s) for s in states["cuda"]])


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class ConsoleProgress(TrainerCallback):
    """One line per logging step: step, loss, margin, accuracy, speed and time left."""

    def __init__(self):
        self.start = None
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start, self.start_step = time.time(), state.global_step
        if state.is_world_process_zero:
            print(f"[dpo_exp] training: {state.max_steps} steps, {distributed.describe(args)}"
                  f"{f' (resuming at step {state.global_step})' if state.global_step else ''}", flush=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if self.start is None or not state.is_world_process_zero:
            return
        done = state.global_step - self.start_step
        per_step = (time.time() - self.start) / done if done else float("nan")
        left = per_step * (state.max_steps - state.global_step) if done else float("nan")
        if "eval_loss" in logs:
            parts = [f"eval {k.removeprefix('eval_')}={v:.3f}" for k, v in logs.items()
                     if k in ("eval_loss", "eval_rewards/margins", "eval_rewards/accuracies", "eval_kl/sampled_full_vocab")]
            print(f"[dpo_exp] step {state.global_step}/{state.max_steps} | " + " | ".join(parts), flush=True)
        elif "loss" in logs:
            parts = [f"{short} {logs[key]:.3f}" for key, short in CONSOLE_KEYS if key in logs]
            eta = f"{left / 60:.1f} min left" if math.isfinite(left) else ""
            print(f"[dpo_exp] step {state.global_step}/{state.max_steps} | " + " | ".join(parts)
                  + (f" | {per_step:.2f} s/step | {eta}" if math.isfinite(per_step) else ""), flush=True)


class MLflowOncePerStep(MLflowCallback):
    """transformers' MLflow logging, less the values the run already holds at that step: a resumed run
    recomputes the steps between its checkpoint and the interruption (dpo_exp.tracking.unlogged)."""

    def on_log(self, args, state, control, logs, model=None, **kwargs):
        from dpo_exp.tracking import unlogged

        super().on_log(args, state, control, unlogged(logs or {}, state.global_step), model=model, **kwargs)


class StopOnNonFinite(TrainerCallback):
    """Stop cleanly when the loss is NaN/inf: the last checkpoint stays the last good one."""

    def __init__(self):
        self.bad_step: int | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.bad_step = state.global_step
            control.should_training_stop = True
            control.should_save = False
            print(f"[dpo_exp] loss is {loss} at step {state.global_step}: stopping; the last checkpoint is kept. "
                  "Try a lower train.learning_rate or a larger beta.", file=sys.stderr, flush=True)


def computes_in_bf16(cfg: Config, model) -> bool:
    """Whether the trainer should run under bf16 autocast.

    A 4-bit model computes in bf16 (bnb_4bit_compute_dtype) whatever dtype its unquantized weights
    were loaded in (hardware.dtype=float32 keeps embeddings, norms and LM head in fp32): read from the
    first parameter, that would turn autocast off and run the LM head and LoRA layers in fp32.
    """
    return cfg.hardware.load_in_4bit or next(model.parameters()).dtype == torch.bfloat16


def build_trainer(cfg: Config, *, model, ref_model, tokenizer, train_rows, eval_rows, run_dir: Path, run_name: str,
                  peft_config, resuming: bool = False) -> DPOExpTrainer:
    import datasets
    from transformers.trainer_callback import PrinterCallback

    from dpo_exp.data import to_dataset

    datasets.disable_progress_bars()  # per-map bars; TRL's reference pass keeps its own progress bar

    # accelerate turns DeepSpeed off when told use_cpu; DeepSpeed finds the CPU by itself.
    on_cpu = next(model.parameters()).device.type == "cpu" and not distributed.uses_deepspeed(cfg)
    args = dpo_config(cfg, run_dir, has_eval=bool(eval_rows), run_name=run_name, bf16=computes_in_bf16(cfg, model),
                      use_cpu=on_cpu, resuming=resuming)
    kl_prompts = [row["prompt"] for row in eval_rows[: cfg.eval.kl_prompts]]
    trainer = DPOExpTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=to_dataset(train_rows),
        eval_dataset=to_dataset(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[ConsoleProgress(), StopOnNonFinite(),
                   DPOMonitor(kl_bound=cfg.eval.monitor_kl_bound, patience=cfg.eval.monitor_patience)],
        kl_prompts=kl_prompts,
        kl_samples_per_prompt=cfg.eval.kl_samples_per_prompt,
        kl_max_new_tokens=cfg.eval.kl_max_new_tokens,
        group_by_length=cfg.train.group_by_length,
        forward=cfg.train.forward.value,
        ref_cache_dir=Path(cfg.paths.cache).expanduser() / "ref_logps" if cfg.train.cache_ref_log_probs else None,
    )
    if cfg.eval.cache_start:
        trainer.start_eval_cache_dir = Path(cfg.paths.cache).expanduser() / "eval_start"
    trainer.remove_callback(PrinterCallback)  # raw log dicts; ConsoleProgress prints a readable line
    handler = trainer.callback_handler
    handler.callbacks = [MLflowOncePerStep() if type(c) is MLflowCallback else c for c in handler.callbacks]
    return trainer


def check_lengths(cfg: Config, tokenizer, splits, audited=None) -> dict[str, str]:
    """Fail when train.max_length leaves no room for a reply after the prompts of every train (or every
    eval) pair: TRL drops such pairs, and with none left it crashes. Fewer such pairs, and pairs that
    lose the end of a reply, are warnings: {name: message}. Counted as TRL tokenizes: the chat template
    over the prompt (with the generation prompt), and over prompt + reply.

    `audited`: the pre-train data audit's report. It counted and reported both already (and stops the
    run itself with data.audit=error), so then only the error is left to give, and only when the audit
    found a prompt too long."""
    if audited is not None and not any(c.count for c in audited.checks if c.name == "prompt_too_long"):
        return {}

    def length(messages: list[dict], **kwargs) -> int:
        return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])

    limit = cfg.train.max_length
    rows = [*splits.train, *splits.eval]
    prompts = [length(r["prompt"], add_generation_prompt=True) for r in rows]
    # A reply takes at most one token per character plus its template's few: skip tokenizing the
    # pairs when even that bound fits (the usual case, so the check costs one pass over the prompts).
    reply_chars = [max(sum(len(m["content"]) + 16 for m in r[k]) for k in ("chosen", "rejected")) for r in rows]
    if all(p + c <= limit for p, c in zip(prompts, reply_chars)):
        pairs = [p + c for p, c in zip(prompts, reply_chars)]
    else:
        pairs = [max(length(r["prompt"] + r["chosen"]), length(r["prompt"] + r["rejected"])) for r in rows]
    fits = max(pairs, default=0)
    n_train = len(splits.train)
    dropped_train = sum(n >= limit for n in prompts[:n_train])
    dropped_eval = sum(n >= limit for n in prompts[n_train:])
    dropped = dropped_train + dropped_eval
    if dropped_train == n_train or (splits.eval and dropped_eval == len(splits.eval)):
        raise UserError(
            f"train.max_length={limit} is shorter than the prompts: {dropped} of {len(rows)} pairs have a prompt of "
            f"{limit} tokens or more (the longest: {max(prompts)}), which leaves no room for a reply, so TRL would "
            f"drop them, and no {'train' if dropped_train == n_train else 'eval'} pair would be left. Fix: "
            f"train.max_length={fits} fits every pair (prompt + reply), or filter out long rows.")
    found = {}
    if dropped and audited is None:
        found["dropped"] = (f"{dropped} of {len(rows)} pairs have a prompt of train.max_length={limit} tokens or more "
                            f"and are dropped (no room for a reply); train.max_length={fits} fits every pair.")
    cut = sum(limit > p and n > limit for p, n in zip(prompts, pairs))
    if cut and audited is None:
        found["truncated"] = (f"{cut} of {len(rows)} pairs are longer than train.max_length={limit} tokens and lose "
                              f"the end of their reply; train.max_length={fits} fits every pair.")
    return found


def final_metrics(trainer: DPOExpTrainer) -> dict[str, float]:
    """Last logged value of each train and eval metric (what the summary shows)."""
    last: dict[str, float] = {}
    for entry in trainer.state.log_history:
        for k, v in entry.items():
            if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                last[k] = float(v)
    return last
