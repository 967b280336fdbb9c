"""From a data config to train/eval rows: read, filter (`data.where`), cap (`data.max_rows`), split.

The canonical row layout and the input formats are described in `dpo_exp.data.formats`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dpo_exp.config import DataConfig, DataFormat, OnError, UserError
from dpo_exp.data.formats import KEPT, Raw, RowError, canonicalise, prompt_row, read_source


@dataclass
class Splits:
    train: list[dict]  # canonical rows
    eval: list[dict]  # canonical rows (may be empty when eval_fraction == 0 and no eval_path)
    skipped: int  # malformed rows skipped (on_error=skip), train + eval files together
    source: str  # human-readable description, e.g. "pairs.jsonl (320 rows, format conversational)"
    read: int = 0  # rows read (after data.where, before data.max_rows), malformed ones included
    unbalanced: list[dict] | None = None  # with data.balance_by: the train rows before their repeats (the audit's)


def load_pairs(
    path: str,
    fmt: DataFormat | str = "auto",
    on_error: OnError | str = "error",
    split: str = "train",
    system_prompt: str | None = None,
    where: Mapping[str, Any] | None = None,
    dimension_weights: Mapping[str, float] | None = None,
    notes: list[str] | None = None,
    keep: str | None = None,
) -> tuple[list[dict], int, DataFormat]:
    """Read and canonicalise one source. Returns (rows, skipped, detected_format).
    `where` keeps only the rows whose own fields match (see `select`); `dimension_weights` decides each
    pair by its weighted `dimensions` scores (`dpo_exp.data.dimensions`), and says what it did in `notes`.
    `keep`: a row field (`data.balance_by`) whose value each canonical row carries as `formats.KEPT`."""
    raw = read_source(str(path), split)
    if not raw:
        raise UserError(f"{path} holds no rows (the file or split is empty). Fix: point data.path at a file "
                        "with preference pairs.")
    if where:
        raw = select(raw, where, str(path))
    carry = None
    if keep:
        rows_ = [item.value for item in raw if isinstance(item.value, dict)]
        if not any(_lookup(row, keep) not in (None, _ABSENT) for row in rows_):
            seen = sorted({k for row in rows_ for k in row})
            raise UserError(f"data.balance_by={keep}, but no row of {path} has that field (fields seen: "
                            f"{', '.join(seen) or 'none'}). Fix: name one of those fields, or data.balance_by=null.")

        def carry(value: Any) -> Any:
            found = _lookup(value, keep) if isinstance(value, dict) else None
            return None if found is _ABSENT else found
    if dimension_weights:
        from dpo_exp.data.dimensions import weigh
        from dpo_exp.data.formats import skip_mode

        raw, weighed = weigh(raw, dimension_weights, str(path), skip_mode(on_error))
        if notes is not None:
            notes.append(weighed.describe(dimension_weights))
        rows, skipped, fmt = canonicalise(raw, fmt, on_error, system_prompt, str(path), carry)
        return rows, skipped + weighed.missing, fmt
    return canonicalise(raw, fmt, on_error, system_prompt, str(path), carry)


def load_splits(cfg: DataConfig, seed: int) -> Splits:
    """Train/eval split: from cfg.eval_path if set, else a seeded shuffle of cfg.path split by
    cfg.eval_fraction (at least 1 eval row when eval_fraction > 0 and there are >= 2 rows).
    cfg.max_rows caps the rows read from cfg.path (after the seeded shuffle, before the split).
    Deterministic for a given seed."""

    where = dict(cfg.where or {})
    weights = dict(getattr(cfg, "dimension_weights", None) or {})
    notes: list[str] = []

    balance_by = getattr(cfg, "balance_by", None)

    def read(path: str) -> tuple[list[dict], int, DataFormat]:
        return load_pairs(path, cfg.format, cfg.on_error, cfg.split, cfg.system_prompt, where, weights, notes,
                          keep=balance_by)

    rows, skipped, fmt = read(cfg.path)
    n_read = len(rows)
    rows = shuffle_and_cap(rows, cfg.max_rows, seed)
    source = _describe(cfg.path, n_read, len(rows), fmt)
    if where:
        source += f", data.where {show_where(where)}"
    if notes:
        source += f", {notes[0]}"

    if cfg.eval_path:
        eval_rows, eval_skipped, eval_fmt = read(cfg.eval_path)
        source += "; eval " + _describe(cfg.eval_path, len(eval_rows), len(eval_rows), eval_fmt)
        train, note = balance(rows, balance_by, seed)
        return Splits(train=train, eval=_drop_kept(eval_rows), skipped=skipped + eval_skipped, source=source + note,
                      read=n_read + skipped + len(eval_rows) + eval_skipped,
                      unbalanced=_drop_kept(rows) if balance_by else None)

    n_eval = eval_size(len(rows), cfg.eval_fraction)
    train, note = balance(rows[n_eval:], balance_by, seed)
    return Splits(train=train, eval=_drop_kept(rows[:n_eval]), skipped=skipped, source=source + note,
                  read=n_read + skipped, unbalanced=_drop_kept(rows[n_eval:]) if balance_by else None)


def balance(rows: list[dict], by: str | None, seed: int) -> tuple[list[dict], str]:
    """`data.balance_by`: every value of the field as frequent as the most common one in the train rows, a
    smaller group's rows repeating in turn (its first rows once more for the remainder), then a seeded shuffle.
    Returns (rows without the carried field, a note for the data line: what was repeated)."""
    if not by:
        return rows, ""
    groups: dict[Any, list[dict]] = {}
    _drop_kept(rows, into=groups)
    target = max(len(g) for g in groups.values())
    out = [row for g in groups.values() for row in g * (target // len(g)) + g[: target % len(g)]]
    random.Random(seed).shuffle(out)
    sizes = ", ".join(f"{value}: {len(g)}" for value, g in groups.items())
    return out, f", data.balance_by {by} ({sizes} -> {target} each: {len(rows)} -> {len(out)} train pairs)"


def _drop_kept(rows: list[dict], into: dict | None = None) -> list[dict]:
    """The rows without the field `load_pairs(keep=)` carried; `into`: also grouped by its value."""
    out = []
    for row in rows:
        row = dict(row)
        value = row.pop(KEPT, None)
        if into is not None:  # a list or object value groups by its JSON text
            key = value if isinstance(value, (str, int, float, bool, type(None))) else json.dumps(value, sort_keys=True)
            into.setdefault(key, []).append(row)
        out.append(row)
    return out


def shuffle_and_cap(items: list, max_rows: int | None, seed: int) -> list:
    """The seeded shuffle and `data.max_rows` cap of `load_splits`, on any list of rows (the audit shuffles
    rows paired with their file locations, and must land on the same split)."""
    items = list(items)
    random.Random(seed).shuffle(items)  # the permutation depends only on the seed and the length
    if max_rows is not None:
        if max_rows < 1:
            raise UserError(f"Invalid config value data.max_rows={max_rows}: must be >= 1 or null. "
                            "Fix: use e.g. data.max_rows=200, or data.max_rows=null to read every row.")
        items = items[:max_rows]
    return items


def load_heldout(path: str, system_prompt: str | None = None) -> list[dict]:
    """Held-out generation prompts from JSONL: each row has `prompt` (a string -> one user message, or a
    list of messages); all other keys are kept as they are (e.g. a task's labels, topic). Returns rows
    with `prompt` canonicalised to a list of messages. Same error style (file:line)."""
    raw = read_source(str(path), "train")
    if not raw:
        raise UserError(f"Held-out file {path} holds no rows. Fix: add one JSON object with a 'prompt' per line, "
                        "or set data.heldout_path=null.")
    rows = []
    for item in raw:
        try:
            rows.append(prompt_row(item, system_prompt))
        except RowError as err:
            raise UserError(f"Malformed held-out row at {item.where}: {err.problem}. Fix: {err.fix}.") from None
    return rows


def to_dataset(rows: list[dict]):
    """datasets.Dataset from canonical rows (lazy import)."""
    from datasets import Dataset

    return Dataset.from_list(rows)


def select(raw: list[Raw], where: Mapping[str, Any], shown: str, key: str = "data.where") -> list[Raw]:
    """Rows whose fields equal `where`'s values (a list value: any of them). Malformed rows are kept,
    so that the normal row checks still report them. `key` names the filter in messages."""
    wanted = {key: (list(v) if isinstance(v, (list, tuple)) else [v]) for key, v in where.items()}
    fields = set()
    for item in raw:
        if isinstance(item.value, dict):
            fields.update(item.value)
            fields.update(k for k in wanted if "." in k and _lookup(item.value, k) is not _ABSENT)
    missing = [key for key in wanted if key not in fields]
    if missing:
        raise UserError(f"{key} filters on {', '.join(map(repr, missing))}, but no row of {shown} has "
                        f"{'that field' if len(missing) == 1 else 'those fields'} (fields seen: "
                        f"{', '.join(sorted(fields)) or 'none'}). Fix: use one of those fields in {key}, "
                        f"or {key}=null to keep every row.")
    kept = [item for item in raw
            if not isinstance(item.value, dict)
            or all(_lookup(item.value, key) in values for key, values in wanted.items())]
    if not any(isinstance(item.value, dict) for item in kept):
        raise UserError(f"{key} {show_where(where)} keeps no row of {shown}. Fix: check the values "
                        "against the file (e.g. true vs \"true\"), or widen the filter.")
    return kept


_ABSENT = object()


def _lookup(row: dict, key: str) -> Any:
    """A row's field; a dotted key reaches into nested objects (`dimensions.safety.chosen`) when the row has
    no field of that exact name. None when absent (as a missing top-level field), `_ABSENT` for `select`'s
    check that some row has it."""
    if key in row or "." not in key:
        return row.get(key)
    node: Any = row
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def show_where(where: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in where.items()) + "}"


def eval_size(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 2:
        return 0
    return min(max(1, round(n * fraction)), n - 1)  # at least one eval row, at least one train row


def _describe(path: str, n_read: int, n_kept: int, fmt: DataFormat) -> str:
    """'pairs.jsonl (320 rows, format conversational)', or '(100 of 320 rows (data.max_rows), ...)'."""
    rows = f"{n_read} row" + ("" if n_read == 1 else "s")
    if n_kept != n_read:
        rows = f"{n_kept} of {rows} (data.max_rows)"
    return f"{Path(path).name or path} ({rows}, format {fmt.value})"


def size_warnings(splits: Splits, cfg, audited: bool = False) -> dict[str, str]:
    """What trains but is probably not what the user meant: {name: message}, shown on the console and
    as MLflow tags `dpo_exp.warning.<name>`. `audited`: the pre-train data audit ran, and its `malformed`
    check already reports skipped rows."""
    found = {}
    if not splits.eval:
        found["no_eval"] = ("no eval split (data.eval_fraction=0 and no data.eval_path): the run has no eval "
                            "metrics, no KL estimate and no monitoring. Set data.eval_fraction=0.1 or data.eval_path "
                            "to get them.")
    batch = cfg.train.batch_size * cfg.train.gradient_accumulation_steps
    if len(splits.train) < batch:
        found["small_data"] = (f"only {len(splits.train)} train pairs, fewer than one batch (train.batch_size x "
                               f"train.gradient_accumulation_steps = {batch}): every step sees the same few pairs. "
                               "Add data, or lower train.batch_size.")
    total = splits.read or splits.skipped + len(splits.train) + len(splits.eval)
    if not audited and splits.skipped and splits.skipped * 2 > total:
        found["skipped_rows"] = (f"{splits.skipped} of {total} rows were malformed and skipped (data.on_error=skip): "
                                 "most of the file. Check data.format against the file's layout (docs/data.md, Data "
                                 "formats), or run with data.on_error=error to see the first bad row.")
    return found
