"""The data audit: the flaws that quietly ruin DPO, found before training.

`python -m dpo_exp.audit` (entrypoint `dpo_exp/audit.py`, config `conf/audit.yaml`) audits any file
training reads, with the same `data` keys, split and seed, the `model`'s tokenizer and
`train.max_length`. The training entrypoint runs the same checks on its splits before loading the
model (`data.audit=warn|error|off`, see `pretrain`).

Each check measures a share (of pairs, or of prompts) and gets a severity from `audit.<check>.warn`
and `audit.<check>.error` (value above error: error; above warn: warn; else ok):

  malformed             rows training cannot read (bad JSON, missing keys, no prompt, ...); in the
                        pre-train audit: the rows `data.on_error=skip` skipped
  empty                 an empty or whitespace-only prompt turn or reply           (standalone only:
  identical             chosen == rejected as written                               training refuses them)
  identical_truncated   chosen and rejected equal once cut at train.max_length: no learning signal
  exact_duplicates      a pair repeating an earlier one (whitespace aside), train and eval together
  near_duplicates       a pair whose word shingles overlap an earlier pair's by >= audit.near_duplicate_jaccard
                        (MinHash LSH for candidates, exact Jaccard to confirm)
  prompt_too_long       the prompt alone fills train.max_length: TRL drops the pair
  completion_truncated  chosen or rejected cut at train.max_length
  length_bias           the larger of the shares of pairs whose chosen reply is longer / shorter (in tokens;
                        ties left out); the length-ratio distribution is in the report and the histograms
  eval_overlap          eval prompts with >= audit.ngram_overlap of their audit.ngram-word runs found in train
                        prompts (system messages left out)
  heldout_overlap       held-out prompts (data.heldout_path) with as much overlap
  flattened_prompts     multi-turn prompts squashed into one turn (a transcript written into one message,
                        "Human: ... Assistant: ...") or that the chat template drops or refuses

Tokens are counted as TRL 1.16's DPOTrainer counts them: the prompt rendered by the chat template with
the generation prompt, prompt + reply rendered whole, the reply being what follows their common prefix;
a pair whose prompt alone has >= max_length tokens is dropped, the rest are cut at max_length keeping
the start (truncation_mode keep_start). tests/test_audit.py checks this against a real DPOTrainer.

Output: a console table, `audit.md`, `audit.json` and `lengths.png` (chosen vs rejected length
histograms and the length ratio), logged to MLflow: standalone as a run in `<tracking.experiment>-data`,
before training as tags `dpo_exp.audit.*`, metrics `audit/*` and artifacts `audit/` of the training run.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dpo_exp.cli import log
from dpo_exp.config import AuditConfig, AuditMode, Config, Threshold, UserError
from dpo_exp.data.formats import Raw, RowError, canonicalise_each, read_source
from dpo_exp.data.splits import eval_size, load_heldout, select, shuffle_and_cap

SEVERITIES = ("ok", "warn", "error")
REPORT_FILES = ("audit.md", "audit.json", "lengths.png")
# A transcript written into one message: two or more "Role:" lines, one of them the assistant's, or
# a chat template's control tokens.
ROLE_LINE = re.compile(r"(?im)^[ \t]*(human|user|assistant|ai|bot|gpt|system)[ \t]*:")
ASSISTANT_ROLES = {"assistant", "ai", "bot", "gpt"}
CONTROL_TOKENS = re.compile(r"<\|im_start\|>|<\|(?:user|assistant|system)\|>|\[INST\]|<start_of_turn>|"
                            r"^###\s*(?:Instruction|Response)\b", re.I | re.M)
WORD = re.compile(r"\w+")


@dataclass
class Pair:
    split: str  # train | eval
    where: str  # "pairs.jsonl, line 3", or "train pair 3" when rows come without their location
    row: dict  # canonical row
    order: int = 0  # place in the files read: the report lists findings in this order


@dataclass
class Check:
    name: str  # the key of its thresholds (audit.<name>.warn/.error) and of its tag and metric
    title: str
    count: int  # rows found
    total: int  # out of
    value: float  # the share the severity is judged on
    detail: str = ""
    examples: list[str] = field(default_factory=list)
    warn: float = 0.0
    error: float = 0.0
    severity: str = "ok"


@dataclass
class Report:
    source: str
    rows: dict[str, int]
    tokenizer: str
    max_length: int
    checks: list[Check]
    lengths: dict[str, list[int]]  # chosen/rejected completion lengths (tokens, or characters without a tokenizer)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def severity(self) -> str:
        return max((c.severity for c in self.checks), key=SEVERITIES.index, default="ok")

    def failed(self, at: str = "error") -> list[Check]:
        return [c for c in self.checks if SEVERITIES.index(c.severity) >= SEVERITIES.index(at)]

    def to_json(self) -> dict:
        return {"source": self.source, "severity": self.severity, "rows": self.rows, "tokenizer": self.tokenizer,
                "max_length": self.max_length, "seconds": round(self.seconds, 2), "notes": self.notes,
                "checks": [asdict(c) for c in self.checks], "lengths": length_stats(self.lengths)}

    def tags(self) -> dict[str, str]:
        return {"dpo_exp.audit.severity": self.severity,
                **{f"dpo_exp.audit.{c.name}": f"{c.severity} ({c.count}/{c.total})" for c in self.checks}}

    def metrics(self) -> dict[str, float]:
        return {f"audit/{c.name}": c.value for c in self.checks}


# --- the checks ----------------------------------------------------------------------------------


def audit(pairs: list[Pair], *, cfg: AuditConfig, tokenizer, tokenizer_name: str, max_length: int,
          source: str, rows_read: int, heldout: list[dict] | None = None,
          problems: list[tuple[Raw, RowError]] | None = None, skipped: int | None = None) -> Report:
    """Run every check. `rows_read`: rows in the files (after data.where, before data.max_rows), the
    denominator of the row checks. `problems` (standalone) are the rows the loader would refuse, with why;
    `skipped` (pre-train) is how many rows data.on_error=skip dropped."""
    t0 = time.time()
    heldout = heldout or []
    n = len(pairs)
    checks: list[Check] = []
    notes: list[str] = []
    limit = cfg.max_examples

    if problems is not None:
        found: dict[str, list[str]] = {"malformed": [], "empty": [], "identical": []}
        for item, err in problems:
            kind = {"empty text": "empty", "chosen == rejected": "identical"}.get(err.kind, "malformed")
            found[kind].append(f"{item.where}: {err.problem}")
        titles = {"malformed": "rows training cannot read", "empty": "empty or whitespace-only text",
                  "identical": "chosen == rejected as written"}
        for name, title in titles.items():
            checks.append(_check(name, title, len(found[name]), rows_read, examples=found[name][:limit],
                                 detail="training with data.on_error=error stops at the first of these rows; "
                                 "data.on_error=skip drops them" if found[name] else ""))
    elif skipped is not None:
        checks.append(_check("malformed", "rows skipped as malformed (data.on_error=skip)", skipped, rows_read,
                             detail="empty replies and chosen == rejected included; the log above names them"
                             if skipped else ""))

    checks += duplicate_checks(pairs, cfg)

    tokens = tokenize_like_trl(tokenizer, [p.row for p in pairs]) if tokenizer is not None and pairs else None
    if tokenizer is None:
        notes.append("no tokenizer for this model source: token checks skipped, lengths in characters")
    if tokens is not None:
        checks += truncation_checks(pairs, tokens, max_length, limit)
        lengths = {"chosen": [len(t.chosen) for t in tokens if t.ok],
                   "rejected": [len(t.rejected) for t in tokens if t.ok]}
    else:
        lengths = {"chosen": [len(p.row["chosen"][0]["content"]) for p in pairs],
                   "rejected": [len(p.row["rejected"][0]["content"]) for p in pairs]}
    checks.append(length_bias_check(lengths, "tokens" if tokens is not None else "characters"))

    train_prompts = [prompt_text(p.row["prompt"]) for p in pairs if p.split == "train"]
    eval_pairs = [p for p in pairs if p.split == "eval"]
    index = NgramIndex(train_prompts, cfg.ngram, cfg.ngram_overlap)
    if eval_pairs:
        checks.append(overlap_check("eval_overlap", "eval prompts overlapping train prompts", index,
                                    [(p.where, prompt_text(p.row["prompt"])) for p in eval_pairs], limit))
    if heldout:
        checks.append(overlap_check("heldout_overlap", "held-out prompts overlapping train prompts", index,
                                    [(f"held-out prompt {i}", prompt_text(r["prompt"])) for i, r in
                                     enumerate(heldout, start=1)], limit))

    checks.append(flattened_check(pairs, tokens, limit))

    for c in checks:
        t: Threshold = getattr(cfg, c.name)
        c.warn, c.error = t.warn, t.error
        c.severity = "error" if c.value > t.error else "warn" if c.value > t.warn else "ok"
    rows = {"train": n - len(eval_pairs), "eval": len(eval_pairs), "heldout": len(heldout)}
    if problems is not None:
        rows["refused"] = len(problems)
    if skipped:
        rows["skipped"] = skipped
    return Report(source=source, rows=rows, tokenizer=tokenizer_name, max_length=max_length, checks=checks,
                  lengths=lengths, seconds=time.time() - t0, notes=notes)


def _check(name: str, title: str, count: int, total: int, **kw: Any) -> Check:
    return Check(name=name, title=title, count=count, total=total, value=count / total if total else 0.0, **kw)


def snippet(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def prompt_text(prompt: list[dict]) -> str:
    """The prompt's own words: every turn but system messages (a shared system prompt is not overlap)."""
    return "\n".join(m["content"] for m in prompt if m["role"] != "system")


