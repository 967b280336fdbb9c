"""Build preference pairs from prompts: a model writes N replies per prompt, a judge picks chosen and rejected.

    python -m dpo_exp.build build=NAME                       # a preset (conf/build/NAME.yaml): a task's prompts and judge
    python -m dpo_exp.build build.prompts=prompts.jsonl build.n=4 build.temperature=[0,0.7,1.0,1.2]

The command (`dpo_exp/build.py`, config `conf/build.yaml`) runs these steps, one function each:

1. `load_prompts`: rows from `build.prompts`, read by `dpo_exp.data.formats` (no parser of its own).
   A prompts file has a `prompt` per row (a string or a message list; a bare string or message
   list per row works too); every other field of the row is its *context*: the judge gets it, and
   it is copied into the output rows. The prompts of a preference file, folder or hub id in any
   supported layout work too (their context is the row's fields other than the layout's own).
   Duplicate prompts are dropped (the first row's context is kept); `build.where` filters rows on
   their fields, `build.derive` adds context fields mapped from other fields, `build.max_prompts`
   keeps the first N.
2. `check` and `make_judge`: every key, the judge's needs (the prompt-row fields its `requires`
   lists, in every row), the adapter and the output path are checked before any model
   loads; each problem is one UserError naming the key, file or row, and the fix.
3. `generate`: `build.n` candidates per prompt, candidate i with `build.temperature[i]` and
   `build.top_p[i]` (one number = the same for all; temperature 0 = greedy), batched with left
   padding. Sampling is exact and reproducible per (prompt, candidate, seed), whatever the batch:
   each row draws its own Gumbel noise from a generator seeded by hash(seed, prompt, candidate),
   one block per decoding step, and the token is the argmax of the temperature-scaled, top-p
   masked logits plus that noise (the Gumbel-max trick samples exactly from the softmax). So an
   interrupted build that is resumed, or a shipped file rebuilt later, gives the same replies.
4. `judge_all`: the judge compares every two different candidates of a prompt in BOTH orders.
   A verdict counts only when both orders agree; one that flips with the order is a tie. Each
   candidate's Copeland score (wins - losses over its pairs) ranks them.
5. `select`: `build.selection=best_worst` (default) keeps one pair per prompt: among the pairs
   decided in both orders, the one with the largest score gap (so the best vs the worst
   candidate whenever that pair is decided); `all` keeps every decided pair. Prompts with no
   decided pair are ties, and pairs the judge marks both-bad are dropped, unless
   `build.keep_ties` / `build.keep_both_bad` are true (a kept tie has `verdict: tie`; which reply is
   `chosen` in it means nothing).
   Empty replies are never paired (training rejects them); identical replies are a tie unjudged.
6. `write`: JSONL in the canonical conversational format plus provenance fields (PROVENANCE) that
   `data.where` can filter on, a Markdown report, and an MLflow run in `<tracking.experiment>-data`
   with the file logged as a dataset input, the metrics of `metrics()` and the report.

Cache (`build.cache`, a sqlite file; one transaction per batch of replies and per verdict, so a
`kill -9` loses at most the batch in progress): replies are keyed by (prompt, model and adapter
fingerprint, dtype and device, temperature, top_p, max_new_tokens, seed, candidate index),
verdicts by (judge name, prompt, context, reply A, reply B). Re-running a command continues where
it stopped; changing only the judge re-judges without regenerating. Hits and misses are reported.

Judge budget (`build.budget`): `max_requests` (judge calls that miss the cache) and `max_tokens`
(tokens the judge reports, e.g. an API's usage) per build, `concurrency` calls in flight (threads).
A prompt's calls start only if all of them fit in the request budget; the token budget is checked
before each call. When the budget runs out, no new call starts, the build finishes with the prompts
judged so far, warns, and reports how many prompts were left unjudged (`prompts_unjudged_budget`);
their verdicts so far are cached, so re-running with a larger budget continues.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
import warnings
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from dpo_exp import config, runs
from dpo_exp.cli import log
from dpo_exp.config import (PACKAGE_DIR, Config, DataFormat, HardwareConfig, ModelConfig, ModelSource, OnError,
                            PathsConfig, TrackingConfig, UserError)

A, B, TIE = "A", "B", "tie"
SAMPLER_VERSION = 1  # part of every reply's cache key: bump when the sampler's arithmetic changes

# --- schema: the build app's keys ---------------------------------------------------------------


class PromptFormat(str, Enum):
    auto = "auto"  # a preference file if the first row has chosen and rejected, else a prompts file
    prompts = "prompts"  # rows with a `prompt` (string or messages); other fields are context
    preference = "preference"  # the prompts of a preference file in that layout (see dpo_exp.data.formats)
    conversational = "conversational"
    sharegpt = "sharegpt"
    hh_rlhf = "hh_rlhf"
    ultrafeedback = "ultrafeedback"


class Selection(str, Enum):
    best_worst = "best_worst"  # one pair per prompt: the decided pair with the largest Copeland score gap
    all = "all"  # every pair of candidates decided in both orders


class Unfinished(str, Enum):
    keep = "keep"  # a reply that hit max_new_tokens is judged and written as generated
    cut_to_sentence = "cut_to_sentence"  # ... cut back to its last full sentence (none: empty, not paired)


@dataclass
class BudgetConfig:
    max_requests: Optional[int] = field(default=None, metadata={
        "help": "judge calls that miss the cache, per build (an HTTP retry is not a new call); null = no limit"})
    max_tokens: Optional[int] = field(default=None, metadata={
        "help": "tokens the judge reports (API usage), per build; null = no limit"})
    concurrency: int = field(default=1, metadata={
        "help": "judge calls in flight at once (threads); raise it for an API judge, e.g. 8"})


@dataclass
class BuildConfig:
    prompts: str = field(default=MISSING, metadata={
        "help": "prompts file (`.jsonl`/`.json`: {\"prompt\": str | messages, ...context fields}), or a preference "
                "file/folder/hub id in any supported layout (its prompts); deduplicated"})
    format: PromptFormat = field(default=PromptFormat.auto, metadata={
        "help": "`auto` (a preference file if the first row has chosen and rejected, else a prompts file), "
                "`prompts` (rows with a `prompt`, string or messages; other fields are context), or a preference "
                "layout (`preference`, `conversational`, `sharegpt`, `hh_rlhf`, `ultrafeedback`: its prompts)"})
    split: str = field(default="train", metadata={"help": "split of a datasets folder or hub id"})
    # Any, not Dict (as data.where).
    where: Any = field(default=None, metadata={
        "help": "keep rows whose own fields match, e.g. `{kind: question}` (as data.where)"})
    derive: Any = field(default=None, metadata={
        "help": "context fields mapped from a row field: `{new: {from: field, map: {value: new value}}}`, e.g. "
                "`{is_true: {from: kind, map: {true_fact: true}}}`"})
    max_prompts: Optional[int] = field(default=None, metadata={
        "help": "the first N prompts (after `where` and deduplication); null = all"})
    system_prompt: Optional[str] = field(default=None, metadata={
        "help": "system message added to prompts that have none"})
    on_error: OnError = field(default=OnError.error, metadata={
        "help": "malformed prompt rows: `error` (stop, naming file and line) or `skip` (skip and count them)"})
    n: int = field(default=4, metadata={"help": "candidate replies per prompt, >= 2"})
    temperature: Any = field(default=0.8, metadata={
        "help": "a number, or a list of n numbers (one per candidate); 0 = greedy"})
    top_p: Any = field(default=0.95, metadata={"help": "a number in (0, 1], or a list of n"})
    max_new_tokens: int = field(default=64, metadata={"help": "tokens per reply, at most"})
    seed: int = field(default=0, metadata={
        "help": "with the prompt and candidate index, fixes each reply exactly, whatever the batch"})
    batch_size: int = field(default=16, metadata={"help": "replies generated together (left-padded)"})
    adapter: Optional[str] = field(default=None, metadata={
        "help": "a LoRA adapter on the model: a run dir, an adapter folder, `runs:/<id>`, an MLflow run id, or a "
                "registered model version, `models:/<name>/<version>` or `models:/<name>@<alias>`"})
    selection: Selection = field(default=Selection.best_worst, metadata={
        "help": "`best_worst`: one pair per prompt, the decided pair with the largest Copeland score gap; `all`: "
                "every pair of candidates decided in both orders"})
    unfinished: Unfinished = field(default=Unfinished.keep, metadata={
        "help": "replies that hit max_new_tokens: `keep` (judged and written as generated) or `cut_to_sentence` "
                "(cut back to their last full sentence; none: empty, not paired)"})
    keep_ties: bool = field(default=False, metadata={
        "help": "keep prompts no verdict decides, as `verdict: tie` (which reply is chosen is arbitrary)"})
    keep_both_bad: bool = field(default=False, metadata={"help": "keep pairs the judge marks as both bad"})
    budget: BudgetConfig = field(default_factory=BudgetConfig, metadata={"help": "limits on judge calls"})
    out: Optional[str] = field(default=None, metadata={
        "help": "output `.jsonl` file or folder; null = `<run dir>/pairs.jsonl`"})
    cache: str = field(default="${paths.cache}/build_cache.sqlite", metadata={
        "help": "replies and verdicts (SQLite), shared by every build"})


@dataclass
class BuildAppConfig:
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the model that writes the replies"})
    hardware: HardwareConfig = field(default_factory=HardwareConfig, metadata={"help": "as training's"})
    tracking: TrackingConfig = field(default_factory=TrackingConfig, metadata={"help": "as training's"})
    paths: PathsConfig = field(default_factory=PathsConfig, metadata={"help": "as training's"})
    # Any: the options depend on the class, which checks them.
    judge: Any = field(default=None, metadata={
        "help": "the judge of the candidate pairs (group `judge`): a `_target_` node naming its class (a shipped "
                "one, or your own, `judge._target_=my_module.MyJudge`) with its options"})
    build: BuildConfig = field(default_factory=BuildConfig, metadata={
        "help": "the build's own keys (presets: `build=NAME`)"})


def register() -> None:
    """`conf/build.yaml` starts its defaults with `build_schema`, this dataclass."""
    config.register()
    ConfigStore.instance().store(name="build_schema", node=BuildAppConfig)


def to_object(cfg: DictConfig) -> BuildAppConfig:
    from omegaconf.errors import MissingMandatoryValue

    try:
        obj = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        example = "build.prompts=prompts.jsonl, or a preset: build=<name in conf/build/>" if e.full_key == "build.prompts" \
            else f"{e.full_key}=..."
        raise UserError(f"{e.full_key} has no value, and the build needs one. Fix: set it, e.g. {example}.") from None
    assert isinstance(obj, BuildAppConfig), "compose with conf/build.yaml (its defaults start with build_schema)"
    return obj


# --- 1. prompts ----------------------------------------------------------------------------------

# A preference row's own layout, not context: the old replies say nothing about new ones.
LAYOUT_KEYS = {"prompt", "chosen", "rejected", "conversations", "messages", "score_chosen", "score_rejected"}
# What a build writes beside prompt/chosen/rejected. Dropped from the context of prompts read from
# an earlier build's output (e.g. a second on-policy round): they describe the old pair.
PROVENANCE = (
    "gen_model", "gen_adapter", "gen_seed", "gen_max_new_tokens", "n_candidates",
    "chosen_index", "rejected_index", "chosen_temperature", "rejected_temperature", "chosen_top_p",
    "rejected_top_p", "chosen_tokens", "rejected_tokens",
    "judge", "verdict", "verdict_ab", "verdict_ba", "p_a_ab", "p_a_ba",
    "chosen_score", "rejected_score", "chosen_label", "rejected_label", "both_bad",
)


@dataclass
class Prompt:
    messages: list[dict]  # canonical: ends with a user turn
    context: dict  # the row's other fields (plus build.derive's)
    where: str  # "prompts.jsonl, line 3"

    @property
    def key(self) -> str:
        return json.dumps(self.messages, sort_keys=True, ensure_ascii=False)


@dataclass
class PromptSet:
    prompts: list[Prompt]
    source: str  # for the console and the report
    duplicates: int = 0
    skipped: int = 0  # malformed rows (build.on_error=skip)


def load_prompts(b: BuildConfig) -> PromptSet:
    from dpo_exp.data.formats import (Raw, RowError, as_enum, canonicalise_each, malformed_row, prompt_row,
                                      read_source, skip_mode)
    from dpo_exp.data.splits import select, show_where

    shown = str(b.prompts)
    try:
        raw = read_source(shown, b.split)
    except UserError as e:  # the reader's messages name training's key for the same thing
        raise UserError(str(e).replace("data.path", "build.prompts").replace("data.split", "build.split")) from None
    if not raw:
        raise UserError(f"build.prompts={shown} holds no rows. Fix: point build.prompts at a file with prompts.")
    if b.where:
        raw = select(raw, dict(b.where), shown, key="build.where")
    fmt = as_enum(PromptFormat, b.format, "build.format")
    if fmt == PromptFormat.auto:
        first = next((r.value for r in raw if isinstance(r.value, dict)), None)
        fmt = PromptFormat.preference if first and "chosen" in first and "rejected" in first else PromptFormat.prompts
        layout = DataFormat.auto
    else:
        layout = None if fmt == PromptFormat.prompts else DataFormat(fmt.value)
    skip = skip_mode(b.on_error)

    rows: list[tuple[Raw, list[dict]]] = []
    skipped = 0
    if fmt == PromptFormat.prompts:
        for item in raw:
            if isinstance(item.value, (str, list)):  # a bare prompt per row
                item = Raw(item.where, {"prompt": item.value})
            try:
                rows.append((item, prompt_row(item, b.system_prompt)["prompt"]))
            except RowError as err:
                if not skip:
                    raise UserError(f"Malformed prompt row at {item.where}: {err.problem}. Fix: {err.fix} (a prompts "
                                    "file has one {\"prompt\": \"...\"} or {\"prompt\": [messages]} per row), or set "
                                    "build.on_error=skip to skip such rows.") from None
                skipped += 1
        if not rows:
            raise UserError(f"No usable prompt in {shown}: all {skipped} rows are malformed. Fix: give each row a "
                            "'prompt' (a string or a list of {role, content} messages ending with a user turn).")
    else:
        good, bad, layout = canonicalise_each(raw, layout, b.system_prompt, shown)
        if bad and not skip:
            message = str(malformed_row(*bad[0], f"the prompts of a {layout.value} file"))
            raise UserError(message.replace("data.on_error", "build.on_error"))
        if not good:
            raise UserError(f"No usable rows in {shown}: all {len(bad)} rows are malformed (first: {bad[0][0].where}: "
                            f"{bad[0][1].problem}). Fix: repair the rows, or set build.format to the file's layout.")
        skipped = len(bad)
        rows = [(item, row["prompt"]) for item, row in good]
    prompts, seen, dropped = [], set(), set()
    for item, messages in rows:
        context = {k: v for k, v in item.value.items() if k not in LAYOUT_KEYS and k not in PROVENANCE}
        dropped.update(k for k in item.value if k in PROVENANCE)
        p = Prompt(messages, context, item.where)
        if p.key in seen:
            continue
        seen.add(p.key)
        prompts.append(p)
    duplicates = len(rows) - len(prompts)
    if dropped:
        log(f"prompts: dropped the earlier build's provenance fields ({', '.join(sorted(dropped))}) from the context")
    if b.max_prompts is not None:
        prompts = prompts[: b.max_prompts]
    derive(prompts, b.derive)
    kind = "prompts file" if fmt == PromptFormat.prompts else f"prompts of a {layout.value} file"
    source = f"{Path(shown).name or shown} ({kind}, {len(prompts)} prompts"
    source += f", {duplicates} duplicates dropped" if duplicates else ""
    source += f", {skipped} malformed rows skipped" if skipped else ""
    source += f", build.where {show_where(dict(b.where))}" if b.where else ""
    return PromptSet(prompts, source + ")", duplicates, skipped)


def derive(prompts: list[Prompt], spec: Any) -> None:
    """build.derive: {new_field: {from: field, map: {value: new value}}}, added to every row's context."""
    if not spec:
        return
    example = "build.derive={is_true: {from: kind, map: {true_fact: true, false_fact: false}}}"
    if not isinstance(spec, Mapping):
        raise UserError(f"build.derive={spec!r} is not a mapping. Fix: write e.g. {example}.")
    for name, rule in spec.items():
        if not isinstance(rule, Mapping) or set(rule) != {"from", "map"} or not isinstance(rule["map"], Mapping):
            raise UserError(f"build.derive.{name}={rule!r}: each derived field needs exactly 'from' (a row field) and "
                            f"'map' (row value -> new value). Fix: write e.g. {example}.")
        mapping = {str(k): v for k, v in rule["map"].items()}
        for p in prompts:
            value = p.context.get(rule["from"])
            if str(value) not in mapping or rule["from"] not in p.context:
                raise UserError(f"build.derive.{name}: the row at {p.where} has {rule['from']}={value!r}, which "
                                f"build.derive.{name}.map does not map (it maps {', '.join(mapping)}). Fix: add that "
                                "value to the map, or filter such rows out with build.where.")
            p.context[name] = mapping[str(value)]


