"""Evaluation beyond TRL's metrics: generation, a sampled KL(policy || reference) estimate, and the
held-out before/after table.

KL estimator (`sampled_kl`): TRL logs no KL for offline DPO, so we estimate it on-policy. For a
fixed set of eval prompts x, draw completions y ~ pi(.|x) by plain sampling (temperature 1, no
top-k/top-p, so the samples follow the policy exactly), then score each sequence under the
policy and the reference:

    KL(pi || pi_ref) ~= mean over samples of  sum_t [log pi(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t)]

This is `kl/sampled`. It is unbiased but noisy (single samples can be negative). On the same
samples we also log `kl/sampled_full_vocab`, which replaces each token's log-ratio by the exact
KL between the two next-token distributions at that position:

    mean over samples of  sum_t KL(pi(.| x, y_<t) || pi_ref(.| x, y_<t))

Same expectation, never negative, much lower variance: prefer it when reading curves.
Completions stop at EOS or after `max_new_tokens`; both estimate the KL of the first
`max_new_tokens` tokens. Both are exactly 0 for an untrained LoRA adapter (its B matrices are
zero, so policy == reference) and grow as training moves the policy. Sampling uses a fixed seed inside a forked RNG, so training randomness is untouched
and successive evaluations reuse the same random stream (less noise between points).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import torch

from dpo_exp import cache


def render_prompts(tokenizer, prompts: list[list[dict]]) -> list[str]:
    return [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int, sample: bool, seed: int = 0,
             batch_size: int = 16, temperature: float = 1.0,
             top_p: float = 1.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Completions for chat prompts: a list of (prompt_ids, completion_ids) per prompt (no padding).

    Sampling defaults to the policy's exact distribution (temperature 1, no top-k/top-p), which the
    KL estimate needs; the eval command passes its own temperature and top_p."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    decoding = (dict(do_sample=True, temperature=temperature, top_k=0, top_p=top_p) if sample
                else dict(do_sample=False))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for batch in _batches(render_prompts(tokenizer, prompts), batch_size):
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            seqs = model.generate(
                **enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id, **decoding,
                # the model's generation_config may carry other sampling defaults; these are explicit
                repetition_penalty=1.0,
            )
            width = enc["input_ids"].shape[1]
            for row, mask, seq in zip(enc["input_ids"], enc["attention_mask"], seqs):
                completion = seq[width:]
                stop = (completion == tokenizer.eos_token_id).nonzero()
                if len(stop):
                    completion = completion[: stop[0].item() + 1]  # keep EOS: its probability counts too
                out.append((row[mask.bool()].cpu(), completion.cpu()))
    model.train(was_training)
    return out


def decode(tokenizer, completion_ids: torch.Tensor) -> str:
    return tokenizer.decode(completion_ids, skip_special_tokens=True).strip()


def _pad(pairs: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int):
    """Right-padded ids, attention mask, and a mask of the completion tokens."""
    seqs = [torch.cat([p, c]) for p, c in pairs]
    ids = torch.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    completion = torch.zeros_like(ids, dtype=torch.bool)
    for i, ((p, _), s) in enumerate(zip(pairs, seqs)):
        ids[i, : len(s)], mask[i, : len(s)], completion[i, len(p) : len(s)] = s, 1, True
    return ids, mask, completion


@torch.no_grad()
def token_logprobs(model, pairs: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int, batch_size: int = 16):
    """Per batch: (next-token log-distributions at the completion positions, the tokens taken).

    Yields, for each batch, a list of (logprobs [n_completion_tokens, vocab], token ids) per pair.
    """
    device = next(model.parameters()).device
    for batch in _batches(pairs, batch_size):
        ids, mask, completion = (t.to(device) for t in _pad(batch, pad_id))
        targets, sel = ids[:, 1:], completion[:, 1:]
        # Project onto the vocabulary only the positions that predict a completion token: transformers'
        # boolean `logits_to_keep` slices the hidden states before the LM head, which here is most of the
        # cost (prompts several times longer than the completions, a 49k vocabulary).
        keep = torch.zeros_like(completion)
        keep[:, :-1] = sel
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=keep).logits
        if logits.dim() == 3 and logits.shape[1] == ids.shape[1]:  # a model that ignores it: every position
            logits = logits[:, :-1][sel]
        elif logits.dim() != 2 or logits.shape[0] != int(sel.sum()):  # one that reads it otherwise
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1][sel]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        counts = sel.sum(dim=1).tolist()
        yield list(zip(logprobs.split(counts), targets[sel].split(counts)))


def sampled_kl(policy, tokenizer, prompts: list[list[dict]], as_reference: Callable[[], ContextManager], *,
               samples_per_prompt: int, max_new_tokens: int, seed: int, batch_size: int = 16) -> dict[str, float]:
    """On-policy Monte-Carlo estimates of KL(policy || reference); see the module docstring.

    `as_reference()` returns a context under which `policy` computes reference log-probs (the
    adapter disabled), or a context that yields a separate reference model.
    """
    was_training = policy.training
    policy.eval()
    try:
        repeated = [p for p in prompts for _ in range(samples_per_prompt)]
        pairs = generate(policy, tokenizer, repeated, max_new_tokens=max_new_tokens, sample=True, seed=seed,
                         batch_size=batch_size)
        ratios, full_vocab, n_tokens = [], [], 0
        # Batch by batch, so only one batch of [tokens, vocab] distributions is held at a time.
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            (pol,) = list(token_logprobs(policy, chunk, tokenizer.pad_token_id, batch_size))
            with as_reference() as ref:
                (rf,) = list(token_logprobs(ref or policy, chunk, tokenizer.pad_token_id, batch_size))
            for (lp, tok), (lq, _) in zip(pol, rf):
                ratios.append((lp.gather(-1, tok[:, None]) - lq.gather(-1, tok[:, None])).sum().item())
                full_vocab.append((lp.exp() * (lp - lq)).sum().clamp_min(0).item())
                n_tokens += len(tok)
    finally:
        policy.train(was_training)
    mean = sum(ratios) / len(ratios)
    var = sum((r - mean) ** 2 for r in ratios) / max(len(ratios) - 1, 1)
    return {
        "kl/sampled": mean,
        "kl/sampled_stderr": math.sqrt(var / len(ratios)),
        "kl/sampled_per_token": sum(ratios) / max(n_tokens, 1),
        "kl/sampled_full_vocab": sum(full_vocab) / len(full_vocab),
    }


def reference_context(trainer) -> Callable[[], ContextManager]:
    """How to get reference log-probs from a DPO trainer: TRL's own rule (separate ref model, the
    'ref' adapter when training started from an adapter, else the adapter disabled)."""
    if trainer.ref_model is not None:
        ref = trainer.accelerator.unwrap_model(trainer.ref_model)
        return lambda: contextlib.nullcontext(ref)
    from trl.trainer.utils import use_adapter

    policy = trainer.accelerator.unwrap_model(trainer.model)
    name = "ref" if "ref" in getattr(policy, "peft_config", {}) else None

    @contextlib.contextmanager
    def ctx():
        with use_adapter(policy, adapter_name=name):
            yield None

    return ctx


def adapter_disabled(model) -> Callable[[], ContextManager]:
    """Reference context for a PEFT model: every adapter off (the base model)."""

    @contextlib.contextmanager
    def ctx():
        with model.disable_adapter():
            yield None

    return ctx


def reference_replies(policy, tokenizer, heldout: list[dict], as_reference: Callable[[], ContextManager], *,
                      max_new_tokens: int, batch_size: int = 16, cache_dir: Path | None = None,
                      reference_hash: Callable[[], str] | None = None) -> tuple[list[str], bool]:
    """Greedy replies of the reference to the held-out prompts (the "before" column), and whether they came
    from `cache_dir`: there they are kept once per reference weights, prompt tokens and decoding
    (`dpo_exp.cache`), so the runs of a sweep and every later run of the same task generate them once.
    `reference_hash`: returns the reference's `cache.base_weights_hash` when the caller keeps it (a trainer)."""
    prompts = [row["prompt"] for row in heldout]

    def generate_them() -> list[str]:
        with as_reference() as ref:
            return [decode(tokenizer, c) for _, c in generate(ref or policy, tokenizer, prompts,
                                                              max_new_tokens=max_new_tokens, sample=False,
                                                              batch_size=batch_size)]

    if cache_dir is None:
        return generate_them(), False
    if reference_hash is None:
        with as_reference() as ref:
            weights = cache.base_weights_hash(ref or policy)
    else:
        weights = reference_hash()
    h = hashlib.sha256(weights.encode())
    for ids in tokenizer(render_prompts(tokenizer, prompts), add_special_tokens=False)["input_ids"]:
        h.update(torch.tensor(ids, dtype=torch.int64).numpy().tobytes() + b"|")
    # Greedy decoding is a function of these too: the batch's left padding, the dtype and kernels.
    param = next(policy.parameters())
    h.update(json.dumps([max_new_tokens, batch_size, str(param.dtype), param.device.type, torch.__version__,
                         tokenizer.eos_token_id, tokenizer.pad_token_id]).encode())
    return cache.json_cached(Path(cache_dir) / f"{h.hexdigest()[:24]}.json", generate_them)


