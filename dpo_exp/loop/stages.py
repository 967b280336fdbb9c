"""The loop's stages, one function each, and the state that makes a killed loop resumable.

`Loop` holds what every stage needs (the config, the parent run, the behaviour metric, the judge, the dev and
held-out rows, the state). `Loop.stage(r, name, fn)` runs a stage once: a stage recorded as done in
`<loop dir>/loop_state.json` is skipped on a resumed run, with what it made read back; a stage killed midway
runs again (the build's reply and verdict cache and the training's last checkpoint make that cheap; a version
is found again by its loop run and round before one is registered). Each stage runs as a child MLflow run of the
loop's parent run (`runs.child_job` + `runs.tracked`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from dpo_exp import config, runs
from dpo_exp.cli import log
from dpo_exp.config import UserError
from dpo_exp.loop import gate as gates
from dpo_exp.loop import registry
from dpo_exp.loop.schema import LoopAppConfig, LoopData, LoopInit, LoopReference, min_gain

STATE_FILE = "loop_state.json"
START = "start"  # the key of the starting model; candidates are "round<r>"


# --- state ------------------------------------------------------------------------------------------


@dataclass
class State:
    """What the loop has done so far: per round and stage its result; the models (start and candidates) with their
    adapter folder and registered version; the champion's key; evaluations per model and split."""

    rounds: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    champion: str | None = None
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> split -> {"metrics", "replies"}
    child_runs: dict[str, str] = field(default_factory=dict)  # "<round>/<stage>" -> MLflow run id (reopened)
    judge: str | None = None
    stopped: str | None = None  # why the loop ended before loop.rounds (a failed gate with on_fail=stop)

    @classmethod
    def load(cls, folder: Path) -> "State":
        try:
            data = json.loads((folder / STATE_FILE).read_text())
        except (OSError, ValueError):
            return cls()
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, folder: Path) -> None:
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=1))
        tmp.replace(folder / STATE_FILE)


# --- what every stage needs --------------------------------------------------------------------------


@dataclass
class Loop:
    conf: LoopAppConfig
    cfg: DictConfig
    job: runs.Job
    parent: runs.Run | None
    metric: Any
    judge: Any
    dev: list[dict]
    heldout: list[dict]
    corpus: list[str]  # what model=tiny trains its tokenizer on: training's (data.*), so `python -m dpo_exp.eval` agrees
    start_adapter: Path | None  # loop.start resolved (None: the base model)
    state: State = field(default_factory=State)

    @property
    def dir(self) -> Path:
        return self.parent.dir

    @property
    def name(self) -> str:
        return self.conf.loop.model_name

    @property
    def champion(self) -> dict:
        return self.state.models[self.state.champion]

    def save(self) -> None:
        self.state.save(self.dir)

    def stage(self, r: int, name: str, fn: Callable[["Loop", int], dict]) -> dict:
        done = self.state.rounds.get(str(r), {}).get(name)
        if done is not None:
            log(f"round {r} {name}: done earlier, skipped (resumed loop)")
            return done
        t0 = time.time()
        log(f"round {r} {name} ...")
        result = fn(self, r)
        result["seconds"] = round(time.time() - t0, 1)
        self.state.rounds.setdefault(str(r), {})[name] = result
        self.save()
        return result

    def child(self, r: int, name: str, params: dict | None = None, tags: dict | None = None, reopen: bool = False):
        """A stage's child MLflow run (the active run inside the block). `reopen`: the same run as an earlier,
        killed attempt of this stage (training continues its metrics there)."""
        folder = self.dir / f"round_{r}" / name
        folder.mkdir(parents=True, exist_ok=True)
        job = runs.child_job(self.job, self.parent, folder, f"round {r} {name}")
        key = f"{r}/{name}"
        run_id = self.state.child_runs.get(key) if reopen else None
        return _child(self, key, job, params or {}, {registry.TAG + "stage": name, registry.TAG + "round": str(r),
                                                     "dpo_exp.role": "loop stage", **(tags or {})}, run_id, folder)


class _child:
    """`runs.tracked` for a stage, recording the run id before the work starts (so a resumed loop can reopen it)."""

    def __init__(self, loop: Loop, key, job, params, tags, run_id, folder):
        self.loop, self.key, self.folder = loop, key, folder
        self.cm = runs.tracked(job, experiment=loop.conf.tracking.experiment, params=params, tags=tags, run_id=run_id)

    def __enter__(self):
        run_id = self.cm.__enter__()
        self.loop.state.child_runs[self.key] = run_id
        self.loop.save()
        return run_id

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)


