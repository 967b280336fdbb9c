"""`python -m dpo_exp.eval`: compare trained adapters with each other and with the base model.

    python -m dpo_exp.eval +experiment=NAME eval_models.sft=outputs/sft/adapter eval_models.dpo=<run id>

Configured by Hydra like training: `conf/evaluate.yaml` composes the same groups as
`conf/config.yaml` (model, hardware, data, eval, tracking, ...), so pass the model, data and
`+debug`/`+experiment` overrides the adapters were trained with: the base model must be the
same one (an adapter saved with a different tokenizer is refused; for `model=tiny` the
tokenizer is trained on the data, so the data overrides matter too). Eval-only keys:

  eval_models.NAME=SOURCE   an adapter to compare, any number of them, in this order. SOURCE is an
                            adapter folder (a run's `adapter/` or `sft_adapter/`), `runs:/<run id>[/<path>]`,
                            a bare 32-hex MLflow run id (the run's `adapter` artifact is downloaded), or a
                            registered model version: `models:/<name>/<version>`, `models:/<name>@<alias>`
                            (dpo_exp.adapters). `models.NAME=SOURCE` is accepted too. The base model is
                            always included, as `base` (every adapter disabled); with no
                            adapter, `python -m dpo_exp.eval` evaluates the base model alone.
  baseline=NAME             the model the others are compared with (judge win rate, delta
                            column); default `sft` if there is one, else `base`.
  judge=...                 the judge of the win rates, a config group (conf/judge/): a task's rule
                            judge (the default of conf/evaluate.yaml, or the experiment's), model
                            (judge.path: a local HF chat model), openai (judge.base_url,
                            judge.model), none; or your own class: judge._target_=my_module.MyJudge.
  sampling.*                the sampled decoding: temperature 0.7, top_p 0.9, seed 0 (the same
                            random stream for every model).
  max_prompts=N             held-out prompts used (default: eval.heldout_max_prompts, else all).
  max_pairs=N               eval pairs scored for the implicit reward (default: all).

For each model, on the held-out prompts (`data.heldout_path`): greedy and sampled generations,
the behaviour metric of `eval.behaviour` (a plug-in: the experiment's task metric), diversity
and length (genmetrics.diversity_report, plus mean length in tokens). On the eval split of the
preference data (the split training evaluated on: same data keys and seed): implicit reward
accuracy and margin, reward = beta * (log pi(y|x) - log pi_base(y|x)) summed over the reply
tokens, chosen vs rejected (beta = `beta.value`: accuracy does not depend on it, the margin
scales with it; n/a for the base model, whose reward is 0 by definition). The sampled
KL(model || base) of `evaluate.sampled_kl`. Rewards and KL use the pairs, prompts, seed and
lengths of training's evaluations, so a DPO adapter's numbers equal the last `eval_rewards/*`
and `eval_kl/*` of its run when beta matches. And the judge's win rate against the baseline,
judged in both orders on the greedy generations (`judges.win_rate`, each prompt row's fields as the
judge's context).

Outputs: `report.md` in the Hydra run dir (metrics x models table with a "delta <last model>
over <baseline>" column, then the greedy generations side by side), an MLflow run in experiment
`<tracking.experiment>-eval` (metrics as `<model>/<metric>`, report.md, and every generation
in generations.json via mlflow.log_table), and the table printed at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from dpo_exp import adapters, config, plugins, runs
from dpo_exp.adapters import Source, check_tokenizer  # noqa: F401 - check_tokenizer: re-exported
from dpo_exp.cli import hydra_app, log, numeric_beta
from dpo_exp.config import Config, UserError

BASE = "base"
RESERVED = (BASE, "prompt", "context")  # "prompt" and "context" are keys of the judge's items
MODEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


# --- schema: Config plus the eval-only keys -----------------------------------------------------


@dataclass
class SamplingConfig:
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature, > 0"})
    top_p: float = field(default=0.9, metadata={"help": "nucleus sampling, in (0, 1]"})
    seed: int = field(default=0, metadata={"help": "the same random stream for every model"})


@dataclass
class EvalAppConfig(Config):
    eval_models: dict[str, str] = field(default_factory=dict, metadata={
        "help": "adapters to compare, in this order: name -> an adapter folder (a run's `adapter/` or "
                "`sft_adapter/`), `runs:/<run id>[/<artifact path>]`, a bare MLflow run id (its `adapter` "
                "artifact is downloaded), or a registered model version, `models:/<name>/<version>` or "
                "`models:/<name>@<alias>` (e.g. a loop's `models:/my_model@champion`). On the command line "
                "`eval_models.dpo=<source>` (or `models.dpo=...`). The base model is always included, as `base`; "
                "empty = the base model alone"})
    judge: Any = field(default=None, metadata={
        "help": "the judge of the win rates against the baseline (group `judge`): a `_target_` node with its "
                "options (any options: they depend on the class, which checks them); `judge=none` for no win rates"})
    baseline: Optional[str] = field(default=None, metadata={
        "help": "the model the others are compared with (judge win rate, delta column); null = `sft` if "
                "present, else `base`"})
    sampling: SamplingConfig = field(default_factory=SamplingConfig, metadata={
        "help": "the sampled decoding (greedy is always run too)"})
    max_prompts: Optional[int] = field(default=None, metadata={
        "help": "held-out prompts used; null = eval.heldout_max_prompts, else all"})
    max_pairs: Optional[int] = field(default=None, metadata={
        "help": "eval pairs scored for the implicit reward; null = all"})


def register() -> None:
    """`conf/evaluate.yaml` starts its defaults with `eval_schema`, this dataclass."""
    config.register()
    ConfigStore.instance().store(name="eval_schema", node=EvalAppConfig)


def cli_args(argv: list[str]) -> list[str]:
    """`eval_models.X=S` and `models.X=S` become `++eval_models.X=S` (a new key in a typed mapping
    needs Hydra's `+`, which users should not have to know); `beta=0.3` means `beta.value=0.3`."""
    out = []
    for arg in numeric_beta(argv):
        m = re.fullmatch(r"\+{0,2}(?:eval_)?models\.([^=]+)=(.*)", arg, re.S)
        out.append(f"++eval_models.{m.group(1)}={m.group(2)}" if m else arg)
    return out


# --- checks and inputs, before any model work ----------------------------------------------------


def check(conf: EvalAppConfig) -> list[str]:
    """Validate the eval-only keys; return the model names in table order (base first)."""
    names = list(conf.eval_models)  # none: the base model alone, the before-training numbers of the task
    for name in names:
        if name == BASE:
            raise UserError("eval_models.base is reserved: the base model is always included as 'base'. Fix: give "
                            "the adapter another name, e.g. eval_models.sft=...")
        if name in RESERVED:
            raise UserError(f"eval_models.{name} is a reserved name (reserved: {', '.join(RESERVED)}). Fix: give the "
                            "adapter another name, e.g. eval_models.sft=...")
        if not MODEL_NAME.fullmatch(name):
            raise UserError(f"Invalid model name {name!r} in eval_models: names become MLflow metric prefixes. Fix: "
                            "use letters, digits, '_', '-' or '.', starting with a letter (e.g. sft, dpo_beta0.5).")
    names = [BASE, *names]
    if conf.baseline is not None and conf.baseline not in names:
        raise UserError(f"baseline={conf.baseline!r} is not one of the compared models ({', '.join(names)}). "
                        "Fix: pass one of them, or leave baseline unset (sft if present, else base).")
    s = conf.sampling
    if not s.temperature > 0 or not 0 < s.top_p <= 1:
        raise UserError(f"Invalid sampling (temperature={s.temperature}, top_p={s.top_p}): temperature must be > 0 "
                        "and top_p in (0, 1]. Fix: e.g. sampling.temperature=0.7 sampling.top_p=0.9.")
    for key in ("max_prompts", "max_pairs"):
        if getattr(conf, key) is not None and getattr(conf, key) < 1:
            raise UserError(f"Invalid {key}={getattr(conf, key)}: must be >= 1. Fix: use a positive number, or null "
                            "for all.")
    return names


def baseline_of(conf: EvalAppConfig, names: list[str]) -> str:
    return conf.baseline or ("sft" if "sft" in names else BASE)


def load_heldout(conf: EvalAppConfig, metric=None) -> list[dict]:
    """The held-out rows (capped by max_prompts), checked for the fields the behaviour metric reads."""
    from dpo_exp import data

    if not conf.data.heldout_path:
        raise UserError("No held-out prompts: data.heldout_path is null, and the comparison generates on them. "
                        "Fix: set data.heldout_path=<file.jsonl> (one {\"prompt\": ...} per line), or use a data "
                        "preset that has one (conf/data/).")
    rows = data.load_heldout(conf.data.heldout_path, conf.data.system_prompt)
    cap = conf.max_prompts or conf.eval.heldout_max_prompts
    rows = rows[:cap] if cap else rows
    if metric is not None:
        plugins.require_fields(metric, "eval.behaviour", rows, conf.data.heldout_path)
    return rows


def make_judge(conf: EvalAppConfig, heldout: list[dict]):
    """The configured judge (`judge`, a plug-in), or None for judge=none; checked against the held-out rows.

    Built after every cheap input check and before the compared models load (a model judge loads its
    model here, on the command's device), so a bad judge option fails before any other model work.
    """
    from dpo_exp import judges, models

    device, dtype = models.resolve_device_dtype(conf.hardware)
    judge = judges.from_config(conf.judge, device=device, dtype=str(dtype).removeprefix("torch."))
    if judge is not None:
        plugins.require_fields(judge, "judge", heldout, conf.data.heldout_path, off="judge=none")
    return judge


def resolve_sources(conf: EvalAppConfig, uri: str, download_dir: Path) -> list[Source]:
    """Every adapter as a local folder; MLflow runs' adapters are downloaded into `download_dir`."""
    return [adapters.resolve(name, spec, uri, download_dir / name) for name, spec in conf.eval_models.items()]


# --- the models: one base, each adapter a named PEFT adapter on it ------------------------------


class ModelSet:
    """The base model with every adapter loaded by name; `use(name)` makes one of them the model."""

    def __init__(self, base, sources: list[Source]):
        from peft import PeftModel

        self.names = [BASE, *[s.name for s in sources]]
        model = base
        for i, s in enumerate(sources):
            try:
                if i == 0:
                    model = PeftModel.from_pretrained(base, str(s.path), adapter_name=s.name, is_trainable=False)
                else:
                    model.load_adapter(str(s.path), adapter_name=s.name, is_trainable=False)
            except (RuntimeError, ValueError, KeyError) as e:
                raise UserError(f"eval_models.{s.name}: the adapter in {s.path} does not fit the base model "
                                f"({type(e).__name__}: {str(e)[:300]}). Fix: pass the same model (and +debug/"
                                "+experiment) overrides the adapter was trained with.") from None
        self.model = model.eval()

    @contextlib.contextmanager
    def use(self, name: str):
        """Within the block, `self.model` is the named model (`base`: every adapter disabled)."""
        if name == BASE:
            # with no adapter loaded (the base model evaluated alone) the model already is the base
            with self.model.disable_adapter() if len(self.names) > 1 else contextlib.nullcontext():
                yield self.model
        else:
            self.model.set_adapter(name)
            yield self.model

    def reference_context(self, name: str):
        """For evaluate.sampled_kl: how the model under `use(name)` computes base log-probs."""
        if name == BASE:
            return lambda: contextlib.nullcontext(None)  # already the base: KL(base || base) is exactly 0

        @contextlib.contextmanager
        def ctx():
            with self.model.disable_adapter():
                yield None

        return ctx


# --- generation and scoring ----------------------------------------------------------------------


def generate(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, batch_size: int,
             sampling: SamplingConfig | None) -> list[tuple[str, int]]:
    """(text, number of tokens, EOS not counted) per prompt: greedy, or sampled with `sampling` (seeded)."""
    from dpo_exp import evaluate

    decoding = (dict(sample=True, seed=sampling.seed, temperature=sampling.temperature, top_p=sampling.top_p)
                if sampling else dict(sample=False))
    out = []
    for _, completion in evaluate.generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                           batch_size=batch_size, **decoding):
        if len(completion) and completion[-1] == tokenizer.eos_token_id:
            completion = completion[:-1]
        out.append((evaluate.decode(tokenizer, completion), len(completion)))
    return out