def before_after(policy, tokenizer, heldout: list[dict], before: list[str], *, max_new_tokens: int,
                 batch_size: int = 16) -> list[dict]:
    """The held-out generations table: each row's fields, the reference's reply (`before`, from
    `reference_replies`) and the policy's greedy reply (after)."""
    after = generate(policy, tokenizer, [row["prompt"] for row in heldout], max_new_tokens=max_new_tokens,
                     sample=False, batch_size=batch_size)
    rows = []
    for row, b, (_, a) in zip(heldout, before, after):
        extra = {k: v for k, v in row.items() if k != "prompt"}
        rows.append({"prompt": row["prompt"][-1]["content"], **extra, "before": b, "after": decode(tokenizer, a)})
    return rows


def sequence_logprobs(model, pairs: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int | None,
                      batch_size: int = 16) -> list[float]:
    """log P(completion | prompt), summed over the completion's tokens, per (prompt_ids, completion_ids)."""
    return [float(lp.gather(-1, tok[:, None]).sum())
            for batch in token_logprobs(model, pairs, pad_id if pad_id is not None else 0, batch_size)
            for lp, tok in batch]


def behaviour_metrics(metric, heldout: list[dict], rows: list[dict]) -> dict[str, float]:
    """The behaviour metric (`eval.behaviour`) of the before/after generations, as `heldout/{before,after}/<key>`.

    Each reply's label goes into its table row as `label_before` / `label_after`. `heldout` are the
    held-out rows (prompt messages and fields), `rows` the table `before_after` made from them.
    """
    out: dict[str, float] = {}
    for when in ("before", "after"):
        responses = [row[when] for row in rows]
        for source, row, response in zip(heldout, rows, responses):
            row[f"label_{when}"] = metric.label(source, response)
        out.update({f"heldout/{when}/{k}": float(v) for k, v in metric.metrics(heldout, responses).items()})
    return out