# --- 2. checks before any model work -------------------------------------------------------------


def per_candidate(value: Any, n: int, key: str) -> list[float]:
    """A number -> n copies; a list must have n numbers."""
    values = list(value) if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise UserError(f"Invalid build.{key}={value!r}: it must be a number or a list of numbers. Fix: e.g. "
                        f"build.{key}=0.8 or build.{key}=[0,0.7,1.0,1.2].")
    if len(values) == 1:
        return [float(values[0])] * n
    if len(values) != n:
        raise UserError(f"build.{key} has {len(values)} values but build.n={n}: give one per candidate, or a single "
                        f"number for all. Fix: e.g. build.{key}={[values[0]] * n} or build.n={len(values)}.")
    return [float(v) for v in values]


def check(conf: BuildAppConfig, run_dir: Path) -> tuple[list[float], list[float], Path]:
    """Validate the build keys; return (temperatures, top_ps, output file)."""
    b = conf.build

    def bad(key: str, why: str, fix: str) -> None:
        raise UserError(f"Invalid build.{key}={getattr(b, key) if '.' not in key else key!r}: {why}. Fix: {fix}.")

    if b.n < 2:
        bad("n", "a pair needs at least 2 candidates per prompt", "use e.g. build.n=4")
    temps, top_ps = per_candidate(b.temperature, b.n, "temperature"), per_candidate(b.top_p, b.n, "top_p")
    if any(t < 0 for t in temps):
        bad("temperature", "temperatures must be >= 0 (0 = greedy)", "use e.g. build.temperature=[0,0.7,1.0,1.2]")
    if any(not 0 < p <= 1 for p in top_ps):
        bad("top_p", "top_p must be in (0, 1]", "use e.g. build.top_p=0.95 (1 = no nucleus cut)")
    for key in ("max_new_tokens", "batch_size"):
        if getattr(b, key) < 1:
            bad(key, "must be >= 1", f"use a positive integer for build.{key}")
    if b.max_prompts is not None and b.max_prompts < 1:
        bad("max_prompts", "must be >= 1 or null", "use e.g. build.max_prompts=100, or null for all")
    if b.where is not None and not isinstance(b.where, (dict, DictConfig, Mapping)):
        bad("where", "it is a filter on the rows' own fields, a mapping of field to value(s)",
            "write e.g. build.where={kind: question}, or build.where=null")
    budget = b.budget
    if budget.concurrency < 1:
        raise UserError(f"Invalid build.budget.concurrency={budget.concurrency}: must be >= 1. Fix: e.g. "
                        "build.budget.concurrency=4 for an API judge (1 for a local one).")
    for key in ("max_requests", "max_tokens"):
        if getattr(budget, key) is not None and getattr(budget, key) < 1:
            raise UserError(f"Invalid build.budget.{key}={getattr(budget, key)}: must be >= 1, or null for no limit. "
                            f"Fix: e.g. build.budget.{key}=1000.")
    return temps, top_ps, output_path(b.out, run_dir)


