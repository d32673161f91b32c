"""Which option values ``minillm plugins check`` tries: each ``Params`` field is varied one at a time from the
defaults, through values the plugin declares or, without a declaration, values derived from the field.

A plugin declares values on its ``Params`` model (a class attribute, so it is no recipe option)::

    class TopKParams(TokenDivergenceParams):
        check_values: ClassVar[dict[str, Sequence[Any]]] = {"k": (1, 2, 50)}
        k: int = Field(10, ge=1)

Declarations are inherited and merged along the class hierarchy (a subclass overrides a field's entry; an
empty sequence turns a field's variation off). A field without a declaration gets, from its type and
constraints (``ge``/``gt``/``le``/``lt``):

* ``bool``: the other value; ``Literal[...]`` and enums: every other choice;
* ``int``: the inclusive bounds (``gt`` + 1, ``lt`` - 1 for exclusive ones), then twice the default (1 for
  a default of 0); ``float``: the inclusive bounds, then half and twice the default (1.0 for 0);
* ``X | None``: ``None`` when the default is not ``None``, plus the values for ``X`` (with 1 / 1.0 in place
  of the default's multiples when the default is ``None``);
* anything else (strings, lists): no variation.

At most :data:`MAX_DERIVED` derived values per field, and only those ``Params`` accepts; a *declared* value
that ``Params`` rejects is reported (the declaration is wrong).
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

MAX_DERIVED = 3

_MISSING = object()


@dataclass(frozen=True)
class Case:
    """One set of options to check a plugin with: ``options`` for ``Params.model_validate``."""

    options: dict[str, Any]
    label: str

    def __str__(self) -> str:
        return self.label


@dataclass
class Cases:
    """The cases of one ``Params`` model, and declared values it rejected (``field=value: why``)."""

    cases: list[Case]
    rejected: list[str] = field(default_factory=list)


def declared_values(params: type[BaseModel]) -> dict[str, Sequence[Any]]:
    """The ``check_values`` declarations of ``params`` and its bases, merged (subclasses win)."""
    merged: dict[str, Sequence[Any]] = {}
    for klass in reversed(params.__mro__):
        own = klass.__dict__.get("check_values")
        if isinstance(own, dict):
            merged.update(own)
    return merged


def _bounds(info: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in info.metadata:
        for name in ("ge", "gt", "le", "lt"):
            value = getattr(item, name, None)
            if value is not None:
                out[name] = value
    return out


def _numeric(kind: type, default: Any, bounds: dict[str, Any]) -> list[Any]:
    values: list[Any] = []
    if kind is int:
        if "ge" in bounds:
            values.append(int(bounds["ge"]))
        if "gt" in bounds:
            values.append(int(bounds["gt"]) + 1)
        if "le" in bounds:
            values.append(int(bounds["le"]))
        if "lt" in bounds:
            values.append(int(bounds["lt"]) - 1)
        if isinstance(default, int):
            values.append(default * 2 if default else default + 1)
        elif default is None:
            values.append(1)
    else:
        if "ge" in bounds:
            values.append(float(bounds["ge"]))
        if "le" in bounds:
            values.append(float(bounds["le"]))
        if isinstance(default, int | float) and not isinstance(default, bool):
            values += [float(default) / 2, float(default) * 2] if default else [1.0]
        elif default is None:
            values.append(1.0)
    return values


def derived_values(annotation: Any, default: Any, info: Any) -> list[Any]:
    """Candidate values for a field without a declaration (see the module docstring), default excluded."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    values: list[Any] = []
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) < len(args) and default is not None:
            values.append(None)
        if len(inner) == 1:
            inner_default = default if default is not None else _MISSING
            values += derived_values(inner[0], inner_default, info)
    elif origin is typing.Literal:
        values = list(args)
    elif annotation is bool:
        values = [not default] if isinstance(default, bool) else [True, False]
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = list(annotation)
    elif annotation in (int, float):
        values = _numeric(annotation, default if default is not _MISSING else None, _bounds(info))
    out: list[Any] = []
    for v in values:
        if v is not None and default is not None and default is not _MISSING and v == default:
            continue
        if v is None and default is None:
            continue
        if v not in out:
            out.append(v)
    return out


def _key(params: type[BaseModel], name: str) -> str:
    """The key a recipe uses for field ``name`` (its alias unless the model accepts field names)."""
    info = params.model_fields[name]
    if info.alias and not params.model_config.get("populate_by_name", False):
        return info.alias
    return name


def _fmt(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items()) or "defaults"


def param_cases(params: type[BaseModel], base: dict[str, Any] | None = None) -> Cases:
    """The defaults (updated with ``base``), then each field varied alone through its values.

    Variants ``Params`` rejects are skipped (a derived value) or reported in :attr:`Cases.rejected` (a
    declared one); variants that validate to options already covered are dropped."""
    base = dict(base or {})
    try:
        start = params.model_validate(base)
    except ValidationError as exc:
        return Cases([], [f"{_fmt(base)}: {exc.errors()[0]['msg']}"])
    cases = [Case(base, _fmt(base))]
    seen = [start.model_dump()]
    rejected: list[str] = []
    declared = declared_values(params)
    for name, info in params.model_fields.items():
        key = _key(params, name)
        current = getattr(start, name)
        if name in declared or key in declared:
            values, is_declared = list(declared.get(name, declared.get(key, ()))), True
        else:
            values, is_declared = derived_values(info.annotation, current, info)[:MAX_DERIVED], False
        for value in values:
            options = {**base, key: value}
            try:
                dumped = params.model_validate(options).model_dump()
            except ValidationError as exc:
                if is_declared:
                    rejected.append(f"{key}={value!r}: {exc.errors()[0]['msg']}")
                continue
            if dumped in seen:
                continue
            seen.append(dumped)
            cases.append(Case(options, _fmt(options)))
    return Cases(cases, rejected)
