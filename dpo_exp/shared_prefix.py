"""The shared-prefix DPO forward (`train.forward=shared_prefix`): each pair's prompt computed once.

TRL's DPO forward runs a batch of B pairs as 2B rows, `prompt + chosen` then `prompt + rejected`,
each padded to the longest: the prompt, which for a multi-turn task is several times longer than
the replies, goes through the model twice. Here each pair is one row (Wang et al. 2024,
"Accelerating Direct Preference Optimization with Prefix Sharing"):

    prompt[:-1] | prompt[-1] chosen... | prompt[-1] rejected...
    positions    0..P-2 | P-1 .. P-1+C      | P-1 .. P-1+R

with a 4D attention mask: causal, except that the rejected branch does not see the chosen branch.
Each branch starts with a copy of the prompt's last token (same position, same visible context,
so the same hidden state), whose next-token label is the branch's first reply token: every scored
position keeps exactly the context it has in TRL's layout, so the log-probabilities are the same
up to floating-point summation order (tests/test_shared_prefix.py: within 1e-4 in fp32).

`SharedPrefixForward` wraps the model the trainer calls. TRL's `_compute_loss` and
`compute_ref_log_probs` call `model(input_ids, attention_mask, labels, fused_lm_head=True)` on
TRL's 2B-row batch and read per-token fields (log-probs, entropy, mean logits, top-1) in that
layout; the wrapper runs the packed rows through the same fused LM head (with pre-shifted labels,
so each branch predicts its own next token) and scatters the per-token fields back into TRL's
layout. TRL's losses, LD-DPO's length split, WPO weights and metrics then run unchanged.

Where the layout cannot apply, the batch goes through TRL's own forward; `fallback_reason` names
why (the trainer prints it once): attention implementations that take no custom 4D mask
(flash-attention, flex), prompt-learning PEFT (virtual tokens). A batch whose chosen and rejected
rows do not share their prompt (TRL's `truncation_mode=keep_end` cutting a long pair), or that
carries inputs besides the tokens (vision), goes through TRL's forward alone; the trainer says so once.

Only the reply tokens are scored by the LM head. TRL's fused head does that on CUDA/XPU with Triton
but, elsewhere, projects every position (prompt and padding too) onto the 49k-token vocabulary, so
that tile shapes stay fixed for compilers such as Neuron's; on a CPU that projection was about
half of the step (docs/benchmarks.md). `replies_only` lets the CPU take TRL's own compact path.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

# Per-token fields of TRL's FusedCausalLMOutput, scattered back into TRL's layout.
PER_TOKEN_FIELDS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask")
# Attention implementations that take a custom 4D mask (bool for SDPA, additive float for eager).
MASKABLE_ATTENTION = ("sdpa", "eager")


def fallback_reason(model) -> str | None:
    """Why the shared-prefix layout cannot serve this model, or None when it can."""
    from peft import PeftModel

    inner = model
    while hasattr(inner, "module"):  # DDP / DeepSpeed wrappers
        inner = inner.module
    if isinstance(inner, PeftModel) and getattr(inner.active_peft_config, "is_prompt_learning", False):
        return "prompt-learning PEFT prepends virtual tokens to every row"
    attn = getattr(inner.config, "_attn_implementation", None) or "eager"
    if attn not in MASKABLE_ATTENTION:
        return f"attention implementation {attn!r} takes no custom 4D mask (sdpa and eager do)"
    return None


@contextlib.contextmanager
def replies_only():
    """TRL's fused LM head scores only the labelled positions on a CPU too (it does on Triton devices)."""
    from trl.trainer import utils

    triton_only = utils._use_triton
    utils._use_triton = lambda device: device.type == "cpu" or triton_only(device)
    try:
        yield
    finally:
        utils._use_triton = triton_only