def output_path(out: str | None, run_dir: Path) -> Path:
    """build.out as a file: null -> <run dir>/pairs.jsonl; a folder (or a name without .jsonl) -> <it>/pairs.jsonl."""
    path = run_dir / "pairs.jsonl" if not out else Path(out).expanduser()
    if not path.name.endswith(".jsonl") or path.is_dir():
        path = path / "pairs.jsonl"
    path = path.resolve()
    installed = any(part in ("site-packages", "dist-packages") for part in PACKAGE_DIR.parts)
    if installed and path.is_relative_to(PACKAGE_DIR):
        raise UserError(f"build.out={out} is inside the installed dpo_exp package ({PACKAGE_DIR}), where an upgrade "
                        "or reinstall would delete it. Fix: write it elsewhere, e.g. build.out=data/pairs.jsonl.")
    if path.is_file() and path.stat().st_size and not _is_build_output(path):
        raise UserError(f"build.out={out}: {path} exists and is not the output of a build, so writing there would "
                        "destroy it. Fix: move or delete it, or choose another build.out.")
    return path


def _is_build_output(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and "gen_model" in first and "judge" in first


def make_judge(conf: BuildAppConfig, prompts: list[Prompt]):
    """The configured judge (`judge`, a plug-in), checked against the prompt rows it reads (its `requires`).

    Built after the cheap input checks and before the generator loads (a model judge loads its model
    here, on the command's device), so a bad judge option fails before any generation.
    """
    from dpo_exp import judges, models

    device, dtype = models.resolve_device_dtype(conf.hardware)
    judge = judges.from_config(conf.judge, device=device, dtype=str(dtype).removeprefix("torch."))
    if judge is None:
        raise UserError("A build needs a judge to pick chosen and rejected, and judge=none gives none. Fix: "
                        "judge=heuristic, judge=model judge.path=DIR, judge=openai judge.base_url=URL judge.model=M, "
                        "or your own class: judge._target_=my_module.MyJudge.")
    needs = list(getattr(judge, "requires", ()) or ())
    missing = next((p for p in prompts if any(f not in p.context for f in needs)), None)
    if missing is not None:
        raise UserError(f"The judge {judge.name!r} reads {', '.join(map(repr, needs))} from each prompt row, which "
                        f"the row at {missing.where} lacks (it has: {', '.join(sorted(missing.context)) or 'no fields'}"
                        "). Fix: add it to every prompt row, derive it from another field (e.g. build.derive="
                        "{is_true: {from: kind, map: {true_fact: true, false_fact: false}}}), or choose "
                        "another judge.")
    return judge


# --- fingerprints: what a reply depends on, without loading the model -----------------------------


def _sha(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\0")
    return h.hexdigest()


def model_fingerprint_of_folder(path: str | Path) -> str:
    """Small files (config, tokenizer, chat template) by content; weight files by name, size and mtime (hashing
    gigabytes on every build would cost more than it saves; a copied folder just misses the cache once)."""
    folder = Path(path).expanduser()
    parts = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = str(f.relative_to(folder))
        if f.stat().st_size > 16 * 2**20:
            parts.append([rel, f.stat().st_size, f.stat().st_mtime_ns])
        else:
            parts.append([rel, hashlib.sha256(f.read_bytes()).hexdigest()])
    return _sha(parts)


def model_fingerprint(m: ModelConfig, corpus: list[str]) -> str:
    from dpo_exp.models import BUNDLED_CACHE_NAME

    if m.source == ModelSource.bundled:
        return f"bundled:{BUNDLED_CACHE_NAME}"
    if m.source == ModelSource.tiny:  # random weights from a fixed seed, tokenizer trained on the prompts
        return "tiny:" + _sha(dataclasses.asdict(m.tiny), corpus)
    local = Path(m.path).expanduser()
    if (local / "config.json").is_file():
        return "folder:" + model_fingerprint_of_folder(local)
    return f"hub:{m.path}@{m.revision or 'main'}"


# Files a trainer writes beside an adapter that do not change its replies: the same weights saved by two runs
# (a loop's round 1 under two settings that train it alike) must find each other's replies in the cache.
NOT_GENERATION = {"training_args.bin", "README.md"}


def adapter_fingerprint(folder: Path | None) -> str | None:
    if folder is None:
        return None

    def content(f: Path) -> str:
        if f.name == "adapter_config.json":  # PEFT writes target_modules from a set: its order varies per process
            conf = json.loads(f.read_text())
            conf = {k: sorted(v) if k in ("target_modules", "modules_to_save") and isinstance(v, list) else v
                    for k, v in conf.items()}
            return _sha(conf)
        return hashlib.sha256(f.read_bytes()).hexdigest()

    return _sha([[str(f.relative_to(folder)), content(f)]
                 for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in NOT_GENERATION)])


# --- the cache ------------------------------------------------------------------------------------


class Cache:
    """Replies and verdicts in one sqlite file (WAL: a killed writer leaves every committed row intact).

    Thread-safe: judge threads write verdicts through one connection under a lock.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                            "n_tokens INTEGER NOT NULL, finished INTEGER NOT NULL)")
            self.db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, judge TEXT NOT NULL, "
                            "winner TEXT NOT NULL, p_a REAL, labels TEXT, both_bad INTEGER NOT NULL, "
                            "tokens INTEGER NOT NULL)")
            self.db.commit()
        except (OSError, sqlite3.Error) as e:
            raise UserError(f"Cannot open the build cache {self.path} ({e}). Fix: set build.cache to a writable file "
                            "path (default ${{paths.cache}}/build_cache.sqlite).") from None
        self.lock = threading.Lock()

    def replies(self, keys: list[str]) -> dict[str, tuple[str, int, bool]]:
        out = {}
        with self.lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                q = f"SELECT key, text, n_tokens, finished FROM replies WHERE key IN ({','.join('?' * len(chunk))})"
                out.update({k: (t, n, bool(f)) for k, t, n, f in self.db.execute(q, chunk)})
        return out

    def put_replies(self, items: list[tuple[str, str, int, bool]]) -> None:
        with self.lock, self.db:  # one transaction: the whole batch or nothing
            self.db.executemany("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
                                [(k, t, n, int(f)) for k, t, n, f in items])

    def verdicts(self, keys: list[str]) -> dict[str, dict]:
        out = {}
        with self.lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                q = (f"SELECT key, winner, p_a, labels, both_bad, tokens FROM verdicts WHERE key IN "
                     f"({','.join('?' * len(chunk))})")
                for k, w, p, labels, both_bad, tokens in self.db.execute(q, chunk):
                    out[k] = dict(winner=w, p_a=p, labels=json.loads(labels) if labels else None,
                                  both_bad=bool(both_bad), tokens=tokens)
        return out

    def put_verdict(self, key: str, judge: str, v: dict) -> None:
        with self.lock, self.db:
            self.db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (key, judge, v["winner"], v["p_a"], json.dumps(v["labels"]) if v["labels"] else None,
                             int(v["both_bad"]), int(v["tokens"])))

    def close(self) -> None:
        self.db.close()


# --- 3. generation -------------------------------------------------------------------------------


@dataclass
class Spec:
    """One reply to generate."""

    prompt: int  # index into the prompts
    candidate: int
    temperature: float
    top_p: float
    key: str  # cache key
    seed: int  # this row's noise seed


def reply_specs(prompts: list[Prompt], temps: list[float], top_ps: list[float], b: BuildConfig, model_fp: str,
                adapter_fp: str | None, device: str, dtype: str) -> list[Spec]:
    specs = []
    for i, p in enumerate(prompts):
        for c, (t, top_p) in enumerate(zip(temps, top_ps)):
            key = _sha(dict(v=SAMPLER_VERSION, model=model_fp, adapter=adapter_fp, device=device, dtype=dtype,
                            prompt=p.messages, temperature=t, top_p=top_p, max_new_tokens=b.max_new_tokens,
                            seed=b.seed, candidate=c))
            seed = int.from_bytes(hashlib.blake2b(_sha(b.seed, p.messages, c).encode(), digest_size=8).digest(),
                                  "little") & (2**63 - 1)
            specs.append(Spec(i, c, t, top_p, key, seed))
    return specs


def batches(specs: list[Spec], prompts: list[Prompt], size: int) -> list[list[Spec]]:
    """Fixed batches over ALL replies of the build (similar prompt lengths together, less padding), so a resumed
    build generates each missing reply in the same company as an uninterrupted one: bit-identical logits."""
    length = [sum(len(m["content"]) for m in p.messages) for p in prompts]
    ordered = sorted(specs, key=lambda s: (length[s.prompt], s.prompt, s.candidate))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


class GumbelSampler:
    """A logits processor for greedy decoding that turns it into exact, batch-independent sampling.

    Row r: scores / temperature_r, tokens outside the top-p_r nucleus masked, plus Gumbel noise from the row's own
    generator (one block of vocabulary-size uniforms per step); greedy's argmax of that is a sample from the
    nucleus softmax. Temperature 0 rows get no noise: plain greedy.
    """

    def __init__(self, temperatures: list[float], top_ps: list[float], seeds: list[int]):
        import torch

        self.t = torch.tensor([t if t > 0 else 1.0 for t in temperatures])  # greedy rows: replaced below
        self.top_p = torch.tensor(top_ps)
        self.greedy = torch.tensor([t == 0 for t in temperatures])
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, input_ids, scores):
        import torch

        logits = scores.float() / self.t.to(scores.device)[:, None]
        sorted_logits, order = logits.sort(dim=-1, descending=True, stable=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens ranked above it already hold top_p of the mass (the first always stays)
        top_p = self.top_p.to(scores.device)[:, None]
        drop_sorted = ((probs.cumsum(dim=-1) - probs) >= top_p) & (top_p < 1)  # 1: no cut, whatever the rounding
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        u = torch.stack([torch.rand(scores.shape[-1], generator=g) for g in self.gens]).to(scores.device)
        gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
        sampled = logits.masked_fill(drop, float("-inf")) + gumbel
        return torch.where(self.greedy.to(scores.device)[:, None], scores.float(), sampled)


def generate_replies(model, tokenizer, prompts: list[list[dict]], temperatures: list[float], top_ps: list[float],
                     seeds: list[int], max_new_tokens: int) -> list[tuple[str, int, bool]]:
    """One batch: (text, tokens without EOS, ended with EOS) per row, rows left-padded together."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    from dpo_exp.evaluate import render_prompts

    device = next(model.parameters()).device
    enc = tokenizer(render_prompts(tokenizer, prompts), return_tensors="pt", padding=True,
                    add_special_tokens=False).to(device)
    # Greedy over our processed scores; every other processor neutral, whatever the model's generation_config says.
    gen_config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=tokenizer.eos_token_id, repetition_penalty=1.0, no_repeat_ngram_size=0,
                                  temperature=None, top_p=None, top_k=None, min_new_tokens=None, min_length=0)
    with torch.no_grad():
        seqs = model.generate(**enc, generation_config=gen_config,
                              logits_processor=LogitsProcessorList([GumbelSampler(temperatures, top_ps, seeds)]))
    out = []
    for seq in seqs[:, enc["input_ids"].shape[1]:]:
        stop = (seq == tokenizer.eos_token_id).nonzero()
        finished = bool(len(stop))
        ids = seq[: stop[0].item()] if finished else seq
        out.append((tokenizer.decode(ids, skip_special_tokens=True).strip(), len(ids), finished))
    return out


