"""The keys of `python -m dpo_exp.label` (conf/label.yaml starts its defaults with `label_schema`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from dpo_exp import config
from dpo_exp.config import DataConfig, HardwareConfig, ModelConfig, PathsConfig, TrackingConfig, UserError


class Action(str, Enum):
    serve = "serve"  # the labeling page
    export = "export"  # majority votes -> a preference file, and the agreement report
    judge = "judge"  # a judge plug-in against the human labels

    def __str__(self) -> str:  # `${label.action}` in the run dir's name: "export", not "Action.export"
        return self.value


class Mode(str, Enum):
    pairs = "pairs"  # label the pairs of a file
    arena = "arena"  # annotators type prompts; two models answer; the vote becomes a pair


class Ties(str, Enum):
    drop = "drop"  # an item without a majority (or whose majority is tie) is left out, and counted
    keep = "keep"  # ... is written with the file's own chosen/rejected and `verdict: tie`


@dataclass
class ArenaConfig:
    a: str = field(default="base", metadata={
        "help": "the first contender: `base` (the `model` as loaded) or an adapter on it (an adapter folder, a "
                "run dir, `runs:/<id>`, an MLflow run id)"})
    b: Optional[str] = field(default=None, metadata={"help": "the second contender, as `a`; required in arena mode"})
    max_new_tokens: int = field(default=128, metadata={"help": "tokens per reply, at most"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature of both replies; 0 = greedy"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling of both replies, in (0, 1]"})


@dataclass
class LabelConfig:
    mode: Mode = field(default=Mode.pairs, metadata={
        "help": "`pairs`: label the pairs of `data.path`; `arena`: annotators type a prompt, the two contenders "
                "of `label.arena` answer (sides shuffled, names shown after the vote), the vote becomes a pair and "
                "the prompt is kept (`data.path` unused)"})
    action: Action = field(default=Action.serve, metadata={
        "help": "`serve` (the labeling page), `export` (majority votes -> a preference file that trains, plus the "
                "agreement report) or `judge` (the configured judge against the human labels, both orders)"})
    host: str = field(default="127.0.0.1", metadata={
        "help": "address the page listens on: 127.0.0.1 (this machine only); 0.0.0.0 shares it on your network "
                "(set `label.auth` then)"})
    port: int = field(default=7860, metadata={"help": "port of the page; one in use is an error before start"})
    db: Optional[str] = field(default=None, metadata={
        "help": "label database, any SQLAlchemy URL (`sqlite:///labels.db`, `postgresql+psycopg://user@host/db`) "
                "or a file path; null = `<paths.outputs>/labels/<data file name>.sqlite`. Tied to the pairs file "
                "by its digest"})
    auth: Optional[str] = field(default=None, metadata={
        "help": "users file (one `name:password` per line): the page asks for a login and the name is the "
                "annotator; null = annotators type their name"})
    overlap: int = field(default=1, metadata={
        "help": "annotators per item (>= 1); 2 or more lets the agreement report measure agreement"})
    reserve_minutes: float = field(default=60.0, metadata={
        "help": "a pair shown to an annotator who never voted on it goes to someone else after this many minutes "
                "(when `overlap` annotators already hold it); the first annotator can still vote on it"})
    dimensions: List[str] = field(default_factory=lambda: ["helpfulness", "accuracy", "safety"], metadata={
        "help": "optional 1-5 scores per reply on the page (an empty list: none); exported as the `dimensions` "
                "block"})
    seed: int = field(default=0, metadata={
        "help": "with the annotator's name and the item, decides which reply is shown as A (recorded per label)"})
    ties: Ties = field(default=Ties.drop, metadata={
        "help": "export: items whose majority is a tie, or that have no majority: `drop` (counted) or `keep` "
                "(the file's chosen/rejected, `verdict: tie`); a both-bad majority is always dropped"})
    min_votes: int = field(default=1, metadata={"help": "export and judge: items with fewer votes are left out"})
    out: Optional[str] = field(default=None, metadata={
        "help": "export: the output `.jsonl`; null = `<run dir>/labeled_pairs.jsonl`"})
    arena: ArenaConfig = field(default_factory=ArenaConfig, metadata={"help": "arena mode's two contenders"})


@dataclass
class LabelAppConfig:
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "the pairs to label (as training's)"})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={
        "help": "arena mode: the base model the contenders run on (as training's)"})
    hardware: HardwareConfig = field(default_factory=HardwareConfig, metadata={
        "help": "as training's (a model judge's device)"})
    tracking: TrackingConfig = field(default_factory=TrackingConfig, metadata={"help": "as training's"})
    paths: PathsConfig = field(default_factory=PathsConfig, metadata={"help": "as training's"})
    # Any: the options depend on the class, which checks them.
    judge: Any = field(default=None, metadata={
        "help": "label.action=judge: the judge to compare with the people (group `judge`)"})
    label: LabelConfig = field(default_factory=LabelConfig, metadata={"help": "the labeling command's own keys"})


def register() -> None:
    config.register()
    ConfigStore.instance().store(name="label_schema", node=LabelAppConfig)


def to_object(cfg: DictConfig) -> LabelAppConfig:
    """The typed config, checked: every problem is a UserError naming the key, before anything starts."""
    from omegaconf.errors import MissingMandatoryValue

    try:
        return checked(cfg)
    except MissingMandatoryValue as e:
        raise UserError(f"{e.full_key} is not set. Fix: pass it, e.g. python -m dpo_exp.label data=file "
                        "data.path=pairs.jsonl") from None


def checked(cfg: DictConfig) -> LabelAppConfig:
    """`to_object` without turning a key still to be given (`???`) into an error: what `--cfg job` validates."""
    unknown = config.unknown_keys(cfg)
    if unknown:
        key, known = unknown[0]
        raise UserError(f"Unknown config key {key}: python -m dpo_exp.label has no such key. Fix: remove it, or use "
                        f"one that exists (there: {', '.join(known)}).")
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, LabelAppConfig), "compose with conf/label.yaml (its defaults start with label_schema)"
    validate(obj.label)
    return obj


def validate(c: LabelConfig) -> None:
    def bad(key: str, value: Any, why: str, fix: str) -> None:
        raise UserError(f"Invalid config value label.{key}={value!r}: {why}. Fix: {fix}.")

    if not 0 < c.port < 65536:
        bad("port", c.port, "not a TCP port", "use a number from 1024 to 65535, e.g. label.port=7860")
    if c.overlap < 1:
        bad("overlap", c.overlap, "each item needs at least one annotator", "use label.overlap=1, or 2+ to measure "
            "agreement")
    if c.reserve_minutes <= 0:
        bad("reserve_minutes", c.reserve_minutes, "must be > 0", "use e.g. label.reserve_minutes=60")
    if c.min_votes < 1:
        bad("min_votes", c.min_votes, "must be >= 1", "use label.min_votes=1")
    if c.mode == Mode.arena:
        if not c.arena.b:
            bad("arena.b", c.arena.b, "arena mode compares two contenders", "e.g. label.arena.a=base "
                "label.arena.b=outputs/<experiment>/<date> (a trained adapter), or runs:/<run id>")
        if c.action == Action.judge:
            bad("action", "judge", "judge vs human needs a file of pairs, not arena votes", "export the arena votes "
                "(label.action=export), then run label.action=judge on that file")
        if c.arena.max_new_tokens < 1 or c.arena.temperature < 0 or not 0 < c.arena.top_p <= 1:
            bad("arena", "max_new_tokens/temperature/top_p", "out of range",
                "max_new_tokens >= 1, temperature >= 0, top_p in (0, 1]")
    names = [str(d) for d in c.dimensions]
    if len(set(names)) != len(names) or any(not n.strip() for n in names):
        bad("dimensions", names, "names must be unique and non-empty", "e.g. label.dimensions=[helpfulness,safety]")
