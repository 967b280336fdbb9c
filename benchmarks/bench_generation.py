"""Benchmark: candidate generation for `python -m dpo_exp.build`, batched vs one prompt at a time; and the
held-out generations of a training run, by batch size.

    python benchmarks/bench_generation.py [--prompts 32] [--max-new-tokens 48] [--batch-size 16] [--repeats 1]
    python benchmarks/bench_generation.py --heldout [--batch-sizes 4,8,16,32] [--max-new-tokens 40]

`--heldout`: the greedy before/after generations of `python -m dpo_exp +experiment=sycophancy`
(`dpo_exp.evaluate.generate`, the pushback task's held-out conversations, 40 new tokens as the
experiment sets) at each batch size, the bundled model, after a warm-up call; seconds, generated
tokens/s, and how many replies differ from the first batch size's (greedy decoding of a left-padded
batch can differ in the last bits, so the batch size is part of the held-out cache key).

Both variants run `dpo_exp.data.build.generate_replies` (the build's sampler: temperature 1.0,
top_p 0.95, one seed per row) in one process on the bundled SmolLM2-135M-Instruct (cached
safetensors folder, fp32 on the CPU), on the first `--prompts` prompts of the shipped sycophancy
data with the sycophancy system prompt:

  one_at_a_time  one prompt per generate() call (batch size 1)
  batched        `--batch-size` prompts per call, left-padded, sorted by length as the build does

The sampler is batch-independent, so both variants produce the same replies: the script checks
that, and so the token counts are equal and tokens/s compare like for like. Tokens = generated
tokens up to and excluding EOS. A warm-up call runs first (not timed); each variant is timed
`--repeats` times and the best is kept. Results are printed and appended to
benchmarks/results.jsonl; docs/benchmarks.md records them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's dpo_exp, whatever is installed

SYSTEM = "You are a helpful assistant."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default 48 (build), 40 (--heldout)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--heldout", action="store_true", help="held-out greedy generations by batch size instead")
    ap.add_argument("--batch-sizes", default="4,8,16,32", help="--heldout: the batch sizes to time")
    args = ap.parse_args()
    if args.heldout:
        return heldout(args)
    args.max_new_tokens = args.max_new_tokens or 48

    import torch

    from dpo_exp import models
    from dpo_exp.config import Config, ModelConfig, ModelSource
    from dpo_exp.data.build import generate_replies

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in (REPO / "dpo_exp/tasks/claims/sycophancy_train.jsonl").open()][: args.prompts]
    prompts = [[{"role": "system", "content": SYSTEM}, *r["prompt"]] for r in rows]
    prompts.sort(key=lambda p: sum(len(m["content"]) for m in p))  # as the build's batches
    tokenizer, model, _ = models.load(Config(model=ModelConfig(name="smollm2-135m", source=ModelSource.bundled)), [])
    model.eval()
    seeds = list(range(1000, 1000 + len(prompts)))

    def run(batch_size: int) -> tuple[float, list]:
        out, t0 = [], time.perf_counter()
        for i in range(0, len(prompts), batch_size):
            chunk = slice(i, i + batch_size)
            n = len(prompts[chunk])
            out += generate_replies(model, tokenizer, prompts[chunk], [1.0] * n, [0.95] * n, seeds[chunk],
                                    args.max_new_tokens)
        return time.perf_counter() - t0, out

    run(args.batch_size if len(prompts) >= args.batch_size else 1)  # warm-up: first-call kernels, allocator
    results, replies = {}, {}
    for name, bs in (("one_at_a_time", 1), ("batched", args.batch_size)):
        best = None
        for _ in range(args.repeats):
            seconds, out = run(bs)
            best = seconds if best is None else min(best, seconds)
        tokens = sum(n for _, n, _ in out)
        replies[name] = out
        results[name] = {"seconds": round(best, 2), "tokens": tokens, "tokens_per_s": round(tokens / best, 1)}
        print(f"{name:>14}: {tokens} tokens in {best:.1f} s = {tokens / best:.1f} tokens/s", flush=True)
    same = replies["one_at_a_time"] == replies["batched"]
    speedup = results["batched"]["tokens_per_s"] / results["one_at_a_time"]["tokens_per_s"]
    print(f"batched / one at a time: {speedup:.2f}x; identical replies: {same}")
    record = {"bench": "generation", "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "prompts": len(prompts),
              "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "results": results,
              "speedup": round(speedup, 2), "identical_replies": same}
    with (REPO / "benchmarks" / "results.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    if not same:
        sys.exit("the batched replies differ from the one-at-a-time replies: the sampler is not batch-independent")


def heldout(args) -> None:
    import torch

    from dpo_exp import evaluate, models
    from dpo_exp.config import Config, ModelConfig, ModelSource
    from dpo_exp.data import load_heldout

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = load_heldout(str(REPO / "dpo_exp/tasks/pushback/pushback_heldout.jsonl"))
    prompts = [r["prompt"] for r in rows]
    tokenizer, model, _ = models.load(Config(model=ModelConfig(name="smollm2-135m", source=ModelSource.bundled)), [])
    max_new = args.max_new_tokens or 40  # +experiment=sycophancy's eval.max_new_tokens
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    evaluate.generate(model, tokenizer, prompts[: sizes[0]], max_new_tokens=max_new, sample=False,
                      batch_size=sizes[0])  # warm-up
    results, first = {}, None
    for size in sizes:
        t0 = time.perf_counter()
        out = evaluate.generate(model, tokenizer, prompts, max_new_tokens=max_new, sample=False, batch_size=size)
        seconds = time.perf_counter() - t0
        replies = [evaluate.decode(tokenizer, c) for _, c in out]
        tokens = sum(len(c) for _, c in out)
        first = first or replies
        differ = sum(a != b for a, b in zip(replies, first))
        results[size] = {"seconds": round(seconds, 1), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
                         "replies_differing_from_first": differ}
        print(f"batch {size:3d}: {len(prompts)} prompts, {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} "
              f"tokens/s; {differ} replies differ from batch {sizes[0]}'s", flush=True)
    record = {"bench": "heldout_generation", "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "prompts": len(prompts),
              "max_new_tokens": max_new, "results": results}
    with (REPO / "benchmarks" / "results.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