@dataclass
class GenStats:
    hits: int = 0
    misses: int = 0
    tokens: int = 0  # generated in this run
    seconds: float = 0.0
    truncated: int = 0  # replies cut at max_new_tokens (all, cached too)
    empty: int = 0


def generate(conf: BuildAppConfig, prompts: list[Prompt], specs: list[Spec], cache: Cache, adapter_path: Path | None,
             progress: bool = True, corpus: list[str] | None = None, seed: int | None = None
             ) -> tuple[dict[str, tuple[str, int, bool]], GenStats]:
    """Every reply of `specs`, from the cache or generated now (the model is loaded only if one is missing).
    `corpus` and `seed`: what model=tiny trains its tokenizer on (default: the prompts' messages) and draws its
    random weights with (default: train.seed's default)."""
    stats = GenStats()
    replies = cache.replies([s.key for s in specs])
    stats.hits = len(replies)
    missing = {s.key for s in specs} - set(replies)
    if missing:
        from tqdm.auto import tqdm

        model, tokenizer = load_generator(conf, prompts, adapter_path, corpus, seed)
        bar = tqdm(total=len(missing), desc="generating", unit="reply", dynamic_ncols=True, **quiet(progress))
        t0 = time.time()
        for batch in batches(specs, prompts, conf.build.batch_size):
            todo = [s for s in batch if s.key in missing]
            if not todo:
                continue
            out = generate_replies(model, tokenizer, [prompts[s.prompt].messages for s in todo],
                                   [s.temperature for s in todo], [s.top_p for s in todo], [s.seed for s in todo],
                                   conf.build.max_new_tokens)
            cache.put_replies([(s.key, *o) for s, o in zip(todo, out)])
            for s, o in zip(todo, out):
                replies[s.key] = o
                stats.tokens += o[1]
            stats.misses += len(todo)
            bar.update(len(todo))
        bar.close()
        stats.seconds = time.time() - t0
    for s in specs:
        text, n_tokens, finished = replies[s.key]
        stats.truncated += not finished
        if not finished and conf.build.unfinished == Unfinished.cut_to_sentence:
            # A reply cut at max_new_tokens would teach the policy to stop mid-sentence; its full sentences
            # are a complete reply. The cache keeps the raw text, so the cut is reproduced on every build.
            text = cut_to_sentence(text)
            replies[s.key] = (text, n_tokens, finished)
        stats.empty += not text
    return replies, stats


