"""`python -m dpo_exp`: one DPO run (or, with -m, a sweep of runs), top to bottom.

    1. compose and validate the config; check the store and hardware   dpo_exp.config, runs, models
    2. load and check the preference data; find the model's files        dpo_exp.data, models (+ the data
                                                                         audit, dpo_exp.data.audit)
    3. open the run's record: directory, run_state.json, MLflow run      dpo_exp.runs (new or resumed)
    4. load the model and tokenizer                                      dpo_exp.models
    5. train with TRL's DPOTrainer                                       dpo_exp.train (KL at every evaluation)
    6. evaluate: held-out before/after                                   dpo_exp.evaluate (+ the eval.behaviour
                                                                         metric plug-in)
    7. save the adapter, log artifacts, print a summary

Everything that can be wrong with the user's input (config values, data rows, model files, the
tracking store, the hardware) is checked in steps 1-2, before any model is loaded or any run is
recorded; what needs the model (LoRA targets, lengths) right after step 4. Heavy libraries (torch,
TRL, PEFT) are imported only from step 4, so `--help` and `--cfg job` answer at once."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dpo_exp import config, distributed, plugins, runs
from dpo_exp.cli import hydra_app, log, run_command
from dpo_exp.config import UserError

config.register()


def run(cfg: DictConfig) -> dict:
    from dpo_exp import data, models, tracking
    from dpo_exp.data import audit as data_audit
    from dpo_exp.eval import behaviour

    job = runs.Job.from_hydra(cfg)  # what the command line asks for: run dir, name, MLflow URI, sweep parent
    try:
        # 1. config, and what it points at: the tracking store, the hardware; the behaviour metric is a
        # plug-in, built now so that a bad one fails before any work
        conf = config.to_object(cfg)
        metric = behaviour.from_config(conf.eval.behaviour)
        distributed.check(conf)
        runs.open_store(job.uri, job.outputs)  # the store checked; runs a dead process left RUNNING marked KILLED
        models.check_environment(conf)
        # 2. data (every row parsed and checked before any model work), and the model's files
        splits = data.load_splits(conf.data, conf.train.seed)
        heldout = data.load_heldout(conf.data.heldout_path, conf.data.system_prompt) if conf.data.heldout_path else []
        if metric is not None:
            plugins.require_fields(metric, "eval.behaviour", heldout, conf.data.heldout_path)
        models.check_available(conf.model)
        # data.audit: tokenizer only, seconds; error mode stops here (rank 0 audits, every rank stops)
        audit = distributed.from_main(lambda: data_audit.pretrain(conf, splits, heldout))
        # 3. which run this is: a new one, or the unfinished run of this config (resume=true, sweeps)
        previous = runs.previous_run(job)
    except UserError as e:
        job.record_failure(e)  # in a sweep, the summary lists this job as FAILED, with the reason
        raise
    if previous and previous.finished:
        return runs.skip_finished(job, previous)
    heldout = heldout[: conf.eval.heldout_max_prompts] if conf.eval.heldout_max_prompts else heldout
    warnings = data.size_warnings(splits, conf, audited=audit is not None)
    log(f"data: {splits.source}: {len(splits.train)} train / {len(splits.eval)} eval pairs"
        + (f", {splits.skipped} malformed rows skipped (data.on_error=skip)" if splits.skipped else "")
        + (f"; {len(heldout)} held-out prompts" if heldout else ""))
    for message in warnings.values():
        log(f"warning: {message}")
    log(f"MLflow: {job.uri} (experiment '{conf.tracking.experiment}')")

    # 4-7. the run's record (directory, run_state.json, MLflow run) stays open while it trains; it
    # ends FINISHED, FAILED (any error) or KILLED (Ctrl-C, SIGTERM): dpo_exp.runs.open_run
    started = time.time()
    with runs.open_run(job, conf, cfg, previous, warnings) as record:
        log(f"run '{job.run_name}' -> {record.dir}")
        if audit is not None and distributed.is_main():  # the audit ran before the run existed: it joins it now
            data_audit.log_to_active_run(audit, data_audit.write(audit, record.dir / "audit"), "audit")
        summary = train_and_evaluate(conf, splits, heldout, record, metric, audit)
        summary.update(run_id=record.mlflow_run_id, run_dir=str(record.dir), minutes=(time.time() - started) / 60)
        if metric is not None:  # what print_summary shows, also when a finished run is found again
            summary["behaviour"] = {"name": metric.name, "headline": [list(h) for h in metric.headline]}
            tracking.set_tags({tracking.TAG_HEADLINE: ",".join(k for k, _ in metric.headline)})
        record.summary = summary
    if not distributed.is_main():
        return summary
    print_summary(summary, job.uri)
    if conf.stage == config.Stage.sft_dpo and heldout:
        three_way(list(HydraConfig.get().overrides.task), record.dir)
    return summary


def three_way(overrides: list[str], run_dir: Path) -> None:
    """stage=sft_dpo: base vs SFT vs SFT+DPO on held-out data (python -m dpo_exp.eval), no manual step."""
    import subprocess

    keep = [o for o in overrides if not o.lstrip("+~").startswith(("resume", "hydra", "stage"))]
    cmd = [sys.executable, "-m", "dpo_exp.eval", *keep, f"eval_models.sft={run_dir / 'sft_adapter'}",
           f"eval_models.sft_dpo={run_dir / 'adapter'}", f"hydra.run.dir={run_dir / 'three_way'}"]
    log("comparing base, SFT and SFT+DPO: " + " ".join(shlex.quote(c) for c in cmd[1:]))
    result = subprocess.run(cmd)
    if result.returncode != 0:
        log(f"the three-way comparison failed (exit {result.returncode}); rerun the command above to retry.")


def train_and_evaluate(conf: config.Config, splits, heldout: list[dict], record: runs.Run, metric=None,
                       audit=None) -> dict:
    os.environ.setdefault("MLFLOW_MAX_LOG_PARAMS", "0")  # params are our flattened config, not TrainingArguments
    from transformers import set_seed

    from dpo_exp import evaluate, models, tracking, train

    run_dir = record.dir

    # 4. model (seeded first: LoRA's initial A matrices are random)
    set_seed(conf.train.seed)
    t0 = time.time()
    corpus = [m["content"] for row in splits.train + splits.eval for m in row["prompt"] + row["chosen"] + row["rejected"]]
    tokenizer, model, ref_model = models.load(conf, corpus)
    log(f"model '{conf.model.name}' loaded on {model.device} ({model.dtype}) in {time.time() - t0:.1f} s")
    # what only the loaded model and tokenizer can tell: LoRA targets that exist, pairs that fit
    models.check_lora_targets(model, conf)
    length_warnings = train.check_lengths(conf, tokenizer, splits, audit)
    for message in length_warnings.values():
        log(f"warning: {message}")
    tracking.set_tags({runs.TAG_WARNING + key: message for key, message in length_warnings.items()})

    # 5. train (SFT first when the stage asks for it)
    peft_config = models.peft_config(conf.lora)
    if conf.stage != config.Stage.dpo:
        from dpo_exp import sft

        model = sft.train_sft(conf, model=model, tokenizer=tokenizer, train_rows=splits.train, run_dir=run_dir,
                              peft_config=peft_config)
        peft_config = None  # DPO continues the SFT adapter; TRL keeps a frozen copy as the reference
        if conf.stage == config.Stage.sft:
            return finish_sft_only(conf, model, tokenizer, heldout, run_dir, metric)
    trainer = train.build_trainer(conf, model=model, ref_model=ref_model, tokenizer=tokenizer,
                                  train_rows=splits.train, eval_rows=splits.eval, run_dir=run_dir,
                                  run_name=record.name, peft_config=peft_config, resuming=record.checkpoint is not None)
    tracking.log_dict_artifact(trainer.args.to_dict(), "dpo_config.json")
    tracking.log_parallelism(trainer)
    tracking.set_tags({f"dpo_exp.ref_logps.{split}": how for split, how in trainer.ref_cache_events.items()})
    trainer.train(resume_from_checkpoint=str(record.checkpoint) if record.checkpoint else None)
    if trainer.start_eval_event:
        tracking.set_tags({"dpo_exp.eval_start": trainer.start_eval_event})
    stopper = next(c for c in trainer.callback_handler.callbacks if isinstance(c, train.StopOnNonFinite))
    if stopper.bad_step is not None:
        raise UserError(f"Training diverged: the loss was not finite at step {stopper.bad_step}, so the run stopped "
                        f"(marked FAILED in MLflow); the last good checkpoint is in {run_dir}. Fix: lower "
                        "train.learning_rate or raise beta, then start again (or resume=true with the same config).")
    step = trainer.state.global_step
    evaluated_last = any("eval_loss" in e and e.get("step") == step for e in trainer.state.log_history)
    if splits.eval and not evaluated_last:
        trainer.evaluate()  # final point of the eval curves, KL included

    # 6. held-out before/after generations
    metrics = train.final_metrics(trainer)
    metrics.update(heldout_before_after(conf, trainer.model, tokenizer, heldout, evaluate.reference_context(trainer),
                                        step, metric, reference_hash=trainer.reference_weights_hash))

    # 7. save and log the adapter (or full model), tokenizer included
    trainer.save_model(str(run_dir / "adapter"))
    if conf.tracking.log_adapter:
        tracking.log_folder(run_dir / "adapter", "adapter")
    return {"metrics": metrics, "steps": step}


def heldout_before_after(conf: config.Config, model, tokenizer, heldout: list[dict], as_reference, step: int,
                         metric=None, reference_hash=None) -> dict:
    """Greedy generations of the reference (before) and the trained model (after), logged as a table, and the
    behaviour metric (`eval.behaviour`, if any) on them: `heldout/{before,after}/<key>`. `reference_hash`: how to
    get the reference's weights hash when the trainer has it (asked only when the replies' cache needs it)."""
    from dpo_exp import evaluate, tracking

    if not heldout or conf.eval.max_new_tokens <= 0:
        return {}
    t0 = time.time()
    decoding = dict(max_new_tokens=conf.eval.max_new_tokens, batch_size=conf.eval.generation_batch_size)
    cache_dir = Path(conf.paths.cache).expanduser() / "heldout_before" if conf.eval.cache_before else None
    before, reused = evaluate.reference_replies(model, tokenizer, heldout, as_reference, cache_dir=cache_dir,
                                                reference_hash=reference_hash, **decoding)
    tracking.set_tags({"dpo_exp.heldout_before": "cached" if reused else "computed"})
    rows = evaluate.before_after(model, tokenizer, heldout, before, **decoding)
    behaviour = {}
    if metric is not None:
        behaviour = evaluate.behaviour_metrics(metric, heldout, rows)
        if hasattr(metric, "extra_metrics"):  # optional, model-based (e.g. a probe of the model's lean)
            extra = metric.extra_metrics(model, tokenizer, heldout, as_reference, rows, conf.train.eval_batch_size)
            behaviour.update({f"heldout/{k}": float(v) for k, v in extra.items()})
    tracking.log_metrics(behaviour, step)
    tracking.log_table(rows, "heldout_generations.json")
    tracking.log_text_artifact(generations_markdown(rows), "heldout_generations.md")
    log(f"held-out before/after generations: {len(rows)} prompts in {time.time() - t0:.1f} s"
        + (" (before: reused from an earlier run with the same reference and prompts)" if reused else ""))
    return behaviour


def finish_sft_only(conf: config.Config, model, tokenizer, heldout: list[dict], run_dir: Path, metric=None) -> dict:
    """stage=sft: before/after against the base model (adapter disabled), and the SFT adapter."""
    from dpo_exp import evaluate, sft, tracking

    metrics = heldout_before_after(conf, model, tokenizer, heldout, evaluate.adapter_disabled(model), step=0,
                                   metric=metric)
    if conf.tracking.log_adapter:
        tracking.log_folder(run_dir / sft.ADAPTER_DIR, "adapter")
    return {"metrics": metrics, "steps": 0}


def generations_markdown(rows: list[dict]) -> str:
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    # Held-out rows may differ in their fields (a task's kinds of prompt): every field, once.
    extra = list(dict.fromkeys(k for r in rows for k in r if k not in ("prompt", "before", "after")))
    head = ["prompt", *extra, "before (reference)", "after (policy)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(cell(r.get(k, "")) for k in ["prompt", *extra, "before", "after"]) + " |")
    return "\n".join(lines) + "\n"


def print_summary(summary: dict, uri: str) -> None:
    from dpo_exp.tracking import ui_command

    m = summary.get("metrics", {})

    def fmt(key: str) -> str:
        return f"{m[key]:.3f}" if key in m else "n/a"

    print("\n== dpo_exp summary ==")
    print(f"steps: {summary.get('steps')}   wall time: {summary.get('minutes', 0):.1f} min")
    print(f"train: loss {fmt('loss')}  margin {fmt('rewards/margins')}  accuracy {fmt('rewards/accuracies')}")
    print(f"eval:  loss {fmt('eval_loss')}  margin {fmt('eval_rewards/margins')}  accuracy "
          f"{fmt('eval_rewards/accuracies')}")
    print(f"KL(policy||ref), nats/sequence: {fmt('eval_kl/sampled_full_vocab')} (full-vocab estimate), "
          f"{fmt('eval_kl/sampled')} +- {fmt('eval_kl/sampled_stderr')} (sampled log-ratio)")
    b = summary.get("behaviour")
    shown = [(k, desc) for k, desc in (b or {}).get("headline", []) if f"heldout/after/{k}" in m]
    if shown:  # the behaviour metric's headline rates, whichever metric it is
        print(f"held-out {b['name']} (before -> after): " + "; ".join(
            f"{desc} {fmt(f'heldout/before/{k}')} -> {fmt(f'heldout/after/{k}')}" for k, desc in shown))
    print(f"run dir: {summary.get('run_dir')}   (adapter in adapter/, resolved config in config.yaml)")
    print(f"MLflow run {summary.get('run_id')} in {uri}")
    print(f"look at it: {ui_command(uri)}\n", flush=True)


@hydra_app("config")
def main(cfg: DictConfig) -> float | None:
    summary = run(cfg)
    # The returned value is what sweepers (e.g. Optuna) optimise.
    return summary.get("metrics", {}).get("eval_rewards/accuracies")


if __name__ == "__main__":
    run_command(main, sys.argv, prepare=distributed.setup)  # torchrun / accelerate launch: join the group first