# --- before any work ---------------------------------------------------------------------------------


def prepare(conf: LoopAppConfig, cfg: DictConfig, job: runs.Job) -> Loop:
    """Everything checked before any model loads or any run is recorded: the behaviour metric and the gate's names
    in it, the dev and held-out rows, the prompts and the judge, the starting model, the model's files."""
    from dpo_exp import adapters, data, models, plugins
    from dpo_exp.data import build
    from dpo_exp.eval import behaviour

    metric = behaviour.from_config(conf.eval.behaviour)
    if metric is None:
        raise UserError("The loop's gate scores models with the task's behaviour metric, and eval.behaviour is null. "
                        "Fix: name one (eval/behaviour=NAME, conf/eval/behaviour/; a loop experiment sets its task's).")
    dev = data.load_heldout(conf.loop.dev.path, conf.data.system_prompt)
    dev = dev[: conf.loop.dev.max_prompts] if conf.loop.dev.max_prompts else dev
    if not dev:
        raise UserError(f"loop.dev.path={conf.loop.dev.path} holds no rows. Fix: point it at the dev split.")
    plugins.require_fields(metric, "eval.behaviour", dev, conf.loop.dev.path)
    empty = gates.on_empty_replies(metric, dev)  # the metric's names and row counts, no model needed
    problem = gates.check_names(conf.loop.gate, sorted(empty))
    if problem:
        raise UserError(f"Invalid gate: {problem}. Fix: name one of those metrics (higher is better unless listed "
                        "in loop.gate.lower_is_better).")
    for warning in gates.finer_than_one_reply(conf.loop.gate, gates.rows_per_metric(metric, empty)):
        log(f"warning: {warning}")
    heldout = []
    if conf.data.heldout_path:
        heldout = data.load_heldout(conf.data.heldout_path, conf.data.system_prompt)
        heldout = heldout[: conf.eval.heldout_max_prompts] if conf.eval.heldout_max_prompts else heldout
        plugins.require_fields(metric, "eval.behaviour", heldout, conf.data.heldout_path)
        overlap = {json.dumps(r["prompt"], sort_keys=True) for r in heldout} & \
                  {json.dumps(r["prompt"], sort_keys=True) for r in dev}
        if overlap:
            raise UserError(f"loop.dev.path={conf.loop.dev.path} shares {len(overlap)} conversations with the held-out "
                            f"set ({conf.data.heldout_path}); the gate must never see held-out rows. Fix: give a dev "
                            "split drawn from the training side.")
    bconf = build_conf(conf, conf.build.prompts)
    build.check(bconf, job.run_dir)
    prompts = build.load_prompts(bconf.build).prompts
    judge = build.make_judge(bconf, prompts)
    models.check_available(conf.model)
    splits = data.load_splits(conf.data, conf.train.seed)
    corpus = [m["content"] for r in splits.train + splits.eval for m in r["prompt"] + r["chosen"] + r["rejected"]]
    start = None
    if conf.loop.start:
        start = adapters.resolve("start", conf.loop.start, job.uri, job.run_dir / "start_download", key="loop.start").path
    return Loop(conf, cfg, job, None, metric, judge, dev, heldout, corpus, start)


def build_conf(conf: LoopAppConfig, prompts: str, **build: Any):
    """The build command's config (`dpo_exp.data.build.BuildAppConfig`) for this loop: its model, hardware,
    tracking, paths and judge, and `build.*` with `build` replaced."""
    from dpo_exp.data.build import BuildAppConfig

    b = dataclasses.replace(conf.build, prompts=prompts, **build)
    return BuildAppConfig(model=conf.model, hardware=conf.hardware, tracking=conf.tracking, paths=conf.paths,
                          judge=conf.judge, build=b)


# --- 1. the starting model: version 1, the first champion ---------------------------------------------


