"""Plumbing shared by the command-line entrypoints (`python -m dpo_exp`, `dpo_exp.eval`, ...).

An entrypoint never imports another entrypoint: what they share (where the configs are, the
console line, the SIGTERM rule, argument rewriting, how a command ends) lives here. Importing
this module stays cheap (no torch).

How a command ends is decided in `run_command` alone: a `UserError` (bad input, said in one
paragraph) prints that paragraph and exits 2, Ctrl-C exits 130 and SIGTERM 143, anything else is a
traceback and exit 1. Hydra would turn a UserError raised in a task into a traceback (exit 1) and
one raised in a callback into a warning, so `hydra_app` tasks and `carry_user_errors` callbacks
pass it through Hydra as `Refused`. In a sweep (`-m`) a job's error does not stop the other jobs:
the task reports it and returns (the sweep lists the job as failed and exits 1 at its end).
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
import traceback
from typing import Callable

import hydra

from dpo_exp.config import UserError

# The one place that says where every app's configs are. `conf/` (the folder users see and edit) is
# the package `dpo_exp.conf`: `dpo_exp/conf` links to it in a checkout and the wheel carries a copy,
# so a pip-installed dpo_exp finds its configs from any directory. Users add their own folder on top
# with `--config-dir DIR` (or `hydra.searchpath=[file:///DIR]`).
CONFIG_PATH = "pkg://dpo_exp.conf"


class Refused(BaseException):
    """A UserError on its way through Hydra to `run_command` (a BaseException: Hydra catches Exception)."""

    def __init__(self, error: UserError):
        super().__init__(str(error))


def carry_user_errors(fn):
    """Let a UserError raised in `fn` (a Hydra task or callback) reach `run_command` as `Refused`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise Refused(e) from None

    return wrapper


def hydra_app(config_name: str):
    """`@hydra_app("config")`: the Hydra main of one dpo_exp command, configs from the package.

    A UserError goes to `run_command` (one paragraph, exit 2). In a sweep one job's error, a UserError
    or a crash, is reported here and the task returns None, so Hydra goes on with the other jobs."""
    def decorate(task):
        @functools.wraps(task)  # Hydra unwraps it to find the task's module
        def job(cfg):
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            if HydraConfig.get().mode != RunMode.MULTIRUN:
                return carry_user_errors(task)(cfg)
            try:
                return task(cfg)
            except UserError as e:
                error(_command, str(e))
            except Exception:  # the job's MLflow run is already marked FAILED, with the reason
                print(f"\n{_command}: job {HydraConfig.get().job.num} failed:\n{traceback.format_exc()}",
                      file=sys.stderr, flush=True)
            return None

        return hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)(job)

    return decorate


def log(msg: str) -> None:
    """The one console line format of every dpo_exp command (rank 0's alone in a multi-process run)."""
    if os.environ.get("RANK", "0") == "0":  # torchrun / accelerate launch set RANK (dpo_exp.distributed)
        print(f"[dpo_exp] {msg}", flush=True)


def error(command: str, msg: str) -> None:
    """A user-facing error: one paragraph on stderr, no traceback."""
    print(f"\n{command}: error: {msg}\n", file=sys.stderr, flush=True)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM. Its message, when it has one, is the line the user sees."""


_SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}
_abort_hooks: list[Callable[[str], None]] = []
received_signal: int | None = None
_command = "dpo_exp"  # the running command's name, for its error messages (set by run_command)


def _raise_interrupt(signum, frame):
    global received_signal
    if received_signal is not None:
        return  # already stopping: a second signal must not interrupt the cleanup that marks the run
    received_signal = signum
    raise Interrupted()


def interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler's kill, `kill PID`) and Ctrl-C stop the command the same way: the run
    in progress is marked KILLED (resumable) and the command ends with one line, no traceback."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)


def on_abort(hook: Callable[[str], None]) -> Callable[[], None]:
    """Call `hook(status)` ('KILLED' or 'FAILED') if the command stops abnormally before the returned
    function is called: how a sweep's parent run is never left RUNNING, whatever stops the sweep."""
    _abort_hooks.append(hook)
    return lambda: _abort_hooks.remove(hook) if hook in _abort_hooks else None


def _run_abort_hooks(status: str) -> None:
    for hook in list(_abort_hooks):
        try:
            hook(status)
        except Exception as e:  # noqa: BLE001 - one failing hook must not hide the reason we stop
            print(f"[dpo_exp] could not mark a run {status}: {e}", file=sys.stderr, flush=True)
    _abort_hooks.clear()


