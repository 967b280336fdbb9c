r"""Reading preference data: any of five layouts from a file, folder or hub id, into one canonical form.

Every row becomes TRL's conversational preference format, exactly these three keys:

    {"prompt":   [{"role": "user", "content": "Is the Earth flat?"}],   # earlier turns / a system message allowed
     "chosen":   [{"role": "assistant", "content": "No, it is round."}],
     "rejected": [{"role": "assistant", "content": "Yes."}]}

The prompt always ends with a user turn; chosen and rejected are one assistant reply each.
`data.system_prompt` is prepended as a system message to every prompt that has none.

Input layouts (`data.format`; `auto` picks one from the first valid row's keys):

  preference      {"prompt": "Is the Earth flat?", "chosen": "No, it is round.", "rejected": "Yes."}
  conversational  {"prompt": [{"role": "user", "content": "Is the Earth flat?"}],
                   "chosen": [{"role": "assistant", "content": "No."}], "rejected": [{"role": "assistant", ...}]}
                  (without "prompt", chosen/rejected hold the whole conversation; the shared turns become the prompt)
  sharegpt        {"conversations": [{"from": "human", "value": "Is the Earth flat?"}],
                   "chosen": {"from": "gpt", "value": "No."}, "rejected": "Yes."}   (a string or a {from, value} reply)
  hh_rlhf         {"chosen": "\n\nHuman: Is the Earth flat?\n\nAssistant: No.",
                   "rejected": "\n\nHuman: Is the Earth flat?\n\nAssistant: Yes."}
  ultrafeedback   {"prompt": "Is the Earth flat?", "chosen": [{"role": "user", ...}, {"role": "assistant", ...}],
                   "rejected": [...], "score_chosen": 8.0, ...}   (extra keys are ignored)

Sources (`data.path`): a .jsonl or .json file, optionally gzipped (.json holds a list of rows, or an object
with the list under "data" or "rows"); a folder written by `datasets`' save_to_disk (`data.split` picks the
split of a DatasetDict); a folder of data files; or a hub dataset id.

Malformed rows (invalid JSON, a missing key, a wrong type, empty text, chosen identical to rejected, an
unknown role) stop the run with the file, the line and the fix. `data.on_error=skip` skips them instead;
they are counted, logged and returned, never dropped silently. `canonicalise_each` returns every row with
its location, or with why it is malformed, for the audit (which reports them all) and convert (which keeps
each row's extra fields).

`datasets` is imported only where it is needed, so importing this module stays fast. Splitting, filtering
(`data.where`) and the train/eval split live in `dpo_exp.data.splits`.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dpo_exp.config import DataFormat, OnError, UserError

log = logging.getLogger(__name__)

Message = dict[str, str]

KEPT = "_kept"  # a raw row's value carried through canonicalise (`keep`); dpo_exp.data.splits removes it again
SKIP_HINT = "or set data.on_error=skip to skip such rows (they are counted and reported)"
FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
LAYOUTS = (
    "preference (prompt, chosen, rejected strings), "
    "conversational (prompt/chosen/rejected lists of {role, content}; prompt may be omitted), "
    "sharegpt (conversations [{from, value}] plus chosen, rejected), "
    'hh_rlhf (chosen, rejected "\\n\\nHuman: ...\\n\\nAssistant: ..." transcripts), '
    "ultrafeedback (prompt string, chosen/rejected message lists)"
)


# --- public API --------------------------------------------------------------------------------


def canonicalise(raw: list[Raw], fmt: DataFormat | str, on_error: OnError | str, system_prompt: str | None,
                 shown: str, keep: Callable[[dict], Any] | None = None) -> tuple[list[dict], int, DataFormat]:
    """Canonical rows from raw rows. Returns (rows, skipped, format used). With on_error=error the first
    malformed row raises a UserError naming its location; with skip, malformed rows are counted.
    `keep`: a value read from each raw row, carried as the canonical row's `KEPT` key (`data.balance_by`)."""
    fmt = as_enum(DataFormat, fmt, "data.format")
    skip = skip_mode(on_error)
    read_as = f"data.format={fmt.value}"
    if fmt == DataFormat.auto:
        fmt = _detect_format(raw, shown, skip)
        read_as = f"format {fmt.value}, detected from the first row"

    rows: list[dict] = []
    problems: Counter[str] = Counter()
    first_problem = ""
    for item in raw:
        try:
            row = _canonical(item, fmt, system_prompt)
            if keep is not None:
                row[KEPT] = keep(item.value)
            rows.append(row)
        except RowError as err:
            if not skip:
                raise malformed_row(item, err, read_as) from None
            problems[err.kind] += 1
            first_problem = first_problem or f"{item.where}: {err.problem}"

    skipped = sum(problems.values())
    if not rows:
        raise UserError(f"No usable rows in {shown}: all {skipped} rows are malformed ({read_as}) "
                        f"(first: {first_problem}). Fix: repair the rows, or check data.format; known layouts: "
                        f"{LAYOUTS}.")
    if skipped:
        kinds = ", ".join(f"{n} {kind}" for kind, n in problems.most_common())
        log.warning("Skipped %d of %d rows of %s as malformed (data.on_error=skip): %s. First: %s",
                    skipped, len(raw), shown, kinds, first_problem)
    return rows, skipped, fmt