def register_start(loop: Loop, r: int) -> dict:
    """The starting model as a LoRA adapter: loop.start's, or for the base model an untrained adapter (its B
    matrices are zero: exactly the base model's outputs), logged by the child run and registered."""
    from dpo_exp import tracking

    folder = loop.dir / "start" / "adapter"
    identity = loop.start_adapter is None
    with loop.child(r, "start", tags={registry.TAG + "start": loop.conf.loop.start or "base model"}) as run_id:
        if folder.exists():
            shutil.rmtree(folder)
        if identity:
            from peft import get_peft_model

            from dpo_exp import models

            tokenizer, model, _ = load_model(loop)
            get_peft_model(model, models.peft_config(loop.conf.lora)).save_pretrained(str(folder))
            tokenizer.save_pretrained(str(folder))
        else:  # an adapter saved with another tokenizer was trained on another base (model=tiny: other data)
            from dpo_exp import adapters, models

            adapters.check_tokenizer(models.load_tokenizer(loop.conf, loop.corpus), [adapters.Source(
                "start", str(loop.conf.loop.start), loop.start_adapter, key="loop.start")])
            shutil.copytree(loop.start_adapter, folder)
        tracking.log_folder(folder, "adapter")
        c = registry.client(loop.job.uri)
        registry.ensure_model(c, loop.name, loop.conf.tracking.experiment)
        v = registry.register(c, loop.name, run_id, loop.parent.mlflow_run_id, 0, {
            "role": "start", "start": loop.conf.loop.start or "base model", "identity": str(identity).lower(),
            "model": loop.conf.model.name, "parent_version": "-", "verdict": "start (not gated)"})
        when = registry.promote(c, loop.name, v.version)
        tracking.set_tags({registry.TAG + "version": str(v.version)})
    loop.state.models[START] = {"version": str(v.version), "adapter": str(folder), "identity": identity,
                                "run_id": run_id}
    loop.state.champion = START
    log(f"starting model ({loop.conf.loop.start or 'the base model'}) registered as {loop.name} version {v.version}, "
        f"alias champion")
    return {"version": str(v.version), "run_id": run_id, "promoted_at": when}


# --- 2. collect ----------------------------------------------------------------------------------------


def collect(loop: Loop, r: int) -> dict:
    """The round's prompts: build.prompts (the task's prompts, or a prompts file) less the dev topics
    (loop.dev.exclude_by), a seeded rotation of loop.prompts_per_round of them; written as a prompts file."""
    from dpo_exp import tracking
    from dpo_exp.data import build

    conf = loop.conf
    prompts = build.load_prompts(conf.build).prompts
    field_ = conf.loop.dev.exclude_by
    excluded = 0
    if field_:
        dev_values = {json.dumps(row.get(field_)) for row in loop.dev if field_ in row}
        kept = [p for p in prompts if json.dumps(p.context.get(field_)) not in dev_values]
        excluded, prompts = len(prompts) - len(kept), kept
    if not prompts:
        raise UserError(f"No prompts left for round {r}: all of build.prompts={conf.build.prompts} share a "
                        f"{field_!r} with the dev split. Fix: give other prompts, or loop.dev.exclude_by=null.")
    n = conf.loop.prompts_per_round
    if n is not None and n < len(prompts):
        order = list(range(len(prompts)))
        random.Random(conf.build.seed).shuffle(order)
        start = (r - 1) * n
        prompts = [prompts[order[(start + i) % len(order)]] for i in range(n)]
    rows = [{"prompt": p.messages, **p.context} for p in prompts]
    with loop.child(r, "collect") as run_id:
        path = loop.dir / f"round_{r}" / "prompts.jsonl"
        digest = build.write_jsonl(rows, path)
        log_dataset(path, digest, "collect")
        tracking.log_metrics({"prompts": len(rows), "excluded_dev": excluded}, step=r)
    log(f"round {r}: {len(rows)} prompts" + (f" ({excluded} left out: their {field_} is in the dev split)"
                                             if excluded else ""))
    return {"prompts": str(path), "n": len(rows), "digest": digest, "excluded_dev": excluded, "run_id": run_id}


# --- 3. build --------------------------------------------------------------------------------------------