def pair_text(row: dict) -> str:
    return "\n".join([prompt_text(row["prompt"]), row["chosen"][0]["content"], row["rejected"][0]["content"]])


def duplicate_checks(pairs: list[Pair], cfg: AuditConfig) -> list[Check]:
    """Exact repeats (whitespace aside), then near-duplicates among the rest: MinHash LSH proposes candidates
    over word shingles, the exact Jaccard of the shingle sets confirms them."""
    from datasketch import MinHash, MinHashLSH

    exact: list[str] = []
    first_at: dict[tuple, str] = {}
    unique: list[int] = []
    for i, p in enumerate(pairs):
        key = tuple(" ".join(m["content"].split()) for m in p.row["prompt"] + p.row["chosen"] + p.row["rejected"])
        key += tuple(m["role"] for m in p.row["prompt"])
        if key in first_at:
            exact.append(f"{p.where} repeats {first_at[key]}")
        else:
            first_at[key] = p.where
            unique.append(i)

    k = cfg.shingle_words
    shingles = []
    for i in unique:
        words = WORD.findall(pair_text(pairs[i].row).lower())
        shingles.append({" ".join(words[j:j + k]) for j in range(max(1, len(words) - k + 1))})
    near: list[str] = []
    if shingles:
        lsh = MinHashLSH(threshold=cfg.near_duplicate_jaccard, num_perm=cfg.minhash_perm)
        hashes = MinHash.bulk(([s.encode() for s in sh] for sh in shingles), num_perm=cfg.minhash_perm)
        for pos, (i, sh, mh) in enumerate(zip(unique, shingles, hashes)):
            best = max(((len(sh & shingles[j]) / len(sh | shingles[j]), j) for j in lsh.query(mh)), default=None)
            if best and best[0] >= cfg.near_duplicate_jaccard:
                near.append(f"{pairs[i].where} ~ {pairs[unique[best[1]]].where} (Jaccard {best[0]:.2f})")
            lsh.insert(pos, mh)
    n = len(pairs)
    return [
        _check("exact_duplicates", "pairs repeating an earlier pair", len(exact), n, examples=exact[: cfg.max_examples]),
        _check("near_duplicates", f"pairs nearly repeating an earlier one (Jaccard >= {cfg.near_duplicate_jaccard})",
               len(near), n, examples=near[: cfg.max_examples]),
    ]