def cut_to_sentence(text: str) -> str:
    """`text` up to the end of its last full sentence ('.', '!' or '?' then a space or the end); '' if none."""
    ends = list(re.finditer(r"[.!?][\"')\]]*(?=\s|$)", text))
    return text[: ends[-1].end()].strip() if ends else ""


def load_generator(conf: BuildAppConfig, prompts: list[Prompt], adapter_path: Path | None,
                   corpus: list[str] | None = None, seed: int | None = None):
    from dpo_exp import adapters, models

    corpus = corpus if corpus is not None else [m["content"] for p in prompts for m in p.messages]
    load_conf = Config(model=conf.model, hardware=dataclasses.replace(conf.hardware, gradient_checkpointing=False),
                       paths=conf.paths)
    if seed is not None:
        load_conf.train.seed = seed
    t0 = time.time()
    tokenizer, model, _ = models.load(load_conf, corpus)
    if adapter_path is not None:
        from peft import PeftModel

        adapters.check_tokenizer(tokenizer, [adapters.Source("adapter", str(adapter_path), adapter_path,
                                                             key="build.adapter")])
        try:
            model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=False)
        except (RuntimeError, ValueError, KeyError) as e:
            raise UserError(f"build.adapter: the adapter in {adapter_path} does not fit model '{conf.model.name}' "
                            f"({type(e).__name__}: {str(e)[:300]}). Fix: pass the model overrides the adapter was "
                            "trained with (e.g. model=tiny for a +debug=smoke run).") from None
    log(f"generator '{conf.model.name}'" + (f" + adapter {adapter_path}" if adapter_path else "")
        + f" loaded on {model.device} in {time.time() - t0:.1f} s")
    return model.eval(), tokenizer


