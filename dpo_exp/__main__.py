"""`python -m dpo_exp`: one DPO run (or, with -m, a sweep of runs), top to bottom.

    1. compose and validate the config         dpo_exp.config   (conf/ + structured schema)
    2. load and check the preference data      dpo_exp.data     (+ the data audit, dpo_exp.data.audit)
    3. open the MLflow run                     dpo_exp.tracking
    4. load the model and tokenizer            dpo_exp.models
    5. train with TRL's DPOTrainer             dpo_exp.train    (KL estimate at every evaluation)
    6. evaluate: held-out before/after         dpo_exp.evaluate (+ the eval.behaviour metric plug-in)
    7. save the adapter, log artifacts, print a summary

Everything that can be wrong with the user's input (config values, data rows, model files, the
tracking server) is checked in steps 1-3, before any model is loaded. Heavy libraries (torch,
TRL, PEFT) are imported only from step 4, so `--help` and `--cfg job` answer at once.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from dpo_exp import config, distributed, plugins, runs, sweep
from dpo_exp.cli import interrupt_on_sigterm, log, numeric_beta
from dpo_exp.config import UserError

config.register()


def run(cfg: DictConfig) -> dict:
    from dpo_exp import data, models, tracking
    from dpo_exp.data import audit as data_audit
    from dpo_exp.eval import behaviour

    hydra_cfg = HydraConfig.get()
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    parent_run_id, parent_uri = sweep.job_parent(hydra_cfg) if sweeping else (None, None)
    run_name = cfg.tracking.run_name or config.describe_overrides(list(hydra_cfg.overrides.task))
    uri = tracking.resolve_uri_from(cfg.tracking.uri or parent_uri)  # a sweep job logs beside its parent
    tracking.check_reachable(uri)
    try:
        # 1. config (the behaviour metric is a plug-in: built now, so a bad one fails before any work)
        conf = config.to_object(cfg)
        metric = behaviour.from_config(conf.eval.behaviour)
        distributed.check(conf)
        # 2. data (every row parsed and checked before any model work)
        splits = data.load_splits(conf.data, conf.train.seed)
        heldout = data.load_heldout(conf.data.heldout_path, conf.data.system_prompt) if conf.data.heldout_path else []
        if metric is not None:
            plugins.require_fields(metric, "eval.behaviour", heldout, conf.data.heldout_path)
        models.check_available(conf.model)
        # data.audit: tokenizer only, seconds; error mode stops here (rank 0 audits, every rank stops)
        audit = distributed.from_main(lambda: data_audit.pretrain(conf, splits, heldout))
    except UserError as e:
        if sweeping:  # the sweep summary lists this job as FAILED, with the reason
            tracking.record_failed_run(cfg, uri=uri, run_name=run_name, parent_run_id=parent_run_id, error=str(e))
        raise
    heldout = heldout[: conf.eval.heldout_max_prompts] if conf.eval.heldout_max_prompts else heldout
    run_dir = Path(hydra_cfg.runtime.output_dir).resolve()
    fingerprint = config.fingerprint(cfg)

    resume_from = None
    state = runs.new_state(fingerprint, uri)
    if conf.resume or sweeping:  # in a sweep, finished jobs are skipped and failed ones resumed
        # A sweep job's own directory counts: a Slurm job requeued after a timeout continues in it.
        previous = distributed.from_main(lambda: runs.find_previous(
            Path(conf.paths.outputs).resolve(), fingerprint, exclude=None if sweeping else run_dir))
        if previous and previous[1].status == "finished":
            log(f"this config already finished in {previous[0]}; nothing to do (skipped).")
            if parent_run_id and previous[1].mlflow_run_id:  # list it under this sweep's parent too
                tracking.set_parent(uri, previous[1].mlflow_run_id, parent_run_id)
            return previous[1].summary or {}
        if previous:
            run_dir, state = previous
            resume_from = runs.last_checkpoint(run_dir)
            log(f"resuming: continuing {run_dir} from {resume_from or 'the start (no checkpoint yet)'}")
        elif conf.resume:
            log("resume=true: no earlier run of this config found; starting a new one.")

    log(f"run '{run_name}' -> {run_dir}")
    log(f"data: {splits.source}: {len(splits.train)} train / {len(splits.eval)} eval pairs"
        + (f", {splits.skipped} malformed rows skipped (data.on_error=skip)" if splits.skipped else "")
        + (f"; {len(heldout)} held-out prompts" if heldout else ""))
    log(f"MLflow: {uri} (experiment '{conf.tracking.experiment}')")

    # 3. tracking
    state.tracking_uri = uri
    command = "python -m dpo_exp " + " ".join(shlex.quote(o) for o in hydra_cfg.overrides.task)
    interrupt_on_sigterm()  # a killed run is marked KILLED, not left RUNNING
    started = time.time()
    try:
        with tracking.mlflow_run(conf, uri=uri, run_name=run_name, fingerprint=fingerprint, run_dir=run_dir,
                                 command=command, run_id=state.mlflow_run_id, parent_run_id=parent_run_id) as run_id:
            state.mlflow_run_id, state.status = run_id, "running"
            state.save(run_dir)
            if distributed.is_main():
                OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
            tracking.log_text_artifact(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
            if audit is not None and distributed.is_main():  # the audit ran before the run existed: its findings join it now
                data_audit.log_to_active_run(audit, data_audit.write(audit, run_dir / "audit"), "audit")
            summary = train_and_evaluate(conf, splits, heldout, run_dir, run_name, metric)
            summary.update(run_id=run_id, run_dir=str(run_dir), minutes=(time.time() - started) / 60)
            if metric is not None:  # what print_summary shows, also when a finished run is found again
                summary["behaviour"] = {"name": metric.name, "headline": [list(h) for h in metric.headline]}
    except BaseException:
        state.status = "failed"
        state.save(run_dir)
        raise
    state.status, state.summary = "finished", summary
    state.save(run_dir)
    if not distributed.is_main():
        return summary
    print_summary(summary, uri)
    if conf.stage == config.Stage.sft_dpo and heldout:
        three_way(list(hydra_cfg.overrides.task), run_dir)
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


def train_and_evaluate(conf: config.Config, splits, heldout: list[dict], run_dir: Path, run_name: str,
                       metric=None) -> dict:
    os.environ.setdefault("MLFLOW_MAX_LOG_PARAMS", "0")  # params are our flattened config, not TrainingArguments
    from transformers import set_seed

    from dpo_exp import evaluate, models, tracking, train

    # 4. model (seeded first: LoRA's initial A matrices are random)
    set_seed(conf.train.seed)
    t0 = time.time()
    corpus = [m["content"] for row in splits.train + splits.eval for m in row["prompt"] + row["chosen"] + row["rejected"]]
    tokenizer, model, ref_model = models.load(conf, corpus)
    log(f"model '{conf.model.name}' loaded on {model.device} ({model.dtype}) in {time.time() - t0:.1f} s")

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
                                  run_name=run_name, peft_config=peft_config)
    tracking.log_dict_artifact(trainer.args.to_dict(), "dpo_config.json")
    distributed.report(trainer)
    tracking.set_tags({f"dpo_exp.ref_logps.{split}": how for split, how in trainer.ref_cache_events.items()})
    checkpoint = runs.last_checkpoint(run_dir)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
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
                                        step, metric))

    # 7. save and log the adapter (or full model), tokenizer included
    trainer.save_model(str(run_dir / "adapter"))
    if conf.tracking.log_adapter:
        tracking.log_folder(run_dir / "adapter", "adapter")
    return {"metrics": metrics, "steps": step}


def heldout_before_after(conf: config.Config, model, tokenizer, heldout: list[dict], as_reference, step: int,
                         metric=None) -> dict:
    """Greedy generations of the reference (before) and the trained model (after), logged as a table, and the
    behaviour metric (`eval.behaviour`, if any) on them: `heldout/{before,after}/<key>`."""
    from dpo_exp import evaluate, tracking

    if not heldout or conf.eval.max_new_tokens <= 0:
        return {}
    t0 = time.time()
    rows = evaluate.before_after(model, tokenizer, heldout, as_reference, max_new_tokens=conf.eval.max_new_tokens,
                                 batch_size=conf.train.eval_batch_size)
    behaviour = {}
    if metric is not None:
        behaviour = evaluate.behaviour_metrics(metric, heldout, rows)
        if hasattr(metric, "extra_metrics"):  # optional, model-based (ClaimStance: the verdict AUC probe)
            extra = metric.extra_metrics(model, tokenizer, heldout, as_reference, rows, conf.train.eval_batch_size)
            behaviour.update({f"heldout/{k}": float(v) for k, v in extra.items()})
    tracking.log_metrics(behaviour, step)
    tracking.log_table(rows, "heldout_generations.json")
    tracking.log_text_artifact(generations_markdown(rows), "heldout_generations.md")
    log(f"held-out before/after generations: {len(rows)} prompts in {time.time() - t0:.1f} s")
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

    extra = [k for k in rows[0] if k not in ("prompt", "before", "after")]
    head = ["prompt", *extra, "before (reference)", "after (policy)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(cell(r[k]) for k in ["prompt", *extra, "before", "after"]) + " |")
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        summary = run(cfg)
    except UserError as e:
        print(f"\ndpo_exp: error: {e}\n", file=sys.stderr, flush=True)
        if not sweeping:
            sys.exit(2)
        return None  # in a sweep, one bad job does not stop the others
    except Exception:
        if not sweeping:
            raise
        # The job's MLflow run is already marked FAILED; the other jobs go on.
        print(f"\ndpo_exp: job {HydraConfig.get().job.num} failed:\n{traceback.format_exc()}", file=sys.stderr,
              flush=True)
        return None
    # The returned value is what sweepers (e.g. Optuna) optimise.
    return summary.get("metrics", {}).get("eval_rewards/accuracies")


if __name__ == "__main__":
    try:
        sys.argv = distributed.setup(numeric_beta(sys.argv))  # torchrun / accelerate launch: join the group
    except UserError as e:
        print(f"\ndpo_exp: error: {e}\n", file=sys.stderr, flush=True)
        sys.exit(2)
    main()