@dataclass
class Tokens:
    ok: bool  # False: the chat template refused the row (the reason is in `error`)
    prompt: list[int] = field(default_factory=list)
    chosen: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    rendered_prompt: str = ""
    error: str = ""


def tokenize_like_trl(tokenizer, rows: list[dict]) -> list[Tokens]:
    """Prompt, chosen and rejected token ids exactly as TRL 1.16's DPOTrainer makes them (its `tokenize_fn`):
    apply_chat_template(prompt, add_generation_prompt=True), apply_chat_template(prompt + reply), the
    completion being what follows the common prefix. Rendered in one batch, tokenized in one call
    (apply_chat_template(tokenize=True) is the rendered text tokenized without special tokens)."""
    prompts, refused = _render(tokenizer, [r["prompt"] for r in rows], generation_prompt=True)
    chosen, refused_c = _render(tokenizer, [r["prompt"] + r["chosen"] for r in rows], generation_prompt=False)
    rejected, refused_r = _render(tokenizer, [r["prompt"] + r["rejected"] for r in rows], generation_prompt=False)
    refused = {**refused_r, **refused_c, **refused}
    texts = [t for i, group in enumerate(zip(prompts, chosen, rejected)) if i not in refused for t in group]
    ids = iter(tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else iter(())
    out = []
    for i, rendered in enumerate(prompts):
        if i in refused:
            out.append(Tokens(ok=False, error=refused[i]))
            continue
        p, c, r = next(ids), next(ids), next(ids)
        n = min(_common_prefix(p, c), _common_prefix(p, r))
        out.append(Tokens(ok=True, prompt=p[:n], chosen=c[n:], rejected=r[n:], rendered_prompt=rendered))
    return out


def _render(tokenizer, conversations: list[list[dict]], generation_prompt: bool) -> tuple[list[str], dict[int, str]]:
    """Rendered texts, and {index: why} for conversations the chat template refuses (rendered one by one
    only when the batch fails)."""
    try:
        return tokenizer.apply_chat_template(conversations, tokenize=False, add_generation_prompt=generation_prompt), {}
    except Exception:  # noqa: BLE001 - a template may raise anything (jinja's TemplateError, ValueError, ...)
        texts, refused = [], {}
        for i, conv in enumerate(conversations):
            try:
                texts.append(tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=generation_prompt))
            except Exception as e:  # noqa: BLE001
                texts.append("")
                refused[i] = f"{type(e).__name__}: {e}"
        return texts, refused


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def truncation_checks(pairs: list[Pair], tokens: list[Tokens], max_length: int, limit: int) -> list[Check]:
    dropped, cut, same = [], [], []
    kept = 0
    for p, t in zip(pairs, tokens):
        if not t.ok:
            continue
        if len(t.prompt) >= max_length:  # TRL filters these out: with keep_start no reply token would remain
            dropped.append(f"{p.where}: prompt of {len(t.prompt)} tokens")
            continue
        kept += 1
        room = max_length - len(t.prompt)
        if len(t.chosen) > room or len(t.rejected) > room:
            cut.append(f"{p.where}: prompt {len(t.prompt)} + chosen {len(t.chosen)} / rejected {len(t.rejected)} "
                       "tokens")
        if t.chosen[:room] == t.rejected[:room]:
            same.append(f"{p.where}: the replies differ only after token {room} of the reply "
                        f"({snippet(p.row['chosen'][0]['content'], 50)})")
    n = sum(t.ok for t in tokens)
    return [
        _check("identical_truncated", "chosen == rejected after truncation at train.max_length", len(same), n,
               examples=same[:limit], detail="no learning signal: raise train.max_length or shorten the prompts"
               if same else ""),
        _check("prompt_too_long", "prompt alone >= train.max_length tokens (TRL drops the pair)", len(dropped), n,
               examples=dropped[:limit]),
        _check("completion_truncated", "chosen or rejected cut at train.max_length", len(cut), n,
               examples=cut[:limit]),
    ]