def quiet(progress: bool) -> dict:
    """tqdm options: off when the caller says so, else tqdm's own default (which $TQDM_DISABLE=1 turns off)."""
    return {} if progress else {"disable": True}


# --- 4. judging -----------------------------------------------------------------------------------

_FROM_SWAPPED = {A: B, B: A, TIE: TIE}


def _ask(judge, prompt: Prompt, a: str, b: str) -> dict:
    """One verdict (judges.Verdict) as a plain dict; the judge sees the whole conversation and the row's context."""
    v = judge.compare(prompt.messages, a, b, context=prompt.context)
    if v.winner not in _FROM_SWAPPED:
        raise UserError(f"The judge {judge.name!r} returned winner {v.winner!r}; a judge must return 'A', 'B' or "
                        "'tie'. Fix: correct the judge's compare().")
    labels = getattr(v, "labels", None)
    return dict(winner=v.winner, p_a=v.p_a, labels=list(labels) if labels else None,
                both_bad=bool(getattr(v, "both_bad", False)), tokens=int(getattr(v, "tokens", 0) or 0))


def verdict_key(judge_name: str, prompt: Prompt, a: str, b: str) -> str:
    return _sha(dict(judge=judge_name, prompt=prompt.messages, context=prompt.context, a=a, b=b))


def judged_pairs(texts: list[str]) -> list[tuple[int, int]]:
    """Pairs (i < j) the judge is asked about: both replies non-empty and different."""
    return [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))
            if texts[i] and texts[j] and texts[i] != texts[j]]


@dataclass
class JudgeStats:
    hits: int = 0
    misses: int = 0  # calls made in this run
    tokens: int = 0
    seconds: float = 0.0
    prompts_unjudged: int = 0  # for want of budget
    budget_exhausted: str = ""  # which limit ran out, if one did


class Budget:
    def __init__(self, max_requests: int | None, max_tokens: int | None):
        self.max_requests, self.max_tokens = max_requests, max_tokens
        self.requests = self.tokens = 0
        self.lock = threading.Lock()

    def reserve(self, k: int) -> bool:
        with self.lock:
            if self.tokens_out() or (self.max_requests is not None and self.requests + k > self.max_requests):
                return False
            self.requests += k
            return True

    def tokens_out(self) -> bool:
        return self.max_tokens is not None and self.tokens >= self.max_tokens

    def why(self) -> str:
        if self.tokens_out():
            return f"build.budget.max_tokens={self.max_tokens} (used {self.tokens})"
        return f"build.budget.max_requests={self.max_requests} (used {self.requests})"


def judge_all(judge, prompts: list[Prompt], texts: list[list[str]], cache: Cache, budget_conf: BudgetConfig,
              progress: bool = True) -> tuple[list[dict | None], JudgeStats]:
    """Both-order verdicts for every judged pair of every prompt: per prompt {(i, j): verdict on (A=i, B=j)}, or
    None for a prompt left unjudged when the budget ran out."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    stats = JudgeStats()
    name = judge.name
    wanted = []  # per prompt: {(i, j): key}
    for p, t in zip(prompts, texts):
        wanted.append({(x, y): verdict_key(name, p, t[x], t[y])
                       for i, j in judged_pairs(t) for x, y in ((i, j), (j, i))})
    known = cache.verdicts([k for w in wanted for k in w.values()])
    stats.hits = sum(k in known for w in wanted for k in w.values())
    budget = Budget(budget_conf.max_requests, budget_conf.max_tokens)
    slots = threading.BoundedSemaphore(budget_conf.concurrency)
    failure: list[BaseException] = []
    skipped: set[int] = set()  # prompts with a call the token budget stopped

    def call(index: int, key: str, a: str, b: str) -> None:
        try:
            if failure or budget.tokens_out():
                skipped.add(index)
                return
            v = _ask(judge, prompts[index], a, b)
            cache.put_verdict(key, name, v)
            with budget.lock:
                budget.tokens += v["tokens"]
                known[key] = v
                stats.misses += 1
            bar.update(1)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            failure.append(e)
        finally:
            slots.release()

    todo_total = len({k for w in wanted for k in w.values()} - set(known))
    bar = tqdm(total=todo_total, desc=f"judging ({name})", unit="verdict", dynamic_ncols=True, **quiet(progress))
    t0 = time.time()
    unjudged: set[int] = set()
    scheduled: set[str] = set()
    with ThreadPoolExecutor(budget_conf.concurrency) as pool:
        for index, w in enumerate(wanted):
            needed = {k: pair for pair, k in w.items() if k not in known and k not in scheduled}
            if not needed:
                continue
            if failure or stats.budget_exhausted or not budget.reserve(len(needed)):
                stats.budget_exhausted = stats.budget_exhausted or (budget.why() if not failure else "")
                unjudged.add(index)
                continue
            for k, (x, y) in needed.items():
                scheduled.add(k)
                slots.acquire()  # at most `concurrency` calls in flight: the token check stays current
                pool.submit(call, index, k, texts[index][x], texts[index][y])
    bar.close()
    stats.seconds = time.time() - t0
    stats.tokens = budget.tokens
    if failure:
        raise failure[0]
    if skipped and not stats.budget_exhausted:
        stats.budget_exhausted = budget.why()
    out: list[dict | None] = []
    for index, w in enumerate(wanted):
        if index in unjudged or any(k not in known for k in w.values()):
            out.append(None)
        else:
            out.append({pair: known[k] for pair, k in w.items()})
    stats.prompts_unjudged = sum(v is None for v in out)
    return out, stats


# --- 5. selection ---------------------------------------------------------------------------------


@dataclass
class PromptResult:
    pairs: list[dict]  # (chosen, rejected) selections: dicts of chosen/rejected index and verdict details
    judged: int = 0  # candidate pairs judged (both orders)
    consistent: int = 0  # ... whose two verdicts agreed
    ties: int = 0  # ... whose outcome is a tie (a split decision or a tie in both orders)
    tied_prompt: bool = False  # no pair decided
    dropped_ties: int = 0
    dropped_both_bad: int = 0


def select(texts: list[str], verdicts: dict, selection: Selection, keep_ties: bool, keep_both_bad: bool
           ) -> PromptResult:
    """Outcomes of both-order verdicts, Copeland scores, and the kept pairs of one prompt."""
    n = len(texts)
    outcome: dict[tuple[int, int], str] = {}  # (i, j), i < j: A = i won in both orders, B = j did, else tie
    res = PromptResult(pairs=[])
    for i, j in judged_pairs(texts):
        first, second = verdicts[(i, j)]["winner"], _FROM_SWAPPED[verdicts[(j, i)]["winner"]]
        outcome[(i, j)] = first if first == second else TIE
        res.judged += 1
        res.consistent += first == second
        res.ties += outcome[(i, j)] == TIE
    score = [0] * n
    for (i, j), o in outcome.items():
        if o != TIE:
            w, l = (i, j) if o == A else (j, i)
            score[w] += 1
            score[l] -= 1
    label = [None] * n
    for (x, y), v in verdicts.items():
        if v["labels"]:
            label[x] = label[x] or v["labels"][0]
            label[y] = label[y] or v["labels"][1]

    def entry(w: int, l: int, verdict: str) -> dict:
        ab, ba = verdicts.get((w, l)), verdicts.get((l, w))
        both_bad = bool((ab and ab["both_bad"]) or (ba and ba["both_bad"]))
        return dict(chosen=w, rejected=l, verdict=verdict, verdict_ab=ab and ab["winner"],
                    verdict_ba=ba and ba["winner"], p_a_ab=ab and ab["p_a"], p_a_ba=ba and ba["p_a"],
                    chosen_score=score[w], rejected_score=score[l], chosen_label=label[w], rejected_label=label[l],
                    both_bad=both_bad)

    decided = [((i, j) if o == A else (j, i)) for (i, j), o in outcome.items() if o != TIE]
    if selection == Selection.best_worst and decided:
        decided = [max(decided, key=lambda wl: (score[wl[0]] - score[wl[1]], -wl[0], -wl[1]))]
    candidates = [entry(w, l, "chosen") for w, l in decided]
    if not decided:  # every judged pair tied (or none could be judged: empty or identical replies)
        res.tied_prompt = True
        tied = list(outcome)  # no decided pair: every score is 0, so best_worst takes the first
        if keep_ties and tied:
            candidates = [entry(i, j, "tie") for i, j in (tied[:1] if selection == Selection.best_worst else tied)]
        else:
            res.dropped_ties = 1
    for c in candidates:
        if c["both_bad"] and not keep_both_bad:
            res.dropped_both_bad += 1
        else:
            res.pairs.append(c)
    return res


# --- 6. output ------------------------------------------------------------------------------------


def pair_rows(conf: BuildAppConfig, prompts: list[Prompt], specs: list[Spec], replies: dict, results: list,
              judge_name: str) -> list[dict]:
    by_prompt: dict[int, list[Spec]] = {}
    for s in specs:
        by_prompt.setdefault(s.prompt, []).append(s)
    rows = []
    for index, res in enumerate(results):
        if res is None:
            continue
        p, cands = prompts[index], sorted(by_prompt[index], key=lambda s: s.candidate)
        for pair in res.pairs:
            c, r = cands[pair["chosen"]], cands[pair["rejected"]]
            row = {"prompt": p.messages,
                   "chosen": [{"role": "assistant", "content": replies[c.key][0]}],
                   "rejected": [{"role": "assistant", "content": replies[r.key][0]}],
                   **p.context,
                   "gen_model": conf.model.name, "gen_adapter": conf.build.adapter, "gen_seed": conf.build.seed,
                   "gen_max_new_tokens": conf.build.max_new_tokens, "n_candidates": len(cands),
                   "chosen_index": c.candidate, "rejected_index": r.candidate,
                   "chosen_temperature": c.temperature, "rejected_temperature": r.temperature,
                   "chosen_top_p": c.top_p, "rejected_top_p": r.top_p,
                   "chosen_tokens": replies[c.key][1], "rejected_tokens": replies[r.key][1],
                   "judge": judge_name}
            row.update({k: pair[k] for k in ("verdict", "verdict_ab", "verdict_ba", "p_a_ab", "p_a_ba", "chosen_score",
                                             "rejected_score", "chosen_label", "rejected_label", "both_bad")})
            rows.append(row)
    return rows


def write_jsonl(rows: list[dict], path: Path) -> str:
    """Atomically (a killed build never leaves half a file); returns the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


