"""The loop's config: training's schema (`Config`) plus the build's keys (`build.*`) and the loop's own (`loop.*`).

`conf/loop.yaml` composes the same groups as training (model, hardware, lora, loss, beta, data, train, eval,
tracking, judge) and the build's (`build=NAME`); `check` validates what a type cannot express, before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from dpo_exp import config
from dpo_exp.config import Config, UserError
from dpo_exp.data.build import BuildConfig


class LoopData(str, Enum):
    round = "round"  # DPO on this round's pairs
    all = "all"  # DPO on every round's pairs so far


class LoopInit(str, Enum):
    champion = "champion"  # continue the champion's adapter
    base = "base"  # a fresh LoRA adapter on the base model


class LoopReference(str, Enum):
    base = "base"  # the base model (RLHFlow keeps the first model as the reference)
    champion = "champion"  # the champion of the round (updated every promotion)


# loop.on_fail: a str checked in `check` (`continue` cannot be an enum member's name, which OmegaConf matches)
ON_FAIL = ("stop", "continue")


@dataclass
class SignificanceConfig:
    enabled: bool = field(default=False, metadata={
        "help": "also require the target's gain to be significant: a paired bootstrap over the dev rows (candidate "
                "and champion replies resampled together) gives p = share of resamples with no gain"})
    alpha: float = field(default=0.05, metadata={"help": "the largest p-value that passes, in (0, 1)"})
    resamples: int = field(default=1000, metadata={"help": "bootstrap resamples, >= 100"})
    seed: int = field(default=0, metadata={"help": "seed of the resampling"})


@dataclass
class GateConfig:
    metric: str = field(default="hold_rate", metadata={
        "help": "the target: a key of the behaviour metric's (`eval.behaviour`) metrics on the dev split, e.g. "
                "hold_rate; an unknown key is an error before any work"})
    min_gain: Any = field(default=0.0, metadata={
        "help": "the candidate passes when target(candidate) - target(champion) >= min_gain; a number, or a list "
                "with one per round (the last one repeats), e.g. [0.0, 0.05]"})
    guards: dict[str, float] = field(default_factory=dict, metadata={
        "help": "metrics that must not get worse: metric -> the largest loss allowed, e.g. `{accept_rate: 0.05, "
                "plain_correct: 0.05}`; a guard the dev split cannot measure (nan) fails the gate; one that allows less than "
                "one dev reply is warned about before any work"})
    lower_is_better: list[str] = field(default_factory=list, metadata={
        "help": "metrics (target or guards) for which lower is better, e.g. [cave_rate]; all others: higher"})
    significance: SignificanceConfig = field(default_factory=SignificanceConfig, metadata={
        "help": "an optional significance check of the target's gain"})


@dataclass
class DevConfig:
    path: Optional[str] = field(default=None, metadata={
        "help": "the dev split the gate measures on: a prompts file with the behaviour metric's fields, drawn from "
                "the training side (never the held-out set, `data.heldout_path`, which is refused)"})
    max_prompts: Optional[int] = field(default=None, metadata={"help": "the first N dev rows; null = all"})
    exclude_by: Optional[str] = field(default="topic", metadata={
        "help": "a row field: collected prompts whose value of it occurs in the dev split are left out, so the loop "
                "never trains on what the gate measures; null = keep every prompt"})


@dataclass
class LoopConfig:
    rounds: int = field(default=2, metadata={"help": "rounds of collect -> build -> train -> gate -> promote, >= 1"})
    start: Optional[str] = field(default=None, metadata={
        "help": "the starting model, registered as version 1 and the first champion: null = the base model "
                "(`model`), or an adapter: a folder, a run dir, `runs:/<id>`, a run id, `models:/<name>/<version>` "
                "or `models:/<name>@<alias>`"})
    model_name: str = field(default="${tracking.experiment}", metadata={
        "help": "the MLflow registered model every candidate becomes a version of (alias `champion`); one per "
                "loop you want to keep apart, e.g. per seed"})
    prompts_per_round: Optional[int] = field(default=None, metadata={
        "help": "collect: N prompts per round, a seeded rotation through the prompts (build.prompts, less the dev "
                "topics); null = all of them every round"})
    data: LoopData = field(default=LoopData.round, metadata={
        "help": "`round`: DPO on this round's pairs; `all`: on every round's pairs so far"})
    init: LoopInit = field(default=LoopInit.champion, metadata={
        "help": "`champion`: the candidate continues the champion's adapter; `base`: a fresh adapter on the base"})
    reference: LoopReference = field(default=LoopReference.base, metadata={
        "help": "DPO's reference: `base` (the base model, fixed) or `champion` (the champion of the round)"})
    on_fail: str = field(default="continue", metadata={
        "help": "a candidate that fails the gate is registered but not promoted; then `stop` ends the loop, "
                "`continue` runs the next round from the same champion (with the next round's sampling seed)"})
    heldout_every_round: bool = field(default=True, metadata={
        "help": "evaluate every candidate on the held-out set (`data.heldout_path`) for the report (never for the "
                "gate); false: the final champion only"})
    dev: DevConfig = field(default_factory=DevConfig, metadata={"help": "the gate's dev split"})
    gate: GateConfig = field(default_factory=GateConfig, metadata={"help": "when a candidate becomes the champion"})


@dataclass
class LoopAppConfig(Config):
    build: BuildConfig = field(default_factory=BuildConfig, metadata={
        "help": "how each round's pairs are built (`dpo_exp.data.build`; presets `build=NAME`); `build.prompts` "
                "are the prompts collected, `build.adapter` and `build.out` are set by the loop"})
    loop: LoopConfig = field(default_factory=LoopConfig, metadata={"help": "the loop's own keys"})
    judge: Any = field(default=None, metadata={
        "help": "the judge of each round's candidate pairs (group `judge`): a `_target_` node naming its class with "
                "its options, as the build's"})


def register() -> None:
    """`conf/loop.yaml` starts its defaults with `loop_schema`, this dataclass."""
    config.register()
    ConfigStore.instance().store(name="loop_schema", node=LoopAppConfig)


def to_object(cfg: DictConfig) -> LoopAppConfig:
    """The typed config, training's checks (`config.validate`) and the loop's (`check`) passed."""
    from omegaconf.errors import MissingMandatoryValue

    try:
        obj = config.to_object(cfg)
    except MissingMandatoryValue as e:
        raise UserError(f"{e.full_key} has no value, and the loop needs one. Fix: set it, e.g. "
                        "a loop experiment (+experiment=NAME, conf/loop_only/experiment/), or build=<preset> / "
                        "build.prompts=prompts.jsonl.") from None
    assert isinstance(obj, LoopAppConfig), "compose with conf/loop.yaml (its defaults start with loop_schema)"
    check(obj)
    return obj


def min_gain(gate: GateConfig, round_: int) -> float:
    values = list(gate.min_gain) if isinstance(gate.min_gain, (list, tuple)) or OmegaConf.is_list(gate.min_gain) \
        else [gate.min_gain]
    return float(values[min(round_, len(values)) - 1])


def check(conf: LoopAppConfig) -> None:
    """The loop's keys, before any work (the gate's metric names are checked against the metric in `stages`)."""

    def bad(key: str, value: Any, why: str, fix: str) -> None:
        raise UserError(f"Invalid config value {key}={value!r}: {why}. Fix: {fix}.")

    loop, gate = conf.loop, conf.loop.gate
    if loop.rounds < 1:
        bad("loop.rounds", loop.rounds, "a loop runs at least one round", "use e.g. loop.rounds=2")
    if loop.on_fail not in ON_FAIL:
        bad("loop.on_fail", loop.on_fail, "what a failed gate does next: stop or continue",
            "use loop.on_fail=stop or loop.on_fail=continue")
    if loop.prompts_per_round is not None and loop.prompts_per_round < 1:
        bad("loop.prompts_per_round", loop.prompts_per_round, "must be >= 1 or null", "use e.g. 100, or null for all")
    if not loop.model_name or any(c in loop.model_name for c in "/@:"):
        bad("loop.model_name", loop.model_name, "a registered model's name cannot be empty or contain / @ :",
            "use e.g. loop.model_name=my_loop")
    gains = gate.min_gain if isinstance(gate.min_gain, (list, tuple)) or OmegaConf.is_list(gate.min_gain) \
        else [gate.min_gain]
    if not gains or not all(isinstance(g, (int, float)) and not isinstance(g, bool) for g in gains):
        bad("loop.gate.min_gain", gate.min_gain, "a number or a list of numbers (one per round)",
            "use e.g. loop.gate.min_gain=0.02 or loop.gate.min_gain=[0.0,0.05]")
    for name, loss in gate.guards.items():
        if not isinstance(loss, (int, float)) or loss < 0:
            bad(f"loop.gate.guards.{name}", loss, "the largest loss allowed, a number >= 0",
                f"use e.g. loop.gate.guards.{name}=0.05")
    s = gate.significance
    if not 0 < s.alpha < 1:
        bad("loop.gate.significance.alpha", s.alpha, "a p-value threshold in (0, 1)", "use e.g. 0.05")
    if s.resamples < 100:
        bad("loop.gate.significance.resamples", s.resamples, "too few for a p-value", "use e.g. 1000")
    if not loop.dev.path:
        bad("loop.dev.path", loop.dev.path, "the gate measures candidate and champion on a dev split, and none is "
            "given", "set loop.dev.path=<prompts file drawn from the training side> (a loop experiment in "
            "conf/loop_only/experiment/ sets its task's)")
    if conf.data.heldout_path and str(loop.dev.path) == str(conf.data.heldout_path):
        bad("loop.dev.path", loop.dev.path, "it is the held-out set (data.heldout_path), which the gate must never "
            "see (the held-out numbers would then be selected on)", "give a dev split drawn from the training side")
    if loop.dev.max_prompts is not None and loop.dev.max_prompts < 1:
        bad("loop.dev.max_prompts", loop.dev.max_prompts, "must be >= 1 or null", "use e.g. 40, or null for all")
    if conf.stage != config.Stage.dpo:
        bad("stage", conf.stage.value, "the loop trains DPO rounds", "drop stage (stage=dpo)")
    if not conf.lora.enabled:
        bad("lora", "none", "every round's candidate is a LoRA adapter registered as a model version",
            "use a LoRA preset (lora=attn or lora=all_linear)")