def canonicalise_each(raw: list[Raw], fmt: DataFormat | str, system_prompt: str | None,
                      shown: str) -> tuple[list[tuple[Raw, dict]], list[tuple[Raw, RowError]], DataFormat]:
    """Every row canonicalised, or with the reason it cannot be: for the commands that report bad rows
    instead of stopping at the first (the audit) or need each row's source (convert, for its extra fields).
    Returns ([(raw, canonical row)], [(raw, RowError)], format used)."""
    fmt = as_enum(DataFormat, fmt, "data.format")
    if fmt == DataFormat.auto:
        fmt = _detect_format(raw, shown, skip=True)
    good: list[tuple[Raw, dict]] = []
    bad: list[tuple[Raw, RowError]] = []
    for item in raw:
        try:
            good.append((item, _canonical(item, fmt, system_prompt)))
        except RowError as err:
            bad.append((item, err))
    return good, bad, fmt


def malformed_row(item: Raw, err: RowError, read_as: str) -> UserError:
    """The error that stops a run at a malformed row (data.on_error=error)."""
    return UserError(f"Malformed row at {item.where} ({read_as}): {err.problem}. Fix: {err.fix}, {SKIP_HINT}.")


def prompt_row(item: Raw, system_prompt: str | None) -> dict:
    """A row with a `prompt` (a string -> one user message, or a list of messages) and any other keys,
    with the prompt canonicalised; raises RowError."""
    row = _row_dict(item)
    if isinstance(row.get("prompt"), str):
        prompt = [_msg("user", _text(row, "prompt"))]
    else:
        prompt = _messages(row, "prompt")
    _check_prompt(prompt)
    return {**row, "prompt": _with_system(prompt, system_prompt)}


# --- reading sources: every row comes with where it came from ---------------------------------


@dataclass
class Raw:
    where: str  # "pairs.jsonl, line 3" or "pairs.json, row 3": what error messages name
    value: Any  # the parsed row (None when bad_json is set)
    bad_json: str | None = None  # why the line is not JSON


def read_source(path: str, split: str) -> list[Raw]:
    """Every row of a file, saved dataset folder, folder of data files or hub id, each with where it came from."""
    local = Path(path).expanduser()
    if local.is_file():
        return _read_file(local, path)
    if local.is_dir():
        return _read_dataset_dir(local, path, split)
    if _looks_like_hub_id(path):
        return _read_hub(path, split)
    raise UserError(_missing_file_message(path, local))