@dataclass
class Packed:
    """One row per pair, and where each scored position goes in TRL's 2B-row layout."""

    input_ids: torch.Tensor  # (B, S)
    position_ids: torch.Tensor  # (B, S)
    attention_mask: torch.Tensor  # (B, 1, S, S) bool, True = may attend
    shift_labels: torch.Tensor  # (B, S): the next token of the same branch, -100 where nothing is scored
    src: tuple[torch.Tensor, torch.Tensor]  # (row, column) in the packed rows of each scored position
    dst: tuple[torch.Tensor, torch.Tensor]  # (row, column) of the same position in TRL's (2B, L-1) output
    shape: tuple[int, int]  # TRL's output shape (2B, L-1)


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> Packed | None:
    """TRL's batch (chosen rows then rejected rows; labels -100 outside the replies) as one row per pair.

    Rows may be padded on either side (the real tokens are where `attention_mask` is 1, contiguous).
    None when a pair's chosen and rejected rows do not share their prompt, or a row has no prompt.
    """
    two_b, length = input_ids.shape
    b = two_b // 2
    ids_cpu, mask_cpu, labels_cpu = input_ids.cpu(), attention_mask.cpu().bool(), labels.cpu()
    rows, positions, segments, shift, src, dst = [], [], [], [], [], []
    for i in range(b):
        branches = []
        for row in (i, b + i):
            cols = mask_cpu[row].nonzero().flatten().tolist()
            scored = [c for c in cols if labels_cpu[row, c] != -100]
            first = scored[0] if scored else cols[-1] + 1 if cols else 0
            prompt_cols = [c for c in cols if c < first]
            if not prompt_cols:
                return None
            reply_cols = [c for c in cols if c >= first]
            branches.append((row, prompt_cols, reply_cols))
        (c_row, c_prompt, c_reply), (r_row, r_prompt, r_reply) = branches
        if not torch.equal(ids_cpu[c_row, c_prompt], ids_cpu[r_row, r_prompt]):
            return None
        p = len(c_prompt)
        tokens = ids_cpu[c_row, c_prompt[:-1]].tolist()
        pos = list(range(p - 1))
        seg = [0] * (p - 1)
        lab = [-100] * (p - 1)
        for branch, (row, prompt_cols, reply_cols) in enumerate(branches, start=1):
            # The branch: the prompt's last token, then the reply; each position's label is the next token.
            branch_cols = [prompt_cols[-1], *reply_cols]
            start = len(tokens)
            tokens += ids_cpu[row, branch_cols].tolist()
            pos += list(range(p - 1, p - 1 + len(branch_cols)))
            seg += [branch] * len(branch_cols)
            for k, col in enumerate(branch_cols[:-1]):
                target = branch_cols[k + 1]
                if labels_cpu[row, target] != -100:
                    lab.append(int(labels_cpu[row, target]))
                    src.append((i, start + k))
                    dst.append((row, target - 1))  # TRL's output column t scores token t+1
                else:
                    lab.append(-100)
            lab.append(-100)  # a branch's last token predicts nothing
        rows.append(tokens)
        positions.append(pos)
        segments.append(seg)
        shift.append(lab)
    width = max(len(t) for t in rows)
    pad_id = int(ids_cpu[0, 0])  # any real token: padded positions are masked and unscored

    def padded(values, fill):
        return torch.tensor([v + [fill] * (width - len(v)) for v in values], dtype=torch.long)

    seg = padded(segments, -1)
    order = torch.arange(width)
    causal = order[None, :] <= order[:, None]  # (S, S): key column <= query column
    sees = causal[None] & (seg[:, None, :] >= 0)
    sees &= ~((seg[:, :, None] == 2) & (seg[:, None, :] == 1))  # rejected tokens do not see the chosen reply
    sees |= torch.eye(width, dtype=torch.bool)[None]  # padded queries see themselves (no empty softmax row)
    device = input_ids.device
    src_t, dst_t = torch.tensor(src, dtype=torch.long).reshape(-1, 2), torch.tensor(dst, dtype=torch.long).reshape(-1, 2)
    return Packed(
        input_ids=padded(rows, pad_id).to(device),
        position_ids=padded(positions, 0).to(device),
        attention_mask=sees[:, None].to(device),
        shift_labels=padded(shift, -100).to(device),
        src=(src_t[:, 0].to(device), src_t[:, 1].to(device)),
        dst=(dst_t[:, 0].to(device), dst_t[:, 1].to(device)),
        shape=(two_b, length - 1),
    )


class SharedPrefixForward:
    """Stands in for the model in TRL's `_compute_loss` / `compute_ref_log_probs` (see the module docstring).

    Calls without `fused_lm_head=True`, and batches `pack` cannot lay out, go to the model unchanged.
    `attention`: the model's attention implementation (the mask is bool for SDPA, additive for eager).
    """

    def __init__(self, model, *, attention: str = "sdpa", on_fallback=None):
        self.model = model
        self.attention = attention
        self.on_fallback = on_fallback or (lambda reason: None)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *, input_ids, attention_mask, labels=None, fused_lm_head=False, **kwargs):
        standard = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels, fused_lm_head=fused_lm_head)
        if not fused_lm_head or labels is None:
            return self.model(**standard, **kwargs)  # not a log-prob call (TRL's deprecated logits path)
        extra = sorted(k for k, v in kwargs.items() if v is not None and k not in ("use_cache", "output_router_logits"))
        if extra:
            self.on_fallback(f"batches with {', '.join(extra)} go through TRL's standard forward")
            return self.model(**standard, **kwargs)
        packed = pack(input_ids, attention_mask, labels)
        if packed is None:
            self.on_fallback("a batch whose chosen and rejected rows do not share their prompt (truncated from "
                             "the start?) goes through TRL's standard forward")
            return self.model(**standard, **kwargs)
        mask = packed.attention_mask
        if self.attention == "eager":  # eager adds the mask to the scores
            dtype = next(self.model.parameters()).dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        with replies_only():
            out = self.model(input_ids=packed.input_ids, attention_mask=mask, position_ids=packed.position_ids,
                             shift_labels=packed.shift_labels, fused_lm_head=True, **kwargs)
        for name in PER_TOKEN_FIELDS:
            value = getattr(out, name, None)
            if value is not None:
                scattered = value.new_zeros(packed.shape)
                scattered[packed.dst] = value[packed.src]
                setattr(out, name, scattered)
        return out
