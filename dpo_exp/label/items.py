"""The pairs to label: any preference source dpo_exp reads, as canonical rows, and their digest.

The digest is of the canonical rows (prompt, chosen, rejected, in order), so the same pairs read from a
re-saved or re-compressed file keep their labels, while a changed, added or reordered pair does not: a
label database records the digest it was made for and refuses any other (`store.Store.open`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from dpo_exp.config import DataConfig, UserError


@dataclass
class Items:
    rows: list[dict]  # canonical rows: prompt (messages), chosen, rejected (one assistant message each)
    digest: str  # sha256 of the canonical rows
    source: str  # what the user named (data.path)

    def __len__(self) -> int:
        return len(self.rows)


def load(data: DataConfig) -> Items:
    """Every pair of `data.path` (any format, `data.where` applied; `data.max_rows` and the train/eval
    split are training's business, not the labelers': every row is an item). Malformed rows: a UserError
    naming the line (or, with data.on_error=skip, skipped and counted as training does)."""
    from dpo_exp.data.splits import load_pairs

    rows, _, _ = load_pairs(str(data.path), data.format, data.on_error, data.split, data.system_prompt,
                            dict(data.where or {}))
    return Items(rows=rows, digest=digest(rows), source=str(data.path))


def digest(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r["prompt"], r["chosen"], r["rejected"]], sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


def pair_key(prompt, a: str, b: str) -> str:
    """The identity of a labeled pair, whatever its order: what `judge=human` looks verdicts up by."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    turns = [[str(m["role"]), str(m["content"]).strip()] for m in messages]
    return hashlib.sha256(json.dumps([turns, sorted([a.strip(), b.strip()])]).encode()).hexdigest()


def reply(messages: list[dict]) -> str:
    """The text of a canonical reply (one assistant message)."""
    return messages[-1]["content"]


def transcript(prompt: list[dict]) -> str:
    """A conversation shown as plain text: one "Role: text" block per turn (a one-turn prompt: the text)."""
    if len(prompt) == 1:
        return prompt[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def not_found(url: str) -> UserError:
    return UserError(f"No label database at {url}. Fix: label the pairs first (python -m dpo_exp.label "
                     "data=file data.path=FILE label.db=URL), or point label.db at the database the page wrote.")
