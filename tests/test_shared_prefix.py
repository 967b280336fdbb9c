"""train.forward=shared_prefix against TRL's own forward: same log-probs, same losses, same training.

The shared-prefix forward (dpo_exp/shared_prefix.py) runs each pair as one row with its prompt once;
every number TRL computes from the log-probs must come out as with TRL's two rows per pair.
"""

from __future__ import annotations

import math

import pytest
import torch

from dpo_exp import shared_prefix
from dpo_exp.shared_prefix import SharedPrefixForward, pack
from conftest import compose
from test_train import SMOKE, tiny_trainer

PUSHBACK = ["data=sycophancy"]  # multi-turn prompts (the flagship's pairs)
CLAIMS = []  # single-turn prompts (SMOKE's default data)
FIELDS = ("log_probs", "entropy", "mean_logits")


def a_trained_policy(tmp_path, monkeypatch, overrides):
    """A tiny trainer whose LoRA has moved (an untrained LoRA is the reference, which proves less)."""
    trainer = tiny_trainer(tmp_path, monkeypatch, [
        *overrides, "train.forward=standard", "train.max_steps=3", "train.learning_rate=1e-2", "lora.dropout=0",
        "eval.at_start=false", "train.eval_steps=1000", "train.cache_ref_log_probs=false"])
    trainer.train()
    trainer.model.eval()
    return trainer


def batches(trainer, n=3):
    columns = ["prompt_ids", "chosen_ids", "rejected_ids"]
    ds = trainer.train_dataset
    size = trainer.args.per_device_train_batch_size
    for start in range(0, min(len(ds), n * size), size):
        yield trainer.data_collator([{k: ds[i][k] for k in columns} for i in range(start, min(start + size, len(ds)))])


def fused(model, batch, **inputs):
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        return model(input_ids=inputs.get("input_ids", batch["input_ids"]),
                     attention_mask=inputs.get("attention_mask", batch["attention_mask"]),
                     labels=inputs.get("labels", labels), fused_lm_head=True, use_cache=False)


@pytest.mark.parametrize("data", [PUSHBACK, CLAIMS], ids=["multi_turn", "single_turn"])
def test_per_token_fields_equal_trls_forward(data, tmp_path, monkeypatch):
    trainer = a_trained_policy(tmp_path, monkeypatch, data)
    model = trainer.model
    for batch in batches(trainer):
        standard, shared = fused(model, batch), fused(SharedPrefixForward(model), batch)
        scored = batch["completion_mask"][:, 1:].bool()
        for name in FIELDS:
            assert getattr(shared, name).shape == getattr(standard, name).shape
            torch.testing.assert_close(getattr(shared, name)[scored], getattr(standard, name)[scored], atol=1e-4, rtol=1e-5)
            assert not getattr(shared, name)[~scored].any(), f"{name}: only reply positions are filled"
        assert torch.equal(shared.is_top1 & scored, standard.is_top1 & scored)
        torch.testing.assert_close(shared.log_probs.sum(1), standard.log_probs.sum(1), atol=1e-4, rtol=1e-5)


def test_truncated_replies_score_the_same_tokens(tmp_path, monkeypatch):
    """train.max_length cutting the replies (TRL truncates prompt + reply, keep_start): the kept tokens only."""
    probe = tiny_trainer(tmp_path / "probe", monkeypatch, [*PUSHBACK, "train.cache_ref_log_probs=false"])
    longest_prompt = max(len(p) for p in probe.train_dataset["prompt_ids"])
    trainer = a_trained_policy(tmp_path, monkeypatch, [*PUSHBACK, f"train.max_length={longest_prompt + 3}"])
    cut = 0
    for batch in batches(trainer):
        cut += int((batch["attention_mask"].sum(1) == longest_prompt + 3).sum())
        standard, shared = fused(trainer.model, batch), fused(SharedPrefixForward(trainer.model), batch)
        torch.testing.assert_close(shared.log_probs.sum(1), standard.log_probs.sum(1), atol=1e-4, rtol=1e-5)
    assert cut > 0, "no row was truncated: the test proves nothing"