def tokenize_pair_replies(tokenizer, rows: list[dict], max_length: int) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, reply ids) for the chosen then the rejected reply of each row.

    As TRL does it: the reply's ids are the conversation's ids after the prompt's (rendered with
    the generation prompt); if that is not a prefix, the reply text is tokenized on its own.
    Long pairs keep the reply's start and the prompt's end, within `max_length` tokens.
    """
    out = []
    for key in ("chosen", "rejected"):
        for row in rows:
            prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
            full = tokenizer.apply_chat_template(row["prompt"] + row[key], tokenize=False)
            p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            f = tokenizer(full, add_special_tokens=False)["input_ids"]
            if f[: len(p)] == p:
                c = f[len(p):]
            else:
                c = tokenizer(full[len(prompt):] if full.startswith(prompt) else row[key][-1]["content"],
                              add_special_tokens=False)["input_ids"]
            c = c[: max(max_length - 1, 1)]
            out.append((p[-(max_length - len(c)):] if max_length > len(c) else p[-1:], c))
    return out


def reply_logps(model, pairs: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int) -> list[float]:
    """log p(reply | prompt), summed over the reply tokens, for (prompt ids, reply ids) lists."""
    import torch

    from dpo_exp.evaluate import sequence_logprobs

    return sequence_logprobs(model, [(torch.tensor(p), torch.tensor(c)) for p, c in pairs], pad_id, batch_size)


# --- per-model metrics ---------------------------------------------------------------------------

SECTIONS = ("greedy/", "sampled/", "reward/", "kl/", "judge/")


def text_metrics(metric, heldout: list[dict], outputs: list[tuple[str, int]], prefix: str) -> dict:
    """The behaviour metric (if any), diversity and length of one model's replies, as `<prefix>/<key>`."""
    from dpo_exp.eval.genmetrics import diversity_report

    texts = [t for t, _ in outputs]
    metrics: dict[str, float] = {}
    if metric is not None:
        # Group sizes (n_*) are the same for every model: the table leaves them out.
        metrics.update({k: float(v) for k, v in metric.metrics(heldout, texts).items() if not k.startswith("n_")})
    metrics.update(diversity_report(texts))
    metrics["mean_length_tokens"] = sum(n for _, n in outputs) / len(outputs)
    return {f"{prefix}/{k}": v for k, v in metrics.items()}