def _read_file(file: Path, shown: str) -> list[Raw]:
    name = file.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        return _read_jsonl(_read_text(file, shown), shown)
    if name.endswith((".json", ".json.gz")):
        return _read_json(_read_text(file, shown), shown)
    if name.endswith(".parquet"):
        return _dataset_rows(_load_dataset_or_fail("parquet", shown, "train", data_files=str(file)), shown)
    raise UserError(f"Unsupported data file type: {shown}. Fix: use a {', '.join(FILE_SUFFIXES)} or .parquet "
                    "file, or a folder written by datasets' save_to_disk.")


def _read_text(file: Path, shown: str) -> str:
    try:
        if file.name.lower().endswith(".gz"):
            with gzip.open(file, "rt", encoding="utf-8-sig") as f:
                return f.read()
        return file.read_text(encoding="utf-8-sig")  # -sig: tolerate a byte-order mark
    except (OSError, EOFError, UnicodeDecodeError) as e:  # gzip.BadGzipFile is an OSError
        raise UserError(f"Cannot read {shown}: {e}. Fix: check the file is complete UTF-8 text "
                        "(and really gzipped if it ends in .gz).") from None


def _read_jsonl(text: str, shown: str) -> list[Raw]:
    rows = []
    # split("\n"), not splitlines(): JSON text may hold a raw U+2028, which splitlines() would break on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue  # blank lines (often a trailing one) are not rows
        where = f"{shown}, line {number}"
        try:
            rows.append(Raw(where, json.loads(line)))
        except json.JSONDecodeError as e:
            rows.append(Raw(where, None, bad_json=f"invalid JSON ({e.msg} at column {e.colno})"))
    return rows


def _read_json(text: str, shown: str) -> list[Raw]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # several JSON values, one per line: JSONL named .json
            return _read_jsonl(text, shown)
        raise UserError(f"{shown} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}). Fix: repair "
                        "the file; a .json file holds a list of rows, a .jsonl file one row per line.") from None
    if isinstance(doc, dict):
        doc = next((doc[k] for k in ("data", "rows") if isinstance(doc.get(k), list)), doc)
    if not isinstance(doc, list):
        found = f"an object with keys {sorted(doc)}" if isinstance(doc, dict) else type_name(doc)
        raise UserError(f"{shown} holds {found}, not a list of rows. Fix: make the file a JSON list of rows, "
                        'or an object with the list under "data" or "rows".')
    return [Raw(f"{shown}, row {i}", row) for i, row in enumerate(doc, start=1)]


def _read_dataset_dir(folder: Path, shown: str, split: str) -> list[Raw]:
    # save_to_disk writes dataset_dict.json (DatasetDict) or state.json (Dataset); anything else is a
    # folder of data files for load_dataset's file builders.
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        from datasets import DatasetDict, load_from_disk

        try:
            ds = load_from_disk(str(folder))
        except Exception as e:  # noqa: BLE001 - any failure here is a bad folder; the reason is shown
            raise UserError(f"Cannot load the saved dataset in {shown}: {e}. Fix: re-create it with "
                            "Dataset.save_to_disk / DatasetDict.save_to_disk.") from None
        if isinstance(ds, DatasetDict):
            if split not in ds:
                raise UserError(f"{shown} is a DatasetDict without a split {split!r}; it has {sorted(ds)}. "
                                f"Fix: set data.split to one of {sorted(ds)}.")
            ds = ds[split]
        return _dataset_rows(ds, f"{shown} (split {split})")
    return _dataset_rows(_load_dataset_or_fail(str(folder), shown, split), f"{shown} (split {split})")


def _read_hub(hub_id: str, split: str) -> list[Raw]:
    log.info("%s is not a local path: loading it as a hub dataset (split %s)", hub_id, split)
    return _dataset_rows(_load_dataset_or_fail(hub_id, hub_id, split), f"{hub_id} (split {split})")


