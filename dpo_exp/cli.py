"""Plumbing shared by the command-line entrypoints (`python -m dpo_exp`, `dpo_exp.eval`, ...).

An entrypoint never imports another entrypoint: what they share (the console line, the SIGTERM
rule, argument rewriting) lives here. Importing this module stays cheap (no torch).
"""

from __future__ import annotations

import os
import re
import signal


def log(msg: str) -> None:
    """The one console line format of every dpo_exp command (rank 0's alone in a multi-process run)."""
    if os.environ.get("RANK", "0") == "0":  # torchrun / accelerate launch set RANK (dpo_exp.distributed)
        print(f"[dpo_exp] {msg}", flush=True)


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler's kill, `kill PID`) behaves like Ctrl-C: the MLflow run is marked KILLED."""
    signal.signal(signal.SIGTERM, raise_interrupt)


def numeric_beta(argv: list[str]) -> list[str]:
    """`beta=0.3` and `beta=0.05,0.1,0.5` mean `beta.value=...`.

    `beta` is a config group (presets low/default/high), and Hydra refuses a number as a group
    option. Anything that is not a preset name (a number, a list, choice()/interval() for
    sweepers) is passed to `beta.value` instead, so a beta sweep is a plain list.
    """
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if key == "beta" and eq and not re.fullmatch(r"[A-Za-z_]\w*", value):
            arg = f"beta.value={value}"
        out.append(arg)
    return out
