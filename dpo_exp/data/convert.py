r"""Converting preference data between the five layouts dpo_exp reads.

`python -m dpo_exp.convert data.path=IN out.path=OUT out.format=FORMAT` (entrypoint `dpo_exp/convert.py`,
config `conf/convert.yaml`). Rows are read by `dpo_exp.data.formats` (the same parsers, `data.format`,
`data.split`, `data.where`, `data.on_error` and `data.system_prompt` as training) into the canonical
conversational rows, then written by the target's writer below, in the input's order.

What each target holds (a row it cannot hold is refused, naming the row and the formats that can):

  conversational  everything (the canonical layout)
  sharegpt        everything (system, user and assistant turns as {"from": system|human|gpt, "value"})
  ultrafeedback   everything ("prompt" = the last user turn; "chosen"/"rejected" = the whole conversation;
                  "messages" = the chosen conversation, as in ultrafeedback_binarized)
  hh_rlhf         user and assistant turns; no system message, no text that itself contains a
                  "\n\nHuman:" or "\n\nAssistant:" turn marker (the transcript could not be split back);
                  turn texts are stripped, as the HH reader strips them
  preference      one user turn: no earlier turns, no system message

`out.flatten=true` makes the two lossy targets take what they cannot hold, on purpose: `preference`
gets the whole prompt as one string, each turn written "System: ...", "User: ...", "Assistant: ..."
and separated by a blank line; `hh_rlhf` gets the system message as the first paragraph of the first
Human turn. Such a prompt reads back as one turn (the audit's flattened_prompts check flags the first kind).

Fields beyond the layout's own (provenance: ids, scores, judge verdicts, ...) are kept as they are in every
target; a field named like a layout key (prompt, chosen, rejected, conversations, messages) would be read
as one and is refused. ultrafeedback's `messages` is its own key (a copy of the chosen conversation): read
as such, written again when the target is ultrafeedback.

The output is written to a temporary file beside it, read back with the target format and compared with
the input rows (turn texts stripped) before it is moved into place, so a conversion that would not read
back as the same pairs never lands. The input is never overwritten; an existing output is refused unless
`out.overwrite=true`. Output files: .jsonl or .json (a list), optionally .gz.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from dpo_exp import config
from dpo_exp.config import DataConfig, DataFormat, UserError
from dpo_exp.data.formats import RowError, as_enum, canonicalise_each, malformed_row, read_source, skip_mode
from dpo_exp.data.splits import select

OWN_KEYS = {
    DataFormat.preference: {"prompt", "chosen", "rejected"},
    DataFormat.conversational: {"prompt", "chosen", "rejected"},
    DataFormat.sharegpt: {"conversations", "chosen", "rejected"},
    DataFormat.hh_rlhf: {"chosen", "rejected"},
    DataFormat.ultrafeedback: {"prompt", "chosen", "rejected", "messages"},
}
# Keys format detection looks at: an extra field with one of these names would change how the output reads.
LAYOUT_KEYS = {"prompt", "chosen", "rejected", "conversations", "messages"}
HOLDS_EVERYTHING = "conversational, sharegpt, ultrafeedback"
OUT_SUFFIXES = (".jsonl.gz", ".jsonl", ".json.gz", ".json")  # longest first
# A turn marker inside a turn's text would split the transcript at the wrong place when read back.
HH_MARKER = re.compile(r"\n\n(?:Human|Assistant):")
SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}


# --- schema: `conf/convert.yaml` ----------------------------------------------------------------


@dataclass
class OutConfig:
    path: str = field(default=MISSING, metadata={
        "help": "the file to write: `.jsonl` or `.json` (a list), optionally `.gz`; never the input file"})
    format: DataFormat = field(default=DataFormat.conversational, metadata={
        "help": "the layout written: any of data.format's but `auto`"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing out.path (never the input)"})
    flatten: bool = field(default=False, metadata={
        "help": "true: `preference` takes a multi-turn prompt as one string, `hh_rlhf` a system message inside the "
                "first Human turn (lossy, on purpose); false: such rows are refused"})


@dataclass
class ConvertAppConfig:
    data: DataConfig = field(default_factory=DataConfig, metadata={
        "help": "the input: training's data keys (path, format, split, where, on_error, system_prompt)"})
    out: OutConfig = field(default_factory=OutConfig, metadata={"help": "the output"})


def register() -> None:
    config.register()  # the ${pkg_file:} resolver of data presets that name shipped files
    ConfigStore.instance().store(name="convert_schema", node=ConvertAppConfig)


# --- writers: canonical row -> one layout (raise RowError when the layout cannot hold it) -------------


def _cannot(problem: str, fix: str) -> RowError:
    return RowError("cannot hold", problem, fix)


def to_conversational(row: dict, flatten: bool) -> dict:
    return {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}


def to_sharegpt(row: dict, flatten: bool) -> dict:
    def msg(m: dict) -> dict:
        return {"from": SHAREGPT_FROM[m["role"]], "value": m["content"]}

    return {"conversations": [msg(m) for m in row["prompt"]], "chosen": msg(row["chosen"][0]),
            "rejected": msg(row["rejected"][0])}


def to_ultrafeedback(row: dict, flatten: bool) -> dict:
    prompt = row["prompt"]
    return {"prompt": prompt[-1]["content"], "chosen": prompt + row["chosen"], "rejected": prompt + row["rejected"],
            "messages": prompt + row["chosen"]}


def to_preference(row: dict, flatten: bool) -> dict:
    prompt = row["prompt"]
    if len(prompt) > 1 and not flatten:
        turns = ", ".join(m["role"] for m in prompt)
        raise _cannot(f"its prompt has {len(prompt)} turns ({turns}), and `preference` holds one user string",
                      f"convert to a format that holds them ({HOLDS_EVERYTHING}, or hh_rlhf without a system "
                      "message), or set out.flatten=true to write the whole prompt as one string")
    text = prompt[0]["content"] if len(prompt) == 1 else "\n\n".join(
        f"{m['role'].capitalize()}: {m['content']}" for m in prompt)
    return {"prompt": text, "chosen": row["chosen"][0]["content"], "rejected": row["rejected"][0]["content"]}


def to_hh_rlhf(row: dict, flatten: bool) -> dict:
    prompt = [dict(m) for m in row["prompt"]]
    if prompt[0]["role"] == "system":
        if not flatten:
            raise _cannot("its prompt starts with a system message, which an HH-RLHF transcript cannot hold",
                          f"convert to a format that holds it ({HOLDS_EVERYTHING}), drop data.system_prompt if "
                          "you set it, or set out.flatten=true to put the system text into the first Human turn")
        system = prompt.pop(0)["content"]
        prompt[0]["content"] = f"{system.strip()}\n\n{prompt[0]['content'].strip()}"
    for m in prompt + row["chosen"] + row["rejected"]:
        if HH_MARKER.search(m["content"].strip()):
            raise _cannot(f"a {m['role']} turn contains an HH turn marker ('\\n\\nHuman:' or '\\n\\nAssistant:'), "
                          "so the transcript could not be split back into the same turns",
                          f"convert to a format that holds it ({HOLDS_EVERYTHING}, or preference)")

    def transcript(reply: dict) -> str:
        return "".join(f"\n\n{'Human' if m['role'] == 'user' else 'Assistant'}: {m['content'].strip()}"
                       for m in prompt + [reply])

    return {"chosen": transcript(row["chosen"][0]), "rejected": transcript(row["rejected"][0])}


WRITERS: dict[DataFormat, Callable[[dict, bool], dict]] = {
    DataFormat.preference: to_preference,
    DataFormat.conversational: to_conversational,
    DataFormat.sharegpt: to_sharegpt,
    DataFormat.hh_rlhf: to_hh_rlhf,
    DataFormat.ultrafeedback: to_ultrafeedback,
}


# --- the command ---------------------------------------------------------------------------------


@dataclass
class Result:
    rows: int  # written
    skipped: int  # malformed input rows skipped (data.on_error=skip)
    first_skipped: str  # where the first of them is, and why
    source_format: DataFormat
    extra_fields: list[str]  # kept
    flattened: int  # rows out.flatten changed


def convert(data: DataConfig, out: OutConfig) -> Result:
    target = as_enum(DataFormat, out.format, "out.format")
    if target == DataFormat.auto:
        raise UserError("out.format=auto: the output needs a layout. Fix: set out.format to one of "
                        f"{', '.join(f.value for f in WRITERS)}.")
    out_path = _check_output(data, out)

    raw = read_source(str(data.path), data.split)
    if not raw:
        raise UserError(f"{data.path} holds no rows. Fix: point data.path at a file with preference pairs.")
    if data.where:
        raw = select(raw, dict(data.where), str(data.path))
    good, bad, source_fmt = canonicalise_each(raw, data.format, data.system_prompt, str(data.path))
    if bad and not skip_mode(data.on_error):
        raise malformed_row(*bad[0], read_as=f"format {source_fmt.value}")
    if not good:
        raise UserError(f"No usable rows in {data.path}: all {len(bad)} are malformed (first: {bad[0][0].where}: "
                        f"{bad[0][1].problem}). Fix: repair the rows, or check data.format.")

    records, checks, refused, extras, flattened = [], [], [], {}, 0
    for item, row in good:
        try:
            record = WRITERS[target](row, out.flatten)
        except RowError as err:
            refused.append((item, err))
            continue
        extra = {k: v for k, v in item.value.items() if k not in OWN_KEYS[source_fmt]}
        clash = sorted(set(extra) & (LAYOUT_KEYS | set(record)))
        if clash:
            raise UserError(f"Row at {item.where} has the extra field(s) {clash}, which {target.value} output (or "
                            "format detection) would read as part of the layout. Fix: rename them in the input, or "
                            "drop them before converting.")
        extras.update(dict.fromkeys(extra))
        records.append({**record, **extra})
        if out.flatten and not _holds(target, row):
            flattened += 1
            checks.append(None)  # reads back as a different (flattened) prompt, by request
        else:
            checks.append((item.where, row))
    if refused:
        item, err = refused[0]
        raise UserError(f"Cannot convert {len(refused)} of {len(good)} rows to out.format={target.value}; the first, "
                        f"at {item.where}: {err.problem}. Fix: {err.fix}.")
    _write_checked(out_path, records, target, checks)
    first_skipped = f"{bad[0][0].where}: {bad[0][1].problem}" if bad else ""
    return Result(rows=len(records), skipped=len(bad), first_skipped=first_skipped, source_format=source_fmt,
                  extra_fields=list(extras), flattened=flattened)


def _holds(target: DataFormat, row: dict) -> bool:
    try:
        WRITERS[target](row, False)
        return True
    except RowError:
        return False


def _check_output(data: DataConfig, out: OutConfig) -> Path:
    path = Path(os.path.expanduser(str(out.path)))
    if not path.name.lower().endswith(OUT_SUFFIXES):
        raise UserError(f"out.path={out.path!r}: unsupported output type. Fix: end it in {', '.join(OUT_SUFFIXES)}.")
    for key, src in (("data.path", data.path), ("data.eval_path", data.eval_path)):
        if src and Path(os.path.expanduser(str(src))).resolve() == path.resolve():
            raise UserError(f"out.path={out.path!r} is the input ({key}); convert never overwrites its input. Fix: "
                            "write to another file, and replace the input yourself once you have checked it.")
    if path.exists() and not out.overwrite:
        raise UserError(f"out.path={out.path!r} already exists. Fix: choose another file, or pass out.overwrite=true "
                        "to replace it.")
    if not path.parent.is_dir():
        raise UserError(f"out.path={out.path!r}: the folder {path.parent.resolve()} does not exist. Fix: create it, "
                        "or write elsewhere.")
    return path


def _write_checked(path: Path, records: list[dict], target: DataFormat, expected: list[tuple[str, dict] | None]) -> None:
    """Write beside `path`, read the file back with the target's reader, compare each row with what it was
    converted from (None: flattened on request, not compared), then move the file into place."""
    suffix = next(s for s in OUT_SUFFIXES if path.name.lower().endswith(s))
    tmp = path.with_name(f".{path.name[: -len(suffix)]}.tmp-{os.getpid()}{suffix}")  # the reader goes by suffix
    try:
        if suffix.startswith(".json") and not suffix.startswith(".jsonl"):
            text = json.dumps(records, ensure_ascii=False, indent=1) + "\n"
        else:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if suffix.endswith(".gz"):
            with gzip.open(tmp, "wt", encoding="utf-8") as f:
                f.write(text)
        else:
            tmp.write_text(text, encoding="utf-8")
        back, bad, _ = canonicalise_each(read_source(str(tmp), "train"), target, None, str(path))
        if bad or len(back) != len(expected):
            why = f"{bad[0][0].where}: {bad[0][1].problem}" if bad else f"{len(back)} rows instead of {len(expected)}"
            raise RuntimeError(f"dpo_exp.convert bug: the {target.value} output does not read back ({why})")
        for source, (_, again) in zip(expected, back):
            if source is not None and _stripped(source[1]) != _stripped(again):
                raise RuntimeError(f"dpo_exp.convert bug: the row from {source[0]} reads back differently as "
                                   f"{target.value}: {source[1]} -> {again}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _stripped(row: dict) -> dict:
    return {k: [(m["role"], m["content"].strip()) for m in row[k]] for k in ("prompt", "chosen", "rejected")}
