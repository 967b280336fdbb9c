"""Plug-in points named by `_target_` in the config: judges (`judge`) and behaviour metrics (`eval.behaviour`).

A plug-in is any importable callable (a class, or a classmethod such as `ModelJudge.from_pretrained`)
named by a config node's `_target_`; the node's other keys are its keyword options. A user's own class
in their own module works as well as ours: it only has to be importable (on PYTHONPATH) and offer the
members of its protocol (`judges.Judge`, `eval.behaviour.BehaviourMetric`).

Everything that can be wrong with such a node (no `_target_`, an unimportable one, an option the target
does not take, a value its constructor refuses) becomes one UserError paragraph naming the config key
and the fix. Option values are never shown: one may be an API key. Importing this module stays cheap
(no torch).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from typing import Any, Iterable, Mapping

from dpo_exp.config import UserError

_SECRET_NAME = re.compile(r"key|token|secret|password|credential", re.I)


def options_of(node: Any, key: str) -> dict[str, Any] | None:
    """The node as a plain dict (None for a null node or `_target_: null`), checked for a string `_target_`."""
    from omegaconf import DictConfig, OmegaConf

    if node is None:
        return None
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, Mapping):
        raise UserError(f"{key} must be a config node with a `_target_` (got a {type(node).__name__}). Fix: pick a "
                        f"shipped option or name a class, e.g. {key}._target_=my_module.MyClass, or set {key}=null.")
    node = dict(node)
    if "_target_" not in node:
        raise UserError(f"{key} has options ({', '.join(map(str, node)) or 'none'}) but no `_target_` naming what to "
                        f"build. Fix: add {key}._target_=<module>.<Class>, or pick a shipped option.")
    if node["_target_"] is None:
        return None
    if not isinstance(node["_target_"], str) or not node["_target_"].strip():
        raise UserError(f"{key}._target_ must be a dotted import path such as my_module.MyClass. Fix: set "
                        f"{key}._target_=<module>.<Class>.")
    return node


def locate(path: str, key: str) -> Any:
    """The object at a dotted path: the longest importable module prefix, then its attributes."""
    parts = path.split(".")
    obj, problem = None, f"no module named {parts[0]!r}"
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and module != e.name and not module.startswith(e.name + "."):
                problem = f"importing {module} failed: {e}"  # it exists, but imports something missing
                break
            continue
        except Exception as e:  # a module that exists and fails to import
            problem = f"importing {module} failed: {type(e).__name__}: {e}"
            break
        for j in range(i, len(parts)):
            if not hasattr(obj, parts[j]):
                problem, obj = f"{'.'.join(parts[:j])} has no attribute {parts[j]!r}", None
                break
            obj = getattr(obj, parts[j])
        break
    if obj is None:
        raise UserError(f"{key}._target_={path!r} cannot be imported ({problem}). Fix: check the dotted path "
                        "(<module>.<Class>); a class in your own module needs that module importable, e.g. "
                        "PYTHONPATH=/path/to/its/folder.")
    if not callable(obj):
        raise UserError(f"{key}._target_={path!r} is a {type(obj).__name__}, not a class or function. Fix: name the "
                        "class (or factory function) to build.")
    return obj


def instantiate(node: Any, key: str, **runtime: Any) -> Any:
    """Build the object a `_target_` node names; None for a null node or `_target_: null`.

    `runtime` holds values the app only knows when it runs (e.g. device=...): each is passed only when
    the target's signature takes it and the node does not set it.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    node = options_of(node, key)
    if node is None:
        return None
    target = locate(node["_target_"], key)
    options = {k: v for k, v in node.items() if not k.startswith("_")}
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some builtins have none; let the call decide
        signature = None
    extra = {}
    if signature is not None:
        params = signature.parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        extra = {k: v for k, v in runtime.items() if k not in options and (takes_any or k in params)}
        try:
            signature.bind(**options, **extra)
        except TypeError as e:  # names options only, never their values
            names = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            raise UserError(f"{key}._target_={node['_target_']} refuses its options: {e}. It takes: "
                            f"{', '.join(names) or 'no options'}. Fix: set each required option as {key}.<name>=..., "
                            f"and remove or rename the others (a new key needs a leading +: +{key}.<name>=...)."
                            ) from None
    secrets = _secret_values(node)
    try:
        return hydra_instantiate({**node, **extra}, _convert_="all")
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, UserError):
            raise UserError(f"{key} ({node['_target_']}): {_scrub(str(cause), secrets)}") from None
        if isinstance(cause, (TypeError, ValueError)):
            raise UserError(f"{key}._target_={node['_target_']} could not be built with these options "
                            f"({type(cause).__name__}: {_scrub(str(cause), secrets)}). Fix: check the types and "
                            f"values of {', '.join(f'{key}.{k}' for k in options) or 'its options'}.") from None
        if cause is not None:
            raise cause
        raise UserError(f"{key}._target_={node['_target_']} could not be built: {_scrub(str(e), secrets)}") from None


def require_members(obj: Any, key: str, members: Iterable[str], protocol: str) -> None:
    """A plug-in must offer its protocol's members; say which are missing, not fail later mid-run."""
    missing = [m for m in members if not hasattr(obj, m)]
    if missing:
        raise UserError(f"{key}._target_ built a {type(obj).__name__}, which lacks {', '.join(missing)}. Fix: give "
                        f"the class every member of {protocol} (see its docstring), or pick a shipped option.")


def require_fields(plugin: Any, key: str, rows: list[Mapping], source: str, off: str | None = None) -> None:
    """Rows must carry the fields a plug-in reads (its optional `requires` attribute); `off` is the override
    that turns the plug-in off (default `<key>=null`)."""
    needs = list(getattr(plugin, "requires", ()) or ())
    missing = [i for i, row in enumerate(rows, start=1) if any(f not in row for f in needs)]
    if missing:
        name = getattr(plugin, "name", type(plugin).__name__)
        raise UserError(f"Held-out rows {missing[:5]}{' ...' if len(missing) > 5 else ''} of {source} lack "
                        f"{', '.join(repr(f) for f in needs)}, which {key} {name!r} reads from every row. Fix: add "
                        f"{'it' if len(needs) == 1 else 'them'} to every row, or choose another {key} "
                        f"({off or f'{key}=null'} for none).")


def _secret_values(node: Mapping[str, Any]) -> list[str]:
    """Values an error message must not echo: options named like secrets, and the variables `*_env` options name."""
    values = [str(v) for k, v in node.items() if _SECRET_NAME.search(str(k)) and not str(k).endswith("_env") and v]
    values += [os.environ[v] for k, v in node.items()
               if str(k).endswith("_env") and isinstance(v, str) and os.environ.get(v)]
    return [v for v in values if len(v) >= 4]


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
