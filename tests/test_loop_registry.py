"""`models:/<name>/<version>` and `models:/<name>@<alias>` wherever an adapter is accepted (dpo_exp.adapters, the
one resolver): looked up with MLflow's registry client in a real sqlite store, the version's artifacts downloaded;
an unknown name, version or alias is a UserError naming the key and what exists. (The eval command with a loop's
champion: tests/test_loop.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import mlflow_client, run_cli
from test_loop import ok


# --- models:/ sources, resolved through MLflow's registry client -----------------------------------------


def _registered_adapter(tmp_path: Path) -> tuple[Path, str]:
    """A non-zero LoRA adapter on the tiny model, logged by a run and registered as version 1 (alias champion)."""
    import mlflow
    import torch
    from peft import LoraConfig, get_peft_model

    from dpo_exp import models
    from dpo_exp.config import Config, ModelConfig, ModelSource

    _, model, _ = models.load(Config(model=ModelConfig(name="tiny", source=ModelSource.tiny)), ["a b c", "d e f"])
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 2.0)
    folder = tmp_path / "adapter"
    peft.save_pretrained(folder)  # no tokenizer files: any tiny base of this shape takes it
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(folder), artifact_path="adapter")
    finally:
        mlflow.set_tracking_uri(None)
    client = mlflow_client(tmp_path)
    client.create_registered_model("mine")
    v = client.create_model_version("mine", f"runs:/{run.info.run_id}/adapter", run_id=run.info.run_id)
    client.set_registered_model_alias("mine", "champion", v.version)
    return folder, uri


def test_models_uris_resolve_through_the_registry_with_clear_errors(tmp_path):
    from dpo_exp import adapters
    from dpo_exp.config import UserError

    folder, uri = _registered_adapter(tmp_path)
    for spec in ("models:/mine/1", "models:/mine@champion"):
        source = adapters.resolve("x", spec, uri, tmp_path / "dl" / spec[-1], key="build.adapter")
        assert source.model_version == "mine/1" and source.run_id
        assert (source.path / "adapter_model.safetensors").read_bytes() == (folder / "adapter_model.safetensors").read_bytes()
    for spec, words in [("models:/mine/7", ["has no version '7'", "versions: 1", "@champion = 1"]),
                        ("models:/mine@best", ["has no alias 'best'"]),
                        ("models:/yours/1", ["no registered model 'yours'", "it has: mine"]),
                        ("models:/mine", ["not a registered-model URI", "models:/<name>@<alias>"])]:
        with pytest.raises(UserError) as e:
            adapters.resolve("x", spec, uri, tmp_path / "dl" / "bad", key="build.adapter")
        assert f"build.adapter={spec}" in str(e.value)
        for w in words:
            assert w in str(e.value), (w, str(e.value))


def test_the_build_command_takes_a_registered_model_as_its_adapter(tmp_path):
    folder, _ = _registered_adapter(tmp_path)
    common = ["build=sycophancy", "model=tiny", f"paths.cache={tmp_path / 'cache'}", "hardware=cpu", "build.max_prompts=3", "build.n=2",
              "build.max_new_tokens=4", "build.unfinished=keep", "build.keep_ties=true", "build.keep_both_bad=true"]
    local = ok(run_cli([*common, f"build.adapter={folder}", "build.out=local.jsonl"], tmp_path,
                       module="dpo_exp.build"))
    assert "replies: 0 cached, 6 generated" in local.stdout
    reg = ok(run_cli([*common, "build.adapter=models:/mine@champion", "build.out=reg.jsonl"], tmp_path,
                     module="dpo_exp.build"))
    assert "downloading registered model mine version 1" in reg.stdout
    assert "replies: 6 cached, 0 generated" in reg.stdout  # the same adapter content: the same replies
