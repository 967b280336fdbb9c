"""Work that depends only on the reference model, done once and kept under `paths.cache`.

A DPO run's reference is frozen, so what it computes (its log-probs of the pairs, in `train`; its greedy
held-out replies, the "before" column of a run's generations table) is the same for every run, sweep
job or loop round that shares its weights, inputs and settings. Each result is one file named by a hash
of those, written atomically (a temporary file, then a rename) under a file lock: parallel sweep jobs
wait for the first to compute it, then read it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator

import torch


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # parallel sweep jobs wait; one computes, the rest load
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_weights_hash(model) -> str:
    """Hash of the weights the reference uses: every parameter but the trained adapter's.

    TRL's own cache key hashes the freshly initialised LoRA weights too, so it misses across
    seeds although the reference is the same. A 'ref' adapter (training started from an SFT
    adapter) is part of the reference and stays in the hash.
    """
    h = hashlib.sha256()
    for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if "lora_" in name and ".default." in name:
            continue
        # PEFT renames a wrapped layer's weight to `<layer>.base_layer.weight`: the same reference
        # weights under any LoRA target set, so strip it and share the cache across presets.
        h.update(name.removeprefix("base_model.model.").replace(".base_layer.", ".").encode())
        h.update(param.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def json_cached(path: Path, compute: Callable[[], object]) -> tuple[object, bool]:
    """The JSON value stored at `path`, or `compute()` stored there first; and whether it was stored already."""
    with file_lock(path.with_suffix(".lock")):
        if path.is_file():
            return json.loads(path.read_text()), True
        value = compute()
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(value))
        tmp.replace(path)
        return value, False