def test_left_padded_rows_give_the_same_per_pair_log_probs(tmp_path, monkeypatch):
    trainer = a_trained_policy(tmp_path, monkeypatch, PUSHBACK)
    model = trainer.model
    for batch in batches(trainer):
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        lengths = batch["attention_mask"].sum(1)
        assert lengths.min() < lengths.max(), "equal lengths: no padding to move"
        shift = [int(batch["input_ids"].size(1) - n) for n in lengths]
        left = {k: torch.stack([row.roll(s) for row, s in zip(v, shift)]) for k, v in
                {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}.items()}
        assert (left["attention_mask"][:, 0] == 0).any()
        standard = fused(model, batch).log_probs.sum(1)
        shared = fused(SharedPrefixForward(model), batch, **left).log_probs.sum(1)
        torch.testing.assert_close(shared, standard, atol=1e-4, rtol=1e-5)


LOSSES = [["loss=sigmoid"], ["loss=ipo"], ["loss=sigmoid_norm"], ["loss=sigmoid", "loss.ld_alpha=0.5"],
          ["loss=sigmoid", "loss.use_weighting=true"], ["loss=sigmoid", "loss.extra_types=[sft]"]]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda o: "+".join(x.split("=")[-1] for x in o))
def test_losses_and_metrics_equal_trls_forward(loss, tmp_path, monkeypatch):
    """TRL's loss and its logged metrics from the same batch, through either forward (LD-DPO and WPO read
    per-token fields, sigmoid_norm and IPO the completion lengths)."""
    trainer = a_trained_policy(tmp_path, monkeypatch, [*PUSHBACK, *loss])
    trainer.model.train()  # dropout is 0: deterministic
    for forward in ("standard", "shared_prefix"):
        trainer.forward = forward
        trainer._metrics["train"].clear()
        values = {}
        for i, batch in enumerate(batches(trainer, n=2)):
            batch = {**batch, **{k: torch.tensor(v) for k, v in ref_columns(trainer, i, batch).items()}}
            with torch.no_grad():
                values[i] = trainer.compute_loss(trainer.model, batch).item()
        metrics = {k: v[:] for k, v in trainer._metrics["train"].items()}
        if forward == "standard":
            expected, expected_metrics = values, metrics
    assert values == pytest.approx(expected, rel=1e-4, abs=1e-5)
    for key in ("rewards/margins", "logps/chosen", "logps/rejected", "entropy", "logits/chosen", "mean_token_accuracy"):
        assert metrics[key] == pytest.approx(expected_metrics[key], rel=1e-4, abs=1e-4), key