def build_pairs(loop: Loop, r: int) -> dict:
    """The champion writes build.n replies per prompt (sampling seed build.seed + r - 1), the judge compares them
    in both orders, pairs are selected: `dpo_exp.data.build.run` (its cache: a killed build continues)."""
    from dpo_exp.data import build

    conf, champion = loop.conf, loop.champion
    prompts = loop.state.rounds[str(r)]["collect"]["prompts"]
    folder = loop.dir / f"round_{r}" / "build"
    bconf = build_conf(conf, prompts, format=build.PromptFormat.prompts, where=None, derive=None, max_prompts=None,
                       adapter=None if champion["identity"] else champion["adapter"],
                       out=str(loop.dir / f"round_{r}" / "pairs.jsonl"), seed=conf.build.seed + r - 1)
    cfg = OmegaConf.structured(bconf)
    job = runs.child_job(loop.job, loop.parent, folder, f"round {r} build")
    summary = build.run(cfg, job, judge=loop.judge, corpus=loop.corpus,
                        experiment=conf.tracking.experiment, seed=conf.train.seed)
    out = Path(bconf.build.out)
    m = summary.metrics()
    return {"pairs": str(out), "n_pairs": summary.pairs, "digest": summary.digest, "tie_rate": _num(m["tie_rate"]),
            "prompts": summary.prompts, "run_id": summary.run_id, "judge": loop.judge.name,
            "generator": f"models:/{loop.name}/{champion['version']}"}


# --- 4. train ---------------------------------------------------------------------------------------------


def train_candidate(loop: Loop, r: int) -> dict:
    """DPO on this round's pairs (loop.data=round) or every round's (all), from the champion's adapter or a fresh
    one (loop.init), against the base or the champion (loop.reference); continues from its last checkpoint."""
    os.environ.setdefault("MLFLOW_MAX_LOG_PARAMS", "0")  # params are our flattened config, not TrainingArguments
    from dpo_exp import data, tracking, train
    from dpo_exp.config import DataFormat
    from dpo_exp.data import build

    conf, champion = loop.conf, loop.champion
    folder = loop.dir / f"round_{r}" / "train"
    rounds = range(1, r + 1) if conf.loop.data == LoopData.all else [r]
    files = [loop.state.rounds[str(k)]["build"]["pairs"] for k in rounds]
    rows = [json.loads(line) for f in files for line in Path(f).read_text().splitlines() if line.strip()]
    if not rows:
        raise UserError(f"Round {r} has no pairs to train on: the judge decided no pair among the champion's replies "
                        f"({', '.join(files)}; see the build report). Fix: more candidates or a higher temperature "
                        "(build.n, build.temperature), more prompts, or build.keep_ties=true.")
    path = loop.dir / f"round_{r}" / "train_pairs.jsonl"
    digest = build.write_jsonl(rows, path)
    data_conf = dataclasses.replace(conf.data, path=str(path), format=DataFormat.conversational, eval_path=None,
                                    where=None, split="train", heldout_path=None)
    splits = data.load_splits(data_conf, conf.train.seed)
    checkpoint = runs.last_checkpoint(folder)
    init_from = None if champion["identity"] or conf.loop.init == LoopInit.base else Path(champion["adapter"])
    ref_adapter = None if champion["identity"] or conf.loop.reference == LoopReference.base else Path(champion["adapter"])
    with loop.child(r, "train", params=config.flatten(conf), reopen=True,
                    tags={registry.TAG + "init": conf.loop.init.value, registry.TAG + "reference": conf.loop.reference.value,
                          registry.TAG + "data": conf.loop.data.value}) as run_id:
        log_dataset(path, digest, "train")
        tokenizer, model, _ = load_model(loop)
        from peft import PeftModel

        from dpo_exp import models

        peft_config, ref_model = models.peft_config(conf.lora), None
        if init_from is not None:
            model = PeftModel.from_pretrained(model, str(init_from), is_trainable=True)
            peft_config = None
            if ref_adapter is None:  # reference = the base: a separate frozen copy (TRL would copy the adapter)
                ref_model = load_model(loop)[1].eval().requires_grad_(False)
        else:
            models.check_lora_targets(model, conf)
            if ref_adapter is not None:  # a fresh adapter, measured against the champion: merged into a frozen copy
                ref_model = PeftModel.from_pretrained(load_model(loop)[1], str(ref_adapter)).merge_and_unload()
                ref_model.eval().requires_grad_(False)
        trainer = train.build_trainer(conf, model=model, ref_model=ref_model, tokenizer=tokenizer,
                                      train_rows=splits.train, eval_rows=splits.eval, run_dir=folder,
                                      run_name=f"round {r} train", peft_config=peft_config,
                                      resuming=checkpoint is not None)
        if checkpoint is not None:
            log(f"round {r} train: continuing from {checkpoint}")
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        stopper = next(c for c in trainer.callback_handler.callbacks if isinstance(c, train.StopOnNonFinite))
        if stopper.bad_step is not None:
            raise UserError(f"Round {r}'s training diverged (the loss was not finite at step {stopper.bad_step}). Fix: "
                            "lower train.learning_rate or raise beta, then run the same command again.")
        adapter = folder / "adapter"
        trainer.save_model(str(adapter))
        tracking.log_folder(adapter, "adapter")
        metrics = {k: v for k, v in train.final_metrics(trainer).items()
                   if k in ("loss", "rewards/margins", "rewards/accuracies", "eval_loss", "eval_rewards/accuracies",
                            "eval_kl/sampled_full_vocab")}
    key = f"round{r}"
    loop.state.models[key] = {"version": None, "adapter": str(adapter), "identity": False, "run_id": run_id}
    return {"run_id": run_id, "adapter": str(adapter), "steps": trainer.state.global_step, "pairs": str(path),
            "n_pairs": len(rows), "digest": digest, "metrics": metrics, "init": "champion" if init_from else "base",
            "reference": "champion" if ref_adapter else "base"}