@dataclass
class Summary:
    prompts: int
    candidates: int
    gen: GenStats
    judge: JudgeStats
    judged_pairs: int
    consistent_pairs: int
    tied_pairs: int
    tied_prompts: int
    dropped_ties: int
    dropped_both_bad: int
    pairs: int
    length_ratio: float  # mean chosen/rejected reply length in tokens, over kept pairs
    run_id: str | None = None  # the build's MLflow run
    digest: str | None = None  # sha256 of the pairs file written

    def metrics(self) -> dict[str, float]:
        g, j = self.gen, self.judge
        nan = math.nan
        return {
            "pairs_kept": self.pairs, "prompts": self.prompts, "candidates": self.candidates,
            "tie_rate": self.tied_pairs / self.judged_pairs if self.judged_pairs else nan,
            "position_consistency": self.consistent_pairs / self.judged_pairs if self.judged_pairs else nan,
            "prompts_tied": self.tied_prompts, "dropped_ties": self.dropped_ties,
            "dropped_both_bad": self.dropped_both_bad, "prompts_unjudged_budget": j.prompts_unjudged,
            "mean_length_ratio": self.length_ratio,
            "api_tokens": j.tokens, "judge_requests": j.misses,
            "cache/reply_hits": g.hits, "cache/reply_misses": g.misses,
            "cache/verdict_hits": j.hits, "cache/verdict_misses": j.misses,
            "replies_truncated": g.truncated, "replies_empty": g.empty,
            "generation_tokens_per_s": g.tokens / g.seconds if g.seconds else nan,
        }


def summarise(prompts: list[Prompt], specs: list[Spec], gen: GenStats, judge: JudgeStats, results: list,
              rows: list[dict]) -> Summary:
    done = [r for r in results if r is not None]
    ratios = [r["chosen_tokens"] / r["rejected_tokens"] for r in rows if r["rejected_tokens"]]
    return Summary(
        prompts=len(prompts), candidates=len(specs), gen=gen, judge=judge,
        judged_pairs=sum(r.judged for r in done), consistent_pairs=sum(r.consistent for r in done),
        tied_pairs=sum(r.ties for r in done), tied_prompts=sum(r.tied_prompt for r in done),
        dropped_ties=sum(r.dropped_ties for r in done), dropped_both_bad=sum(r.dropped_both_bad for r in done),
        pairs=len(rows), length_ratio=sum(ratios) / len(ratios) if ratios else math.nan)


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def report_markdown(conf: BuildAppConfig, s: Summary, source: str, out: Path, judge_name: str, command: str,
                    rows: list[dict], temps: list[float], top_ps: list[float]) -> str:
    m, b, g, j = s.metrics(), conf.build, s.gen, s.judge
    warn = ""
    if j.budget_exhausted:
        warn = (f"\n**Judge budget exhausted** ({j.budget_exhausted}): {j.prompts_unjudged} prompts were not "
                "judged and have no pair. Their verdicts so far are cached: re-run with a larger budget to finish.\n")
    examples = "".join(
        f"\n### {i + 1}. {_cell(r['prompt'][-1]['content'])}\n\n- chosen (candidate {r['chosen_index']}, score "
        f"{r['chosen_score']}): {_cell(r['chosen'][0]['content'])}\n- rejected (candidate {r['rejected_index']}, "
        f"score {r['rejected_score']}): {_cell(r['rejected'][0]['content'])}\n" for i, r in enumerate(rows[:5]))
    return f"""# Preference data build

`{command}`

- prompts: {source}
- generator: `{conf.model.name}`{f" + adapter `{b.adapter}`" if b.adapter else ""}; {b.n} candidates per prompt,
  temperature {temps}, top_p {top_ps}, at most {b.max_new_tokens} new tokens, seed {b.seed}
- judge: `{judge_name}`, both answer orders; selection `{b.selection.value}`, keep_ties {b.keep_ties},
  keep_both_bad {b.keep_both_bad}
- output: `{out}`
{warn}
## Result

| | |
|---|---:|
| pairs kept | {s.pairs} |
| prompts | {s.prompts} |
| prompts with no decided pair (ties) | {s.tied_prompts} (dropped: {s.dropped_ties}) |
| pairs dropped as both bad | {s.dropped_both_bad} |
| prompts unjudged (budget) | {j.prompts_unjudged} |
| candidate pairs judged (both orders) | {s.judged_pairs} |
| tie rate (split or tied verdicts) | {_f(m['tie_rate'])} |
| position consistency | {_f(m['position_consistency'])} |
| mean length ratio chosen/rejected (tokens) | {_f(m['mean_length_ratio'])} |
| replies cut at max_new_tokens / empty | {g.truncated} / {g.empty} of {s.candidates} |

## Cost and cache

| | cached (hits) | computed now (misses) |
|---|---:|---:|
| replies | {g.hits} | {g.misses} |
| verdicts | {j.hits} | {j.misses} |

- generation: {g.tokens} tokens in {g.seconds:.1f} s ({_f(m['generation_tokens_per_s'], 1)} tokens/s)
- judging: {j.misses} calls in {j.seconds:.1f} s, {j.tokens} API tokens
- cache: `{b.cache}`

## Examples
{examples or chr(10) + "(no pairs)" + chr(10)}"""