def _load_dataset_or_fail(what: str, shown: str, split: str, **kwargs: Any):
    from datasets import load_dataset

    try:
        return load_dataset(what, split=split, **kwargs)
    except Exception as e:  # noqa: BLE001 - network, missing split, bad files: all shown to the user
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if Path(shown).expanduser().exists():
            raise UserError(f"Cannot load {shown} with datasets.load_dataset (split {split!r}): {reason}. Fix: "
                            "check data.split and that the folder holds .jsonl/.json/.parquet data files, or "
                            "point data.path at a single .jsonl file.") from None
        raise UserError(f"data.path={shown!r} is neither a local file nor a reachable hub dataset ({reason}). "
                        f"No file or folder {Path(shown).expanduser().resolve()} exists, and the hub could not "
                        "serve it (no network, a wrong id, or a missing split). Fix: download the data and pass "
                        "a local .jsonl/.json file or save_to_disk folder as data.path.") from None


def _dataset_rows(ds, shown: str) -> list[Raw]:
    return [Raw(f"{shown}, row {i}", row) for i, row in enumerate(ds, start=1)]


def _looks_like_hub_id(path: str) -> bool:
    # "name" or "org/name" without a data-file suffix; anything else is a local path that is missing,
    # and saying so at once beats a hub lookup that retries for ~20 s and then fails.
    if path.startswith(".") or path.lower().endswith(FILE_SUFFIXES + (".gz", ".parquet", ".csv")):
        return False
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", path) is not None


def _missing_file_message(shown: str, local: Path) -> str:
    where = local.resolve()
    parent = where.parent
    if parent.is_dir():
        nearby = sorted(p.name for p in parent.iterdir() if p.name.lower().endswith(FILE_SUFFIXES))[:8]
        seen = f"; data files there: {', '.join(nearby)}" if nearby else "; it holds no .jsonl/.json files"
        folder = f"The folder {parent} exists, but has no {where.name}{seen}."
    else:
        folder = f"The folder {parent} does not exist either."
    return (f"Data file not found: {shown} (resolved to {where}). {folder} Fix: check data.path (a relative path "
            f"is resolved from the directory you run in, {Path.cwd()}), or pass an absolute path.")


# --- one row -> canonical ----------------------------------------------------------------------