# --- 5. gate, 7. held-out: greedy replies scored by the behaviour metric -----------------------------------


def evaluate(loop: Loop, keys: list[str], split: str) -> dict[str, dict]:
    """{model key: {"metrics", "replies"}} on the dev split or the held-out set, each computed once per model and
    kept in the state (the champion's numbers are reused from the round it was the candidate)."""
    from dpo_exp.adapters import Source
    from dpo_exp.eval.compare import BASE, ModelSet, generate

    rows = loop.dev if split == "dev" else loop.heldout
    todo = [k for k in keys if split not in loop.state.evals.get(k, {})]
    if todo and rows:
        tokenizer, base, _ = load_model(loop)
        adapters = [k for k in todo if not loop.state.models[k]["identity"]]
        ms = ModelSet(base, [Source(k, loop.state.models[k]["adapter"], Path(loop.state.models[k]["adapter"]))
                             for k in adapters])
        for k in todo:
            with ms.use(k if k in adapters else BASE) as model:
                out = generate(model, tokenizer, [row["prompt"] for row in rows], max_new_tokens=loop.conf.eval.max_new_tokens,
                               batch_size=loop.conf.train.eval_batch_size, sampling=None)
            replies = [t for t, _ in out]
            metrics = {name: float(v) for name, v in loop.metric.metrics(rows, replies).items()}
            loop.state.evals.setdefault(k, {})[split] = {"metrics": metrics, "replies": replies}
        loop.save()
    return {k: loop.state.evals.get(k, {}).get(split, {"metrics": {}, "replies": []}) for k in keys}


def gate(loop: Loop, r: int) -> dict:
    """Candidate and champion on the dev split; loop.gate decides (gate.decide); numbers and verdict recorded."""
    from dpo_exp import tracking

    conf, g = loop.conf, loop.conf.loop.gate
    champion, candidate = loop.state.champion, f"round{r}"
    with loop.child(r, "gate", tags={registry.TAG + "champion_version": str(loop.champion["version"])}) as run_id:
        ev = evaluate(loop, [champion, candidate], "dev")
        champ, cand = ev[champion]["metrics"], ev[candidate]["metrics"]

        def p_value() -> float:
            rows, a, b = loop.dev, ev[candidate]["replies"], ev[champion]["replies"]
            lower = set(g.lower_is_better)

            def score(idx: list[int]) -> float:
                sub = [rows[i] for i in idx]
                return gates.gain(g.metric, loop.metric.metrics(sub, [a[i] for i in idx]),
                                  loop.metric.metrics(sub, [b[i] for i in idx]), lower)

            return gates.paired_bootstrap(score, len(rows), g.significance.resamples, g.significance.seed)

        verdict = gates.decide(g, r, min_gain(g, r), cand, champ, p_value)
        tracking.log_metrics({**{f"dev/champion/{k}": v for k, v in champ.items() if not math.isnan(v)},
                              **{f"dev/candidate/{k}": v for k, v in cand.items() if not math.isnan(v)},
                              "gate/gain": verdict.gain if not math.isnan(verdict.gain) else -1.0,
                              "gate/passed": float(verdict.passed)}, step=r)
        tracking.set_tags({registry.TAG + "verdict": verdict.word, registry.TAG + "gate": verdict.summary()[:5000]})
        tracking.log_table([{**{k: v for k, v in row.items() if k != "prompt"}, "prompt": row["prompt"][-1]["content"],
                             "champion": a, "candidate": b}
                            for row, a, b in zip(loop.dev, ev[champion]["replies"], ev[candidate]["replies"])],
                           "dev_generations.json")
    log(f"round {r} gate: {verdict.summary()}")
    return {"passed": verdict.passed, "verdict": verdict.word, "reasons": verdict.reasons, "summary": verdict.summary(),
            "gain": _num(verdict.gain), "p_value": verdict.p_value, "run_id": run_id,
            "champion_version": str(loop.champion["version"]), "champion": champ, "candidate": cand,
            "n_dev": len(loop.dev)}