def reward_metrics(conf: EvalAppConfig, logps: list[float], base_logps: list[float]) -> dict[str, float]:
    from dpo_exp.eval.genmetrics import reward_accuracy

    n = len(logps) // 2
    rewards = [conf.beta.value * (lp - lb) for lp, lb in zip(logps, base_logps)]
    chosen, rejected = rewards[:n], rewards[n:]
    acc = reward_accuracy(chosen, rejected)
    return {"reward/accuracy": acc["accuracy"], "reward/margin": acc["mean_margin"],
            "reward/chosen": sum(chosen) / n, "reward/rejected": sum(rejected) / n}


def kl_metrics(conf: EvalAppConfig, models: ModelSet, name: str, tokenizer, prompts: list[list[dict]]) -> dict:
    from dpo_exp.evaluate import sampled_kl

    e = conf.eval
    if not prompts or e.kl_samples_per_prompt < 1 or e.kl_max_new_tokens < 1:
        return {}
    with models.use(name) as model:
        kl = sampled_kl(model, tokenizer, prompts, models.reference_context(name),
                        samples_per_prompt=e.kl_samples_per_prompt, max_new_tokens=e.kl_max_new_tokens,
                        seed=conf.train.seed, batch_size=conf.train.eval_batch_size)
    return {k: kl[k] for k in ("kl/sampled_full_vocab", "kl/sampled", "kl/sampled_stderr")}


