"""SFT stage: TRL's SFTTrainer on the chosen replies of the preference data.

`stage=sft` trains only this; `stage=sft_dpo` then continues with DPO from the SFT adapter, and
TRL makes the reference a frozen copy of that adapter ('ref'), so DPO is measured against the SFT
model, as in the usual base -> SFT -> SFT+DPO workflow. The SFT adapter is saved in
`<run dir>/sft_adapter` (a resumed run reuses it instead of training again).

SFT metrics go to MLflow with an `sft/` prefix so they never collide with DPO's `loss`.
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from dpo_exp.config import Config

ADAPTER_DIR = "sft_adapter"


class PrefixedMLflowLogger(TrainerCallback):
    """Logs the SFT trainer's numbers as `sft/<name>` on the active MLflow run, and its progress."""

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        # state.max_steps is the Trainer's own count (epochs, accumulation, processes); known from here on
        if state.is_world_process_zero:
            rows = f" on {len(train_dataloader.dataset)} chosen replies" if train_dataloader is not None else ""
            print(f"[dpo_exp] sft: {state.max_steps} steps{rows}", flush=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        import mlflow

        from dpo_exp.tracking import unlogged

        # unlogged: an SFT stage interrupted before its adapter was saved runs again on resume
        metrics = unlogged({f"sft/{k}": float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))},
                           state.global_step)
        if metrics and mlflow.active_run() is not None:
            mlflow.log_metrics(metrics, step=state.global_step)
        if "loss" in (logs or {}):
            print(f"[dpo_exp] sft step {state.global_step}/{state.max_steps} | loss {logs['loss']:.3f}", flush=True)


def sft_rows(rows: list[dict]) -> list[dict]:
    """Prompt-completion rows from preference rows: the completion is the chosen reply."""
    return [{"prompt": r["prompt"], "completion": r["chosen"]} for r in rows]


def train_sft(cfg: Config, *, model, tokenizer, train_rows: list[dict], run_dir: Path, peft_config):
    """The model with a trained SFT adapter (named 'default'), saved to run_dir/sft_adapter."""
    from datasets import Dataset
    from peft import PeftModel
    from trl import SFTConfig, SFTTrainer

    from dpo_exp.train import computes_in_bf16

    out = run_dir / ADAPTER_DIR
    if (out / "adapter_config.json").is_file():
        print(f"[dpo_exp] sft: reusing the finished SFT adapter in {out}", flush=True)
        return PeftModel.from_pretrained(model, str(out), is_trainable=True)
    on_cpu = next(model.parameters()).device.type == "cpu"
    args = SFTConfig(
        output_dir=str(run_dir / "sft"),
        learning_rate=cfg.sft.learning_rate,
        num_train_epochs=cfg.sft.num_epochs,
        max_steps=cfg.sft.max_steps,
        per_device_train_batch_size=cfg.train.batch_size,
        gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
        warmup_steps=cfg.train.warmup_ratio,
        lr_scheduler_type=cfg.train.lr_scheduler.value,
        max_length=cfg.train.max_length,
        logging_steps=cfg.train.logging_steps,
        seed=cfg.train.seed,
        bf16=computes_in_bf16(cfg, model),  # 4-bit: bf16 compute over upcast fp32 weights
        use_cpu=on_cpu,
        # transformers 5's name; the old `gradient_checkpointing` warns a FutureWarning on every run.
        activation_checkpointing=cfg.hardware.gradient_checkpointing,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(sft_rows(train_rows)),
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[PrefixedMLflowLogger()])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.save_model(str(out))
    return trainer.model
