"""``minillm demo --set KEY=VALUE``: change one demo setting (a field of :class:`DemoSettings`, dotted into its
parts: ``distill.steps=3000``, ``eval.prompts=500``, ``world.shared_weight=0``, ``minillm_alpha=0.5``).

Values are YAML (``3e-3``, ``true``, ``[10, 20]``) and must have the type the setting has; ``world.*`` keys are
fields of the synthetic task's :class:`TaskConfig`. Every problem is a :class:`UsageError` (exit 2) naming the
key, with the closest valid name.
"""

from __future__ import annotations

import copy
import difflib
import typing
from collections.abc import Sequence
from dataclasses import fields, is_dataclass, replace
from typing import Any

import yaml

from minillm_demo.config import DemoSettings
from minillm_distill.api import UsageError, load_yaml

_FIXED = ("mode",)
"""settings a user does not set (``--quick`` decides them)"""


def apply_overrides(settings: DemoSettings, assignments: Sequence[str]) -> DemoSettings:
    """``settings`` with every ``KEY=VALUE`` of ``assignments`` applied, in order."""
    for text in assignments:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {text!r}: expected KEY=VALUE", hint="for example --set distill.steps=3000")
        try:
            value = load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise UsageError(f"--set {key}: cannot read the value {raw!r}", why=str(exc).splitlines()[0]) from exc
        settings = _set(settings, key.split("."), value, key)
    try:
        return replace(settings)  # re-runs DemoSettings' own checks (the world's included) on the combination
    except ValueError as exc:
        raise UsageError(f"--set: {exc}") from exc


def _set(obj: Any, parts: list[str], value: Any, key: str) -> Any:
    name, rest = parts[0], parts[1:]
    if isinstance(obj, dict):  # world: TaskConfig fields
        return {**obj, name: _world_value(name, rest, value, key)}
    options = {f.name: f for f in fields(obj) if f.name not in _FIXED}
    if name not in options:
        close = difflib.get_close_matches(name, list(options), n=1)
        raise UsageError(
            f"--set {key}: unknown demo setting {name!r}",
            hint=f"did you mean {close[0]!r}?" if close else f"settings here: {', '.join(sorted(options))}",
        )
    current = getattr(obj, name)
    if rest:
        if not (is_dataclass(current) or isinstance(current, dict)):
            raise UsageError(f"--set {key}: {name!r} has no parts (it is a {type(current).__name__})")
        return _with(obj, name, _set(current, rest, value, key))
    if is_dataclass(current) or isinstance(current, dict):
        raise UsageError(f"--set {key}: {name!r} is a group of settings; set one of its parts ({name}.FIELD)")
    return _with(obj, name, _coerce(value, current, key))


def _with(obj: Any, name: str, value: Any) -> Any:
    """A copy of the frozen dataclass ``obj`` with ``name`` set, its checks deferred to the end (a combination
    such as ``train_runs`` and ``eval.seeds`` may pass through an invalid state between two ``--set``)."""
    new = copy.copy(obj)
    object.__setattr__(new, name, value)
    return new


def _world_value(name: str, rest: list[str], value: Any, key: str) -> Any:
    from minillm_demo.synthetic.task import TaskConfig

    defaults = TaskConfig()
    options = [f.name for f in fields(TaskConfig)]
    if name not in options or rest:
        close = difflib.get_close_matches(name, options, n=1)
        raise UsageError(
            f"--set {key}: the synthetic task has no setting {'.'.join([name, *rest])!r}",
            hint=f"did you mean world.{close[0]}?" if close else f"world settings: {', '.join(options)}",
        )
    return _coerce(value, getattr(defaults, name), key)


def _coerce(value: Any, current: Any, key: str) -> Any:
    """``value`` as the type of ``current`` (an int where a float is expected is a float; a list a tuple)."""
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(current, str):
        ok = isinstance(value, str)
    elif isinstance(current, tuple):
        ok = (
            isinstance(value, list | tuple)
            and all(isinstance(v, type(current[0])) and not isinstance(v, bool) for v in value)
            if current
            else isinstance(value, list | tuple)
        )
        value = tuple(value) if ok else value
    else:  # pragma: no cover - every setting is one of the above
        ok = True
    if not ok:
        raise UsageError(
            f"--set {key}={value!r}: expected {_describe(current)}",
            hint=f"the current value is {current!r}",
        )
    return value


def _describe(current: Any) -> str:
    if isinstance(current, tuple):
        inner = type(current[0]).__name__ if current else "value"
        return f"a list of {inner}s, e.g. [{', '.join(map(repr, current))}]"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        type(current), typing.cast(Any, type(current)).__name__
    )