# --- report --------------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def metrics_markdown(results: dict[str, dict[str, float]], baseline: str) -> str:
    """Rows = metrics, columns = models, plus the last non-baseline model's delta over the baseline (none when
    the base model is evaluated alone)."""
    names = list(results)
    keys = list(dict.fromkeys(k for m in results.values() for k in m))
    keys.sort(key=lambda k: next((i for i, s in enumerate(SECTIONS) if k.startswith(s)), len(SECTIONS)))
    last = next((n for n in reversed(names) if n != baseline), None)
    head = ["metric", *names, *([f"delta {last} over {baseline}"] if last else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for k in keys:
        cells = [k, *(fmt(results[n].get(k)) for n in names)]
        if last:
            a, b = results[last].get(k), results[baseline].get(k)
            cells.append(fmt(a - b if a is not None and b is not None else None))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def headline(metric, results: dict[str, dict[str, float]]) -> str:
    """The behaviour metric's headline rates on the greedy replies, one value per model (as the run summary
    prints them before -> after); "" without a metric."""
    names = list(results)
    parts = [f"{desc} " + " / ".join("n/a" if results[n].get(f"greedy/{key}") is None
                                      else f"{results[n][f'greedy/{key}']:.3f}" for n in names)
             for key, desc in (metric.headline if metric is not None else [])
             if any(f"greedy/{key}" in results[n] for n in names)]
    return f"held-out {metric.name}, greedy ({' / '.join(names)}): " + "; ".join(parts) if parts else ""


def generations_markdown(rows: list[dict], names: list[str], fields: tuple[str, ...] = ()) -> str:
    """The greedy replies side by side, after the prompt and the row fields the behaviour metric reads."""
    extra = [f for f in fields if rows and f in rows[0]]
    head = ["prompt", *extra, *names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r[k]) for k in ["prompt", *extra, *[f"{n} (greedy)" for n in names]])
                     + " |")
    return "\n".join(lines) + "\n"