def run_command(main: Callable[[], object], argv: list[str], name: str = "dpo_exp",
                prepare: Callable[[list[str]], list[str]] | None = None,
                validate: Callable[[object], object] | None = None, hydra_args: bool = True) -> None:
    """Run a command (a Hydra app, or with `hydra_args=False` a plain argparse one): argv rewritten
    (`hydra_argv`), `--cfg` validated like a run, signals handled, and every way of stopping ends in
    a clear state: a UserError -> its paragraph, exit 2; interrupted -> one line, exit 130 (Ctrl-C) /
    143 (SIGTERM); an error after a sweep's parent run was opened -> that parent marked FAILED (KILLED
    when interrupted). `prepare(argv) -> argv` runs first (joining a process group); `validate(cfg)`
    checks the composed config for `--cfg` (default: training's `config.to_object`)."""
    global _command
    _command = name
    interrupt_on_sigterm()
    try:
        sys.argv = hydra_argv(argv) if hydra_args else list(argv)  # a mixed beta list is a UserError
        if prepare is not None:
            sys.argv = prepare(sys.argv)
        if hydra_args and any(a in ("--cfg", "-c") or a.startswith("--cfg=") for a in sys.argv[1:]):
            _validate_shown_config(validate)
        main()
    except (UserError, Refused) as e:
        _run_abort_hooks("FAILED")
        error(name, str(e))
        sys.exit(2)
    except KeyboardInterrupt as e:
        _run_abort_hooks("KILLED")
        signum = received_signal or signal.SIGINT
        print(f"[dpo_exp] {str(e) or 'stopped by ' + _SIGNAL_NAMES.get(signum, f'signal {signum}')}",
              file=sys.stderr, flush=True)
        sys.exit(128 + signum)
    except SystemExit as e:
        if e.code not in (0, None):
            _run_abort_hooks("FAILED")
        raise
    except BaseException:
        _run_abort_hooks("FAILED")
        raise
    if _abort_hooks:  # still open after a normal end: something (e.g. a Hydra callback) failed quietly
        _run_abort_hooks("FAILED")
        sys.exit(1)


def _validate_shown_config(validate: Callable[[object], object] | None = None) -> None:
    """`--cfg job` prints the composed config without running the app; validate it first, like a run
    (an invalid value is an error, exit 2, not a printout with exit 0). Hydra has no hook between
    composing and printing, so its show_cfg is wrapped, in this process only."""
    import copy

    from hydra._internal.hydra import Hydra
    from hydra.types import RunMode
    from omegaconf import open_dict
    from omegaconf.errors import MissingMandatoryValue

    from dpo_exp.config import to_object

    validate = validate or to_object
    original = Hydra.show_cfg

    def show_cfg(self, config_name, overrides, cfg_type, package, resolve=False):
        cfg = copy.deepcopy(self.compose_config(config_name=config_name, overrides=overrides, run_mode=RunMode.RUN,
                                                with_log_configuration=False))
        with open_dict(cfg):
            del cfg["hydra"]
        try:
            validate(cfg)
        except MissingMandatoryValue:
            pass  # a key still to be given (`???`) is what --cfg shows, not an error
        except UserError as e:
            raise Refused(e) from None  # through Hydra to run_command
        return original(self, config_name, overrides, cfg_type, package, resolve)

    Hydra.show_cfg = show_cfg


# --- argument rewriting ---------------------------------------------------------------------------

# Hydra's flags that take a value (argparse would otherwise read the value as an override).
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--experimental-rerun", "--info", "-i"}
_INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def hydra_argv(argv: list[str]) -> list[str]:
    """`argv` with beta numbers rewritten (`numeric_beta`) and Hydra's flags moved before the overrides.

    argparse reads overrides as one positional list, so `a=1 --cfg job b=2` is an argparse error
    ("unrecognized arguments: b=2"); flags first, then every override, means the same command.
    """
    argv = numeric_beta(argv)
    flags: list[str] = []
    overrides: list[str] = []
    args = argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            overrides.extend(args[i + 1:])
            break
        if arg.startswith("-"):  # overrides never start with "-" (a negative value is `key=-1`)
            flags.append(arg)
            name = arg.split("=", 1)[0]
            takes_value = name in _FLAGS_WITH_VALUE and "=" not in arg
            if takes_value and i + 1 < len(args):
                # --info's value is optional: take the next word only if it is one of its choices.
                if name not in ("--info", "-i") or args[i + 1] in _INFO_VALUES:
                    flags.append(args[i + 1])
                    i += 1
        else:
            overrides.append(arg)
        i += 1
    return [argv[0], *flags, *overrides]


_PRESET = re.compile(r"[A-Za-z_]\w*")
_FUNCTION = re.compile(r"(\w+)\((.*)\)", re.S)  # a sweeper function: choice(...), range(...), glob(...)


def numeric_beta(argv: list[str]) -> list[str]:
    """`beta=0.3` and `beta=0.05,0.1,0.5` mean `beta.value=...`.

    `beta` is a config group (presets low/default/high), and Hydra refuses a number as a group
    option. Preset names stay a group choice: one (`beta=low`), a list (`beta=low,high`: a sweep over
    presets), `choice(low,high)` or `glob(*)`. Numbers, alone, listed or in a sweeper function
    (`choice(0.1,0.5)`, `interval(0.01,0.5)`), go to `beta.value`, so a beta sweep is a plain list.
    A list mixing names and numbers is an error.
    """
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if key == "beta" and eq:
            function = _FUNCTION.fullmatch(value.strip())
            items = [v.strip() for v in (function.group(2) if function else value).split(",") if v.strip()]
            names = [_PRESET.fullmatch(v) is not None for v in items]
            if function and function.group(1) == "glob" or items and all(names):
                pass  # preset names: Hydra's group choice or group sweep
            elif any(names):
                raise UserError(f"beta={value} mixes preset names and numbers. Fix: sweep presets (beta=low,high) "
                                "or numbers (beta=0.05,0.5), or give a preset's number (low = 0.05, default = 0.1, "
                                "high = 0.5) with the others.")
            else:
                arg = f"beta.value={value}"
        out.append(arg)
    return out


__all__ = ["CONFIG_PATH", "Interrupted", "Refused", "UserError", "carry_user_errors", "error", "hydra_app", "hydra_argv", "interrupt_on_sigterm",
           "log", "numeric_beta", "on_abort", "run_command"]