# --- 6. promote ---------------------------------------------------------------------------------------------


def promote(loop: Loop, r: int) -> dict:
    """The candidate registered as a version (tags: its lineage and the verdict); alias `champion` moves on a pass."""
    from dpo_exp import tracking

    rnd = loop.state.rounds[str(r)]
    verdict, b, t = rnd["gate"], rnd["build"], rnd["train"]
    parent = loop.champion
    key = f"round{r}"
    c = registry.client(loop.job.uri)
    with loop.child(r, "promote"):
        tags = {"role": "candidate", "parent_version": str(parent["version"]), "generator": b["generator"],
                "judge": b["judge"], "build_run": b["run_id"], "pairs": t["pairs"], "n_pairs": str(t["n_pairs"]),
                "data_digest": t["digest"], "round_pairs_digest": b["digest"], "tie_rate": str(b["tie_rate"]),
                "train_run": t["run_id"], "init": t["init"], "reference": t["reference"],
                "data": loop.conf.loop.data.value, "gate_run": verdict["run_id"], "verdict": verdict["verdict"],
                "gate": verdict["summary"][:5000], "model": loop.conf.model.name,
                "promoted_at": "not promoted (the gate failed; the champion stays)"}
        v = registry.register(c, loop.name, t["run_id"], loop.parent.mlflow_run_id, r, tags)
        when = None
        if verdict["passed"]:
            when = registry.promote(c, loop.name, v.version)
        tracking.set_tags({registry.TAG + "version": str(v.version), registry.TAG + "verdict": verdict["verdict"]})
    loop.state.models[key]["version"] = str(v.version)
    if verdict["passed"]:
        loop.state.champion = key
        log(f"round {r}: version {v.version} is the new champion (was version {parent['version']})")
    else:
        log(f"round {r}: version {v.version} registered, not promoted; the champion stays version {parent['version']}")
    return {"version": str(v.version), "promoted": verdict["passed"], "promoted_at": when,
            "champion_version": str(loop.champion["version"])}


def heldout(loop: Loop, r: int) -> dict:
    """The round's candidate (and, in round 1, the starting model) on the held-out set: for the report only."""
    from dpo_exp import tracking

    keys = ([START] if r == 1 else []) + [f"round{r}"]
    if not loop.heldout:
        return {}
    with loop.child(r, "heldout"):
        ev = evaluate(loop, keys, "heldout")
        tracking.log_metrics({f"heldout/{'start' if k == START else 'candidate'}/{name}": v
                              for k in keys for name, v in ev[k]["metrics"].items() if not math.isnan(v)}, step=r)
    return {k: ev[k]["metrics"] for k in keys}


# --- helpers ----------------------------------------------------------------------------------------------


def load_model(loop: Loop):
    """(tokenizer, base model, None), seeded: every stage loads the same base (model=tiny: same weights, and a
    tokenizer trained on the same corpus as training's and the eval command's)."""
    from transformers import set_seed

    from dpo_exp import models

    set_seed(loop.conf.train.seed)
    return models.load(loop.conf, loop.corpus)


def log_dataset(path: Path, digest: str, context: str) -> None:
    """The file as the active run's dataset input (MLflow's Datasets: name, digest, source)."""
    import warnings

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(path))
    mlflow.log_input(MetaDataset(source=source, name=f"{path.parent.name}/{path.name}", digest=digest[:16]),
                     context=context)


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