def report_markdown(conf: EvalAppConfig, sources: list[Source], baseline: str, results: dict, rows: list[dict],
                    n_pairs: int, judge_name: str | None, metric=None) -> str:
    models = "\n".join(f"- `{s.name}`: {s.spec}" + (f" (MLflow run {s.run_id})" if s.run_id else "") for s in sources)
    s = conf.sampling
    return (
        f"# Model comparison: {', '.join(results)}\n\n"
        f"Base model `{conf.model.name}` (`base`, adapters disabled), adapters:\n{models}\n\n"
        f"- held-out prompts: {len(rows)} from `{conf.data.heldout_path}`; greedy and sampled decoding "
        f"(temperature {s.temperature}, top_p {s.top_p}, seed {s.seed}), at most {conf.eval.max_new_tokens} new "
        "tokens\n"
        f"- implicit reward on {n_pairs} eval pairs: beta * (log p_model - log p_base) summed over the reply, "
        f"beta = {conf.beta.value}\n"
        f"- KL(model || base) in nats per sequence, sampled (evaluate.sampled_kl)\n"
        f"- judge: {judge_name or 'none'}; win/loss/tie rates against `{baseline}` on the greedy generations, "
        "both orders\n"
        f"- behaviour metric (eval.behaviour): {metric.name if metric is not None else 'none'}\n\n"
        + (f"{headline(metric, results)}\n\n" if headline(metric, results) else "")
        + f"## Metrics\n\n{metrics_markdown(results, baseline)}\n"
        f"## Greedy generations\n\n{generations_markdown(rows, list(results), requires(metric))}"
    )


def requires(plugin) -> tuple[str, ...]:
    return tuple(getattr(plugin, "requires", ()) or ()) if plugin is not None else ()


# --- the run -------------------------------------------------------------------------------------


def run(cfg: DictConfig) -> dict[str, dict[str, float]]:
    from dpo_exp import data, models, tracking
    from dpo_exp.eval import behaviour

    # 1. config, data, sources, plug-ins: every input problem fails here, before the compared models load
    conf = config.to_object(cfg)
    names = check(conf)
    job = runs.Job.from_hydra(cfg, app="dpo_exp.eval", name=" vs ".join(names))
    run_dir = job.run_dir
    baseline = baseline_of(conf, names)
    metric = behaviour.from_config(conf.eval.behaviour)
    heldout = load_heldout(conf, metric)
    if not heldout:
        raise UserError(f"No held-out prompts: {conf.data.heldout_path} yields none. Fix: add prompts to it.")
    splits = data.load_splits(conf.data, conf.train.seed)
    pairs = splits.eval[: conf.max_pairs] if conf.max_pairs else splits.eval
    uri = job.uri
    runs.open_store(uri, job.outputs)  # the store checked; runs a dead process left RUNNING marked KILLED
    models.check_available(conf.model)
    sources = resolve_sources(conf, uri, run_dir / "adapters")
    judge = make_judge(conf, heldout)
    log(f"comparing {', '.join(names)} (baseline {baseline}) on {len(heldout)} held-out prompts and "
        f"{len(pairs)} eval pairs -> {run_dir}")

    eval_conf = dataclasses.replace(conf, tracking=dataclasses.replace(
        conf.tracking, experiment=f"{conf.tracking.experiment}-eval"))
    with runs.tracked(job, experiment=eval_conf.tracking.experiment, params=config.flatten(eval_conf)) as run_id:
        tracking.set_tags({f"dpo_exp.eval.model.{s.name}": s.spec for s in sources})
        results, rows, judge_name = compare(conf, splits, heldout, pairs, sources, judge, baseline, metric)
        report = report_markdown(conf, sources, baseline, results, rows, len(pairs), judge_name, metric)
        (run_dir / "report.md").write_text(report)
        tracking.log_metrics({f"{name}/{k}": v for name, m in results.items() for k, v in m.items()}, step=0)
        tracking.log_text_artifact(report, "report.md")
        tracking.log_table(rows, "generations.json")
    print(f"\n== dpo_exp model comparison ==\n\n{metrics_markdown(results, baseline)}")
    if headline(metric, results):
        print(headline(metric, results) + "\n")
    print(f"report: {run_dir / 'report.md'}\nMLflow run {run_id} in {uri} (experiment "
          f"'{eval_conf.tracking.experiment}')\nlook at it: {tracking.ui_command(uri)}\n", flush=True)
    return results