def length_bias_check(lengths: dict[str, list[int]], unit: str) -> Check:
    pairs = list(zip(lengths["chosen"], lengths["rejected"]))
    longer = sum(c > r for c, r in pairs)
    shorter = sum(c < r for c, r in pairs)
    ties = len(pairs) - longer - shorter
    decided = longer + shorter
    stats = length_stats(lengths)
    detail = (f"chosen longer in {longer}, shorter in {shorter}, equal in {ties} of {len(pairs)} pairs ({unit}); "
              f"length ratio chosen/rejected median {stats['ratio']['p50']:.2f} "
              f"(p10 {stats['ratio']['p10']:.2f}, p90 {stats['ratio']['p90']:.2f})" if pairs else "no pairs")
    check = _check("length_bias", "length bias: share of pairs whose chosen reply is longer (or shorter)",
                   max(longer, shorter), decided, detail=detail)
    return check


def length_stats(lengths: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    import numpy as np

    out = {}
    ratio = [c / r for c, r in zip(lengths["chosen"], lengths["rejected"]) if r > 0]
    for name, values in (("chosen", lengths["chosen"]), ("rejected", lengths["rejected"]), ("ratio", ratio)):
        v = np.asarray(values, dtype=float)
        out[name] = ({"mean": float(v.mean()), **{f"p{q}": float(np.percentile(v, q)) for q in (10, 25, 50, 75, 90)}}
                     if len(v) else {"mean": math.nan, **{f"p{q}": math.nan for q in (10, 25, 50, 75, 90)}})
    if lengths["chosen"]:
        pairs = list(zip(lengths["chosen"], lengths["rejected"]))
        out["chosen_longer_share"] = {"value": sum(c > r for c, r in pairs) / len(pairs)}
    return out


class NgramIndex:
    """Word n-grams of the train prompts (lower-cased). A prompt overlaps them when at least `min_share` of
    its own n-grams are among them: one shared stock phrase ("can you give me some advice on how") is not
    enough, a copied or paraphrased question is. A prompt shorter than n words overlaps when it appears
    whole inside a train prompt."""

    def __init__(self, texts: list[str], n: int, min_share: float) -> None:
        self.n, self.min_share = n, min_share
        self.words = [WORD.findall(t.lower()) for t in texts]
        self.grams: dict[int, set[tuple[str, ...]]] = {}

    def _grams(self, k: int) -> set[tuple[str, ...]]:
        if k not in self.grams:
            self.grams[k] = {tuple(w[i:i + k]) for w in self.words for i in range(len(w) - k + 1)}
        return self.grams[k]

    def overlap(self, text: str) -> tuple[float, tuple[str, ...]] | None:
        """(share of the text's n-grams found in train prompts, one of them), or None below min_share."""
        words = WORD.findall(text.lower())
        k = min(self.n, len(words))
        if k == 0:
            return None
        grams = self._grams(k)
        own = [tuple(words[i:i + k]) for i in range(len(words) - k + 1)]
        shared = [g for g in own if g in grams]
        share = len(shared) / len(own)
        return (share, shared[0]) if shared and share >= self.min_share else None


def overlap_check(name: str, title: str, index: NgramIndex, prompts: list[tuple[str, str]], limit: int) -> Check:
    found = []
    for where, text in prompts:
        hit = index.overlap(text)
        if hit is not None:
            found.append(f"{where}: {hit[0]:.0%} of its {index.n}-word runs are in train prompts, e.g. "
                         f"{' '.join(hit[1])!r}")
    return _check(name, f"{title} (>= {index.min_share:.0%} of its {index.n}-word runs)", len(found), len(prompts),
                  examples=found[:limit])


def flattened_check(pairs: list[Pair], tokens: list[Tokens] | None, limit: int) -> Check:
    """Multi-turn prompts that reach the model as one turn: a transcript written into a single message, or
    turns the chat template leaves out (each turn's text must appear, in order) or refuses to render."""
    found = []
    multi_turn = 0
    for i, p in enumerate(pairs):
        prompt = p.row["prompt"]
        multi_turn += sum(m["role"] != "system" for m in prompt) > 1
        reason = next((f"{m['role']} turn holds a whole transcript ({snippet(m['content'], 50)})"
                       for m in prompt if looks_flattened(m["content"])), None)
        t = tokens[i] if tokens is not None else None
        if reason is None and t is not None and not t.ok:
            reason = f"the chat template refuses it ({t.error[:120]})"
        if reason is None and t is not None and len(prompt) > 1:
            missing = _missing_turn(prompt, t.rendered_prompt)
            if missing is not None:
                reason = f"the chat template drops turn {missing + 1} ({prompt[missing]['role']})"
        if reason:
            found.append(f"{p.where}: {reason}")
    check = _check("flattened_prompts", "multi-turn prompts flattened into one turn or dropped by the chat template",
                   len(found), len(pairs), examples=found[:limit])
    check.detail = f"{multi_turn} of {len(pairs)} prompts have more than one turn (system messages aside)"
    return check


def looks_flattened(text: str) -> bool:
    if CONTROL_TOKENS.search(text):
        return True
    roles = [m.group(1).lower() for m in ROLE_LINE.finditer(text)]
    return len(roles) >= 2 and any(r in ASSISTANT_ROLES for r in roles)


def _missing_turn(prompt: list[dict], rendered: str) -> int | None:
    pos = 0
    for i, m in enumerate(prompt):
        at = rendered.find(m["content"].strip(), pos)
        if at < 0:
            return i
        pos = at + len(m["content"].strip())
    return None


# --- output --------------------------------------------------------------------------------------


def print_table(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    colour = {"ok": "green", "warn": "yellow", "error": "bold red"}
    table = Table(title=f"data audit: {report.source}", title_justify="left")
    for col, kw in (("check", {}), ("severity", {}), ("found", {"justify": "right"}), ("share", {"justify": "right"}),
                    ("warn/error above", {"justify": "right"}), ("detail", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for c in report.checks:
        # where to look first; the full lists are in audit.md
        detail = c.examples[0] + (f" (+{c.count - 1} more)" if c.count > 1 else "") if c.examples else c.detail
        table.add_row(c.name, f"[{colour[c.severity]}]{c.severity}[/]", f"{c.count}/{c.total}", f"{c.value:.1%}",
                      f"{c.warn:g} / {c.error:g}", detail)
    Console(width=160, soft_wrap=False).print(table)


def markdown(report: Report) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    rows = ", ".join(f"{v} {k}" for k, v in report.rows.items())
    lines = [f"# Data audit: {cell(report.source)}", "",
             f"Overall: **{report.severity}**. Rows: {rows}. Tokenizer: {report.tokenizer}, "
             f"train.max_length={report.max_length}. Took {report.seconds:.1f} s.", ""]
    lines += [f"Note: {n}" for n in report.notes]
    lines += ["| check | severity | found | share | warn / error above | what |", "|---|---|---|---|---|---|"]
    for c in report.checks:
        lines.append(f"| {c.name} | {c.severity} | {c.count}/{c.total} | {c.value:.1%} | {c.warn:g} / {c.error:g} "
                     f"| {cell(c.title)} |")
    for c in report.checks:
        if c.detail or c.examples:
            lines += ["", f"## {c.name}: {c.severity}", ""]
            if c.detail:
                lines.append(cell(c.detail))
            lines += [f"- {cell(e)}" for e in c.examples]
            if c.count > len(c.examples) and c.examples:
                lines.append(f"- ... {c.count - len(c.examples)} more (audit.max_examples={len(c.examples)})")
    stats = length_stats(report.lengths)
    lines += ["", "## Reply lengths", "", "| | mean | p10 | p25 | p50 | p75 | p90 |", "|---|---|---|---|---|---|---|"]
    for name in ("chosen", "rejected", "ratio"):
        s = stats[name]
        lines.append(f"| {name} | " + " | ".join(f"{s[k]:.2f}" for k in ("mean", "p10", "p25", "p50", "p75", "p90"))
                     + " |")
    lines += ["", "![chosen vs rejected lengths](lengths.png)", ""]
    return "\n".join(lines)


def histogram_png(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    chosen, rejected = report.lengths["chosen"], report.lengths["rejected"]
    unit = "tokens" if report.tokenizer != "none" else "characters"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if chosen:
        # log-spaced bins: a few very long replies would otherwise squash the rest into one bar
        bins = np.geomspace(max(1, min(chosen + rejected)), max(chosen + rejected) + 1, 40)
        ax1.hist(chosen, bins=bins, alpha=0.6, label=f"chosen (median {np.median(chosen):.0f})")
        ax1.hist(rejected, bins=bins, alpha=0.6, label=f"rejected (median {np.median(rejected):.0f})")
        ax1.set_xscale("log")
        ratio = [math.log2(c / r) for c, r in zip(chosen, rejected) if c > 0 and r > 0]
        ax2.hist(ratio, bins=40, color="tab:purple")
        ax2.axvline(0, color="black", lw=1)
        longer = sum(c > r for c, r in zip(chosen, rejected))
        shorter = sum(c < r for c, r in zip(chosen, rejected))
        ax2.set_title(f"chosen longer in {longer}, shorter in {shorter} of {len(chosen)} pairs")
        ax1.legend()
    ax1.set_xlabel(f"reply length ({unit})")
    ax1.set_ylabel("pairs")
    ax1.set_title("chosen vs rejected reply length")
    ax2.set_xlabel("log2(chosen length / rejected length)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(report: Report, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audit.md").write_text(markdown(report), encoding="utf-8")
    (folder / "audit.json").write_text(json.dumps(report.to_json(), indent=2, default=str), encoding="utf-8")
    histogram_png(report, folder / "lengths.png")
    return folder


def log_to_active_run(report: Report, folder: Path, artifact_path: str | None) -> None:
    """Tags, metrics (step 0) and the report files of the active MLflow run."""
    import mlflow

    from dpo_exp.tracking import unlogged

    mlflow.set_tags(report.tags())
    metrics = unlogged(report.metrics(), 0)  # a resumed run holds them already
    if metrics:
        mlflow.log_metrics(metrics, step=0)
    for name in REPORT_FILES:  # not the whole folder: the standalone run dir holds Hydra's files too
        mlflow.log_artifact(str(folder / name), artifact_path=artifact_path)


# --- the two ways in -----------------------------------------------------------------------------


def tokenizer_for(conf: Config, pairs: list[Pair]):
    from dpo_exp import models

    corpus = [m["content"] for p in pairs for m in p.row["prompt"] + p.row["chosen"] + p.row["rejected"]]
    return models.load_tokenizer(conf, corpus)


def pretrain(conf: Config, splits, heldout: list[dict]) -> Report | None:
    """The audit `python -m dpo_exp` runs on its splits after reading the data and before loading the
    model. data.audit=warn: print the table; error: also stop (UserError) when a check is at error; off: None."""
    mode = AuditMode(getattr(conf.data.audit, "value", conf.data.audit))
    if mode == AuditMode.off:
        return None
    t0 = time.time()
    train = splits.train if splits.unbalanced is None else splits.unbalanced  # data.balance_by's repeats are wanted
    pairs = ([Pair("train", f"train pair {i}", r) for i, r in enumerate(train, start=1)]
             + [Pair("eval", f"eval pair {i}", r) for i, r in enumerate(splits.eval, start=1)])
    tokenizer = tokenizer_for(conf, pairs)
    report = audit(pairs, cfg=conf.audit, tokenizer=tokenizer, tokenizer_name=conf.model.name if tokenizer else "none",
                   max_length=conf.train.max_length, source=splits.source, rows_read=splits.read or len(pairs),
                   heldout=heldout, skipped=splits.skipped)
    report.seconds = time.time() - t0
    print_table(report)
    log(f"data audit: {report.severity} ({', '.join(f'{c.name} {c.severity}' for c in report.failed('warn')) or 'all ok'}) "
        f"in {report.seconds:.1f} s; data.audit={mode.value}")
    failed = report.failed("error")
    if mode == AuditMode.error and failed:
        what = "; ".join(f"{c.name}: {c.count} of {c.total} ({c.value:.1%}) {c.title}, above audit.{c.name}.error="
                         f"{c.error:g}" for c in failed)
        raise UserError(
            f"The pre-train data audit failed (data.audit=error), before loading the model: {what}. Fix: repair the "
            "data (`python -m dpo_exp.audit` with the same data, model and train overrides lists the rows), change "
            "what the check measures (e.g. a larger train.max_length), raise the threshold (audit.<check>.error=...), "
            "or train anyway with data.audit=warn (report only) or data.audit=off.")
    return report


def standalone(conf: Config, out_dir: Path) -> Report:
    """`python -m dpo_exp.audit`: read `data.path` (and `data.eval_path`) leniently, reporting the rows training
    would refuse, split as training splits (data.max_rows, data.eval_fraction, train.seed), and audit."""
    t0 = time.time()
    d = conf.data
    where = dict(d.where or {})
    pairs: list[Pair] = []
    problems: list[tuple[Raw, RowError]] = []
    fmts = []
    rows_read = 0
    for is_eval_file, split_path in enumerate([d.path] + ([d.eval_path] if d.eval_path else [])):
        raw = read_source(str(split_path), d.split)
        if not raw:
            raise UserError(f"{split_path} holds no rows. Fix: point data.path at a file with preference pairs.")
        if where:
            raw = select(raw, where, str(split_path))
        good, bad, fmt = canonicalise_each(raw, d.format, d.system_prompt, str(split_path))
        fmts.append(fmt.value)
        problems += bad
        rows_read += len(raw)
        rows = [(len(pairs) + i, item, row) for i, (item, row) in enumerate(good)]  # numbered in file order
        if not is_eval_file:
            rows = shuffle_and_cap(rows, d.max_rows, conf.train.seed)
        n_eval = len(rows) if is_eval_file else 0 if d.eval_path else eval_size(len(rows), d.eval_fraction)
        pairs += [Pair("eval" if i < n_eval else "train", item.where, row, order)
                  for i, (order, item, row) in enumerate(rows)]
    heldout = load_heldout(d.heldout_path, d.system_prompt) if d.heldout_path else []
    # the tiny model's tokenizer is trained on the rows, in training's order: train split, then eval
    tokenizer = tokenizer_for(conf, [p for p in pairs if p.split == "train"] + [p for p in pairs if p.split == "eval"])
    pairs.sort(key=lambda p: p.order)  # report in file order: "line 9 repeats line 4", not the other way round
    source = f"{d.path} (format {fmts[0]})" + (f"; eval {d.eval_path} (format {fmts[1]})" if d.eval_path else "")
    report = audit(pairs, cfg=conf.audit, tokenizer=tokenizer, tokenizer_name=conf.model.name if tokenizer else "none",
                   max_length=conf.train.max_length, source=source, rows_read=rows_read, heldout=heldout,
                   problems=problems)
    report.seconds = time.time() - t0
    write(report, out_dir)
    return report


def standalone_params(conf: Config) -> dict[str, str]:
    """The MLflow params of a `python -m dpo_exp.audit` run: the keys that decide what it audits."""
    from dpo_exp.config import flatten

    keep = ("data.", "audit.", "model.", "train.max_length", "train.seed")
    return {k: v for k, v in flatten(conf).items() if k.startswith(keep)}