def _cell(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def log_to_mlflow(out: Path, digest: str, report: str, s: Summary) -> None:
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    from dpo_exp import tracking

    with warnings.catch_warnings():  # "local file or local artifact?": the same class either way
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(out))
    dataset = MetaDataset(source=source, name=out.name, digest=digest[:16])
    mlflow.log_input(dataset, context="build")
    tracking.log_metrics({k: v for k, v in s.metrics().items() if not math.isnan(v)}, step=0)
    tracking.log_text_artifact(report, "report.md")
    mlflow.log_artifact(str(out))


# --- the run --------------------------------------------------------------------------------------


def run(cfg: DictConfig, job: runs.Job, judge=None, progress: bool = True, corpus: list[str] | None = None,
        experiment: str | None = None, seed: int | None = None) -> Summary:
    """The whole build, as `job` (dpo_exp.runs) asks. `judge`: a judge object to use instead of the configured one.
    A caller that loads the same model elsewhere (the loop) passes `corpus`, what model=tiny trains its tokenizer
    on (default: the prompts' messages) and `seed` (its random weights' seed), and may name the MLflow `experiment`
    (default `<tracking.experiment>-data`)."""
    from dpo_exp import adapters, models

    # 1-2. everything that can be wrong with the input fails here, before any model is loaded
    run_dir, command, run_name, uri = job.run_dir, job.command, job.run_name, job.uri
    conf = to_object(cfg)
    temps, top_ps, out = check(conf, run_dir)
    prompt_set = load_prompts(conf.build)
    prompts = prompt_set.prompts
    runs.open_store(uri, job.outputs)  # the store checked; builds a dead process left RUNNING marked KILLED
    models.check_available(conf.model)
    adapter = None
    if conf.build.adapter:
        adapter = adapters.resolve("adapter", conf.build.adapter, uri, run_dir / "adapter_download",
                                   key="build.adapter").path
    if judge is None:
        judge = make_judge(conf, prompts)
    cache = Cache(conf.build.cache)
    device, dtype = models.resolve_device_dtype(conf.hardware)
    corpus = corpus if corpus is not None else [m["content"] for p in prompts for m in p.messages]
    model_fp = model_fingerprint(conf.model, corpus)
    if seed is not None and conf.model.source == ModelSource.tiny:  # its random weights come from the seed
        model_fp += f":seed={seed}"
    specs = reply_specs(prompts, temps, top_ps, conf.build, model_fp, adapter_fingerprint(adapter), device, str(dtype))
    log(f"build '{run_name}' -> {out}")
    log(f"prompts: {prompt_set.source}; {conf.build.n} candidates each = {len(specs)} replies")

    experiment = experiment or f"{conf.tracking.experiment}-data"
    tracked = copy.deepcopy(cfg)
    tracked.tracking.experiment = experiment
    with contextlib.ExitStack() as stack:
        stack.callback(cache.close)
        run_id = stack.enter_context(runs.tracked(job, experiment=experiment, params=config.flatten(tracked)))
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)

        # 3. generate (only what the cache lacks)
        replies, gen = generate(conf, prompts, specs, cache, adapter, progress, corpus, seed)
        log(f"replies: {gen.hits} cached, {gen.misses} generated"
            + (f" ({gen.tokens} tokens in {gen.seconds:.1f} s, {gen.tokens / gen.seconds:.1f} tokens/s)"
               if gen.seconds else ""))
        texts = [[""] * conf.build.n for _ in prompts]
        for s in specs:
            texts[s.prompt][s.candidate] = replies[s.key][0]

        # 4. judge (only what the cache lacks), both orders
        verdicts, jstats = judge_all(judge, prompts, texts, cache, conf.build.budget, progress)
        log(f"verdicts ({judge.name}): {jstats.hits} cached, {jstats.misses} asked"
            + (f", {jstats.tokens} API tokens" if jstats.tokens else ""))
        if jstats.budget_exhausted:
            log(f"WARNING: the judge budget ran out ({jstats.budget_exhausted}): {jstats.prompts_unjudged} prompts "
                "left unjudged, without pairs. Re-run with a larger build.budget to judge them (nothing done is lost).")

        # 5. select, 6. write
        b = conf.build
        results = [None if v is None else select(t, v, b.selection, b.keep_ties, b.keep_both_bad)
                   for t, v in zip(texts, verdicts)]
        rows = pair_rows(conf, prompts, specs, replies, results, judge.name)
        digest = write_jsonl(rows, out)
        summary = summarise(prompts, specs, gen, jstats, results, rows)
        report = report_markdown(conf, summary, prompt_set.source, out, judge.name, command, rows, temps, top_ps)
        (run_dir / "report.md").write_text(report)
        log_to_mlflow(out, digest, report, summary)
        summary.run_id, summary.digest = run_id, digest
    m = summary.metrics()
    print(f"\n== dpo_exp build ==\n"
          f"pairs kept: {summary.pairs} of {summary.prompts} prompts -> {out}\n"
          f"tie rate {_f(m['tie_rate'])}, position consistency {_f(m['position_consistency'])}, "
          f"mean length ratio chosen/rejected {_f(m['mean_length_ratio'])}\n"
          f"cache: replies {gen.hits} hit / {gen.misses} generated; verdicts {jstats.hits} hit / {jstats.misses} asked"
          + (f"; {jstats.tokens} API tokens" if jstats.tokens else "") + "\n"
          + (f"WARNING: judge budget exhausted, {jstats.prompts_unjudged} prompts unjudged\n"
             if jstats.budget_exhausted else "")
          + ("WARNING: no pair kept (every prompt's candidates tied, or were dropped); see the report\n"
             if not summary.pairs else "")
          + f"report: {run_dir / 'report.md'}\nMLflow run {run_id} in {uri} (experiment '{experiment}')\n"
          f"train on it: python -m dpo_exp data=file data.path={out}\n", flush=True)
    return summary