def compare(conf: EvalAppConfig, splits, heldout: list[dict], pairs: list[dict], sources: list[Source], judge,
            baseline: str, metric=None) -> tuple[dict[str, dict[str, float]], list[dict], str | None]:
    """Load the base and the adapters, then every metric of every model.

    Returns ({model: {metric: value}}, one row per held-out prompt with every model's generations,
    the judge's name or None).
    """
    from transformers import set_seed

    from dpo_exp import judges, models

    set_seed(conf.train.seed)
    t0 = time.time()
    corpus = [m["content"] for r in splits.train + splits.eval for m in r["prompt"] + r["chosen"] + r["rejected"]]
    # Eval loads one model: no separate reference copy (lora=none), no k-bit training preparation.
    load_conf = dataclasses.replace(conf, lora=dataclasses.replace(conf.lora, enabled=True),
                                    hardware=dataclasses.replace(conf.hardware, gradient_checkpointing=False))
    tokenizer, base, _ = models.load(load_conf, corpus)
    check_tokenizer(tokenizer, sources)
    ms = ModelSet(base, sources)
    log(f"model '{conf.model.name}' and {len(sources)} adapter(s) loaded on {base.device} in {time.time() - t0:.1f} s")

    prompts = [r["prompt"] for r in heldout]
    kl_prompts = [r["prompt"] for r in (splits.eval or heldout)[: conf.eval.kl_prompts]]
    scored = tokenize_pair_replies(tokenizer, pairs, conf.train.max_length)
    bs, new = conf.eval.generation_batch_size, conf.eval.max_new_tokens
    results: dict[str, dict[str, float]] = {}
    outputs: dict[str, dict[str, list]] = {}
    base_logps: list[float] = []
    for name in ms.names:
        t0 = time.time()
        with ms.use(name) as model:
            greedy = generate(model, tokenizer, prompts, max_new_tokens=new, batch_size=bs, sampling=None)
            sampled = generate(model, tokenizer, prompts, max_new_tokens=new, batch_size=bs, sampling=conf.sampling)
            logps = reply_logps(model, scored, tokenizer.pad_token_id, conf.train.eval_batch_size) if scored else []
        outputs[name] = {"greedy": greedy, "sampled": sampled}
        m = {**text_metrics(metric, heldout, greedy, "greedy"), **text_metrics(metric, heldout, sampled, "sampled")}
        if name == BASE:
            base_logps = logps
        elif scored:
            m.update(reward_metrics(conf, logps, base_logps))
        m.update(kl_metrics(conf, ms, name, tokenizer, kl_prompts))
        results[name] = m
        log(f"{name}: generations, rewards and KL in {time.time() - t0:.1f} s")

    rows = []
    for i, r in enumerate(heldout):
        row = {"prompt": r["prompt"][-1]["content"], **{k: v for k, v in r.items() if k != "prompt"}}
        for name in ms.names:
            row[f"{name} (greedy)"] = outputs[name]["greedy"][i][0]
            row[f"{name} (sampled)"] = outputs[name]["sampled"][i][0]
            if metric is not None:
                row[f"{name} (greedy label)"] = metric.label(r, row[f"{name} (greedy)"])
        rows.append(row)
    if judge is not None:
        t0 = time.time()
        # The judge sees the whole conversation (system and earlier turns included) and the row's fields.
        items = [{"prompt": r["prompt"], "context": {k: v for k, v in r.items() if k != "prompt"},
                  **{n: row[f"{n} (greedy)"] for n in ms.names}} for r, row in zip(heldout, rows)]
        for name in ms.names:
            if name != baseline:
                wr = judges.win_rate(judge, items, name, baseline)
                results[name].update({f"judge/{k}": float(wr[k]) for k in
                                      ("win_rate", "loss_rate", "tie_rate", "position_consistency")})
        log(f"judge {judge.name}: win rates against {baseline} in {time.time() - t0:.1f} s")
    return results, rows, getattr(judge, "name", None)


@hydra_app("evaluate")
def main(cfg: DictConfig) -> None:
    run(cfg)


register()