def ref_columns(trainer, i, batch):
    size = trainer.args.per_device_train_batch_size
    ds = trainer.train_dataset
    rows = range(i * size, i * size + batch["input_ids"].size(0) // 2)
    return {"ref_chosen_logps": [ds[j]["ref_chosen_logps"] for j in rows],
            "ref_rejected_logps": [ds[j]["ref_rejected_logps"] for j in rows]}


@pytest.mark.parametrize("lora", ["attn", "none"])
def test_training_matches_trls_forward(lora, tmp_path, monkeypatch):
    """Six steps through either forward (LoRA and full fine-tuning): the same losses and margins."""
    args = [*PUSHBACK, f"lora={lora}", "train.max_steps=6", "train.logging_steps=1", "eval.at_start=false",
            "train.eval_steps=1000", f"paths.cache={tmp_path / 'cache'}"]
    if lora != "none":
        args.append("lora.dropout=0")  # one dropout mask per prompt instead of two would change the draw
    history = {}
    for forward in ("standard", "shared_prefix"):
        trainer = tiny_trainer(tmp_path / forward, monkeypatch, [*args, f"train.forward={forward}"])
        trainer.train()
        history[forward] = [(e["loss"], e["rewards/margins"]) for e in trainer.state.log_history if "loss" in e]
    assert len(history["standard"]) == 6
    for (loss, margin), (loss_ref, margin_ref) in zip(history["shared_prefix"], history["standard"]):
        assert loss == pytest.approx(loss_ref, rel=1e-3, abs=1e-4)
        assert margin == pytest.approx(margin_ref, rel=1e-3, abs=1e-4)
    assert history["standard"][0] != history["standard"][-1]  # training moved: the comparison means something


def test_the_reference_pass_goes_through_the_shared_forward(tmp_path, monkeypatch, capsys):
    trainer = tiny_trainer(tmp_path, monkeypatch, [*PUSHBACK, "train.cache_ref_log_probs=false"])
    assert trainer.forward == "shared_prefix"
    assert isinstance(trainer.model_forward(trainer.model), SharedPrefixForward)
    ds = trainer.train_dataset
    batch = next(batches(trainer, n=1))
    chosen, _ = trainer.compute_ref_log_probs(trainer.model, batch)  # TRL's forward, for comparison
    assert ds["ref_chosen_logps"][: len(chosen)] == pytest.approx(chosen.tolist(), abs=1e-4)
    assert "train.forward=shared_prefix" not in capsys.readouterr().out  # no fallback said


def test_a_batch_that_cannot_share_its_prompt_falls_back_and_says_why(tmp_path, monkeypatch):
    trainer = a_trained_policy(tmp_path, monkeypatch, PUSHBACK)
    batch = next(batches(trainer, n=1))
    b = batch["input_ids"].size(0) // 2
    batch["input_ids"][b, 0] = (batch["input_ids"][b, 0] + 1) % trainer.model.config.vocab_size  # rejected prompt differs
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    assert pack(batch["input_ids"], batch["attention_mask"], labels) is None
    said = []
    out = fused(SharedPrefixForward(trainer.model, on_fallback=said.append), batch)
    torch.testing.assert_close(out.log_probs, fused(trainer.model, batch).log_probs)
    assert len(said) == 1 and "do not share their prompt" in said[0]


def test_models_without_a_custom_mask_fall_back(tmp_path, monkeypatch, capsys):
    """Flash-attention (no 4D mask) and prompt tuning (virtual tokens): TRL's forward, one line saying why."""
    from peft import PromptTuningConfig, get_peft_model

    from dpo_exp import config, models

    _, fresh = models.build_tiny(config.to_object(compose(SMOKE)).model.tiny, ["Is the sky blue? Yes."], seed=0)
    tuned = get_peft_model(fresh, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    assert "virtual tokens" in shared_prefix.fallback_reason(tuned)
    trainer = tiny_trainer(tmp_path, monkeypatch, [*PUSHBACK, "train.cache_ref_log_probs=false"])
    base = trainer.model.get_base_model()
    base.config._attn_implementation = "flash_attention_2"
    try:
        assert "takes no custom 4D mask" in shared_prefix.fallback_reason(trainer.model)
        assert trainer.model_forward(trainer.model) is trainer.model
    finally:
        base.config._attn_implementation = "sdpa"
    out = capsys.readouterr().out
    assert out.count("train.forward=shared_prefix: attention implementation 'flash_attention_2'") == 1


def test_pack_lays_each_pair_out_once():
    """The layout itself: prompt once, each branch re-reads the prompt's last token, rejected never sees chosen."""
    #          prompt     chosen   | prompt     rejected (shorter: padded)
    ids = torch.tensor([[1, 2, 3, 10, 11], [1, 2, 3, 20, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    labels = torch.tensor([[-100, -100, -100, 10, 11], [-100, -100, -100, 20, -100]])
    p = pack(ids, mask, labels)
    assert p.input_ids.tolist() == [[1, 2, 3, 10, 11, 3, 20]]
    assert p.position_ids.tolist() == [[0, 1, 2, 3, 4, 2, 3]]
    assert p.shift_labels.tolist() == [[-100, -100, 10, 11, -100, 20, -100]]
    sees = p.attention_mask[0, 0]
    assert sees[5].tolist() == [True, True, False, False, False, True, False]  # rejected's copy of token 3
    assert sees[6].tolist() == [True, True, False, False, False, True, True]
    assert sees[4].tolist() == [True, True, True, True, True, False, False]
    # Scored positions land where TRL's output has them: column t scores token t + 1.
    assert list(zip(*[t.tolist() for t in p.dst])) == [(0, 2), (0, 3), (1, 2)]
    assert math.prod(p.shape) == 2 * 4


@pytest.mark.integration
def test_bundled_model_on_the_flagships_pairs(tmp_path, monkeypatch):
    """The real case: SmolLM2-135M (sdpa, tied LM head, 49k vocabulary) on pushback pairs, LoRA moved off zero."""
    trainer = tiny_trainer(tmp_path, monkeypatch, [*PUSHBACK, "model=smollm2-135m", "train.batch_size=8",
                                                   "train.cache_ref_log_probs=false"])
    assert trainer.model.config._attn_implementation == "sdpa"
    with torch.no_grad():  # a LoRA away from zero: policy != reference
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    trainer.model.eval()
    batch = next(batches(trainer, n=1))
    standard, shared = fused(trainer.model, batch), fused(SharedPrefixForward(trainer.model), batch)
    torch.testing.assert_close(shared.log_probs.sum(1), standard.log_probs.sum(1), atol=1e-4, rtol=1e-5)
    assert shared.log_probs.sum(1)[:8].tolist() != pytest.approx(trainer.train_dataset["ref_chosen_logps"][:8], abs=1e-3)