class RowError(Exception):
    """What is wrong with one row and how to fix it; turned into a UserError with the row's location."""

    def __init__(self, kind: str, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.kind, self.problem, self.fix = kind, problem, fix


def _canonical(item: Raw, fmt: DataFormat, system_prompt: str | None) -> dict:
    row = _row_dict(item)
    prompt, chosen, rejected = READERS[fmt](row)
    return _assemble(prompt, chosen, rejected, system_prompt)


def _row_dict(item: Raw) -> dict:
    if item.bad_json is not None:
        raise RowError("invalid JSON", item.bad_json,
                        "make that line one complete JSON object (or delete it)")
    if not isinstance(item.value, dict):
        raise RowError("not an object", f"the row is {type_name(item.value)}, not a JSON object",
                        "make each row a JSON object with the keys of its format")
    return item.value


def _from_preference(row: dict) -> tuple:
    return (
        [_msg("user", _text(row, "prompt"))],
        [_msg("assistant", _text(row, "chosen"))],
        [_msg("assistant", _text(row, "rejected"))],
    )


def _from_conversational(row: dict) -> tuple:
    prompt = row.get("prompt")
    if isinstance(prompt, str):  # a plain-text prompt is still unambiguous: one user turn
        prompt = [_msg("user", _text(row, "prompt"))]
    elif prompt is not None:
        prompt = _messages(row, "prompt")
    return prompt, _messages(row, "chosen"), _messages(row, "rejected")


def _from_sharegpt(row: dict) -> tuple:
    prompt = _messages(row, "conversations", sharegpt=True)
    replies = []
    for key in ("chosen", "rejected"):
        if isinstance(row.get(key), str):
            replies.append([_msg("assistant", _text(row, key))])
        else:
            replies.append(_messages(row, key, sharegpt=True))
    return prompt, replies[0], replies[1]


def _from_hh_rlhf(row: dict) -> tuple:
    return None, _transcript(row, "chosen"), _transcript(row, "rejected")


def _from_ultrafeedback(row: dict) -> tuple:
    chosen, rejected = _messages(row, "chosen"), _messages(row, "rejected")
    # chosen/rejected normally repeat the prompt as their first (user) turn: use the messages, they are
    # what the scores were given for. Fall back to the `prompt` string when they hold the reply only.
    has_prompt = any(m["role"] == "user" for m in chosen)
    prompt = None if has_prompt else [_msg("user", _text(row, "prompt"))]
    return prompt, chosen, rejected


READERS = {
    DataFormat.preference: _from_preference,
    DataFormat.conversational: _from_conversational,
    DataFormat.sharegpt: _from_sharegpt,
    DataFormat.hh_rlhf: _from_hh_rlhf,
    DataFormat.ultrafeedback: _from_ultrafeedback,
}


def _assemble(prompt: list[Message] | None, chosen: list[Message], rejected: list[Message],
              system_prompt: str | None) -> dict:
    """Move the turns chosen and rejected share into the prompt (TRL's extract_prompt) and check the rest."""
    if prompt and _starts_with(chosen, prompt) and _starts_with(rejected, prompt):
        chosen, rejected = chosen[len(prompt):], rejected[len(prompt):]  # the prompt repeated in both
    shared = _shared_prefix(chosen, rejected)
    prompt = (prompt or []) + chosen[:shared]
    chosen, rejected = chosen[shared:], rejected[shared:]

    same_reply = len(chosen) == len(rejected) == 1 and _same(chosen[0], rejected[0])
    if same_reply or not (chosen or rejected):
        raise RowError("chosen == rejected", "'chosen' and 'rejected' are identical, so the pair expresses "
                        "no preference", "make 'rejected' the worse reply, or delete the row")
    if len(chosen) != 1 or len(rejected) != 1:
        raise RowError("not a pair", "'chosen' and 'rejected' must share every turn but one final assistant "
                        f"reply each, but after {shared} shared turn(s) 'chosen' has {len(chosen)} turn(s) left "
                        f"and 'rejected' {len(rejected)}",
                        "make both hold the same conversation and differ only in the last assistant reply")
    for key, reply in (("chosen", chosen[0]), ("rejected", rejected[0])):
        if reply["role"] != "assistant":
            raise RowError("bad reply", f"the last turn of '{key}' is {reply['role']!r}, not the assistant's reply",
                            f"end '{key}' with an assistant message")
    _check_prompt(prompt)
    return {"prompt": _with_system(prompt, system_prompt), "chosen": chosen, "rejected": rejected}


def _check_prompt(prompt: list[Message]) -> None:
    if not prompt:
        raise RowError("no prompt", "there is no prompt: the row has no prompt turns before the replies",
                        "add a user prompt (a 'prompt' key, or a shared user turn before the replies)")
    if prompt[-1]["role"] != "user":
        raise RowError("bad prompt", f"the prompt's last turn is {prompt[-1]['role']!r}; it must be the user "
                        "turn the replies answer", "end the prompt with a user message")
    if any(m["role"] == "system" for m in prompt[1:]):
        raise RowError("bad prompt", "a system message appears after the first prompt turn; chat templates "
                        "only accept it first", "move the system message to the start of the prompt")



# --- field helpers -----------------------------------------------------------------------------


def _msg(role: str, content: str) -> Message:
    return {"role": role, "content": content}


def _text(row: dict, key: str) -> str:
    value = _field(row, key)
    if not isinstance(value, str):
        raise RowError("wrong type", f"'{key}' must be a string, got {type_name(value)}",
                        f"give '{key}' as text, or set data.format to the layout the file uses ({LAYOUTS})")
    if not value.strip():
        raise RowError("empty text", f"'{key}' is empty or whitespace-only", f"fill in '{key}' or delete the row")
    return value


def _field(row: dict, key: str) -> Any:
    if key not in row or row[key] is None:
        found = ", ".join(sorted(map(str, row))) or "none"
        raise RowError("missing key", f"missing key '{key}' (the row has keys: {found})",
                        f"add '{key}' to the row, or set data.format to the layout the file uses ({LAYOUTS})")
    return row[key]


def _messages(row: dict, key: str, sharegpt: bool = False) -> list[Message]:
    """A list of {role, content} (or sharegpt {from, value}) messages, validated and normalised."""
    value = _field(row, key)
    if isinstance(value, dict):  # a lone message, e.g. sharegpt's {"from": "gpt", "value": ...}
        value = [value]
    if not isinstance(value, list) or not value:
        got = "an empty list" if value == [] else type_name(value)
        raise RowError("wrong type", f"'{key}' must be a non-empty list of messages, got {got}",
                        f"give '{key}' as a list of messages, or set data.format to the layout the file uses")
    return [_message(m, key, i, sharegpt) for i, m in enumerate(value, start=1)]


def _message(m: Any, key: str, index: int, sharegpt: bool) -> Message:
    role_key, text_key = ("from", "value") if sharegpt else ("role", "content")
    where = f"message {index} of '{key}'"
    if not isinstance(m, dict) or role_key not in m or text_key not in m:
        got = f"keys {sorted(m)}" if isinstance(m, dict) else type_name(m)
        raise RowError("bad message", f"{where} must be an object with '{role_key}' and '{text_key}', got {got}",
                        f"write each message as {{\"{role_key}\": ..., \"{text_key}\": ...}}, or set data.format "
                        "to the layout the file uses")
    role = m[role_key] if isinstance(m[role_key], str) else None
    role = SHAREGPT_ROLES.get(role) if sharegpt else (role if role in ROLES else None)
    if role is None:
        known = sorted(SHAREGPT_ROLES) if sharegpt else list(ROLES)
        raise RowError("unknown role", f"{where} has unknown {role_key} {m[role_key]!r}",
                        f"use one of {', '.join(known)}")
    content = m[text_key]
    if not isinstance(content, str):
        raise RowError("wrong type", f"{where} has {text_key} of type {type_name(content)}, not a string",
                        "give each message's text as a plain string")
    if not content.strip():
        raise RowError("empty text", f"{where} ({role}) is empty or whitespace-only",
                        "fill in the message or delete the row")
    return _msg(role, content)


HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")


def _transcript(row: dict, key: str) -> list[Message]:
    """An HH-RLHF transcript ("\\n\\nHuman: a\\n\\nAssistant: b") -> [user a, assistant b], texts stripped."""
    text = _text(row, key)
    parts = HH_TURN.split(text)
    lead, speakers, texts = parts[0], parts[1::2], parts[2::2]
    if lead.strip() or not speakers:
        raise RowError("bad transcript", f"'{key}' is not an HH-RLHF transcript: it must start with "
                        "'\\n\\nHuman:'", "write it as '\\n\\nHuman: ...\\n\\nAssistant: ...'")
    messages = []
    for number, (speaker, turn) in enumerate(zip(speakers, texts), start=1):
        if not turn.strip():
            which = "the final reply" if number == len(texts) else "a turn"
            raise RowError("empty text", f"{which} of '{key}' (turn {number}, {speaker}) is empty",
                            f"fill in that turn of '{key}' or delete the row")
        messages.append(_msg("user" if speaker == "Human" else "assistant", turn.strip()))
    if messages[-1]["role"] != "assistant":
        raise RowError("bad transcript", f"'{key}' ends with a Human turn; it must end with the Assistant's "
                        "reply", f"end '{key}' with '\\n\\nAssistant: <reply>'")
    return messages


def _starts_with(messages: list[Message], prefix: list[Message]) -> bool:
    return len(messages) >= len(prefix) and all(_same(a, b) for a, b in zip(messages, prefix))


def _shared_prefix(a: list[Message], b: list[Message]) -> int:
    n = 0
    while n < min(len(a), len(b)) and _same(a[n], b[n]):
        n += 1
    return n


def _same(a: Message, b: Message) -> bool:
    # Whitespace around a turn is formatting, not content: "Hi " and "Hi" are the same shared turn.
    return a["role"] == b["role"] and a["content"].strip() == b["content"].strip()


def _with_system(prompt: list[Message], system_prompt: str | None) -> list[Message]:
    if system_prompt and prompt[0]["role"] != "system":
        return [_msg("system", system_prompt), *prompt]
    return prompt


# --- format detection --------------------------------------------------------------------------


def _detect_format(raw: list[Raw], shown: str, skip: bool) -> DataFormat:
    """The format of the first valid row: the first one, or with on_error=skip the first that matches a layout."""
    first: Raw | None = None  # the first JSON-object row, named in the error when nothing matches
    for item in raw:
        try:
            row = _row_dict(item)
        except RowError as err:
            if skip:
                continue  # counted as skipped when the rows are read with the detected format
            raise UserError(f"Malformed row at {item.where}: {err.problem}. Fix: {err.fix}, {SKIP_HINT}.") from None
        fmt = _format_of(row)
        if fmt is not None:
            return fmt
        first = first or item
        if not skip:
            break
    if first is None:
        raise UserError(f"No row of {shown} is a valid JSON object, so its format cannot be detected. Fix: write "
                        "one JSON object per row.")
    raise UserError(f"Cannot detect the data format of {shown}: its first row ({first.where}) has "
                    f"{_describe_keys(first.value)}, which matches no known layout. Known layouts: {LAYOUTS}. "
                    "Fix: rename the keys to one of these layouts, or set data.format explicitly.")


def _format_of(row: dict) -> DataFormat | None:
    if "chosen" not in row or "rejected" not in row:
        return None
    if "conversations" in row:
        return DataFormat.sharegpt
    chosen, prompt = row["chosen"], row.get("prompt")
    if isinstance(chosen, str):
        if isinstance(prompt, str):
            return DataFormat.preference
        if prompt is None and "Human:" in chosen:
            return DataFormat.hh_rlhf
        return None
    if _is_message_list(chosen):
        if isinstance(prompt, str):
            return DataFormat.ultrafeedback
        if prompt is None or _is_message_list(prompt):
            return DataFormat.conversational
    return None


def _is_message_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "role" in value[0]


def _describe_keys(row: dict) -> str:
    if not row:
        return "no keys"
    return "keys " + ", ".join(f"{k} ({type_name(v)})" for k, v in row.items())


# --- small helpers -----------------------------------------------------------------------------


def as_enum(cls: type, value: Any, key: str):
    """OmegaConf may hand over the enum or its plain string value; accept both."""
    if isinstance(value, cls):
        return value
    try:
        return cls(getattr(value, "value", value))
    except ValueError:
        choices = ", ".join(m.value for m in cls)
        raise UserError(f"Invalid config value {key}={value!r}. Fix: use one of {choices}.") from None


def skip_mode(on_error: Any) -> bool:
    """True for on_error=skip. "raise" is accepted as another name for stopping at the first malformed row."""
    value = getattr(on_error, "value", on_error)
    if value == "raise":
        return False
    return as_enum(OnError, value, "data.on_error") == OnError.skip


def type_name(value: Any) -> str:
    names = {type(None): "null", str: "a string", list: "a list", dict: "an object", bool: "a boolean",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
