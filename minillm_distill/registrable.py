"""The common shape of everything a plugin registers: a class with a ``name`` and a ``Params`` model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class PluginParams(BaseModel):
    """Base of every plugin's recipe options: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: option values ``minillm plugins check`` tries, per field name (a class attribute, not an option);
    #: fields not listed get values derived from their type and bounds (:mod:`minillm_distill.plugin_check.cases`)
    check_values: ClassVar[dict[str, Sequence[Any]]] = {}


class Registrable:
    """The base of every class a plugin registers (a divergence, sampler, model family or benchmark): it is
    found by ``name`` (the recipe key) in a :class:`~minillm_distill.registry.Registry` and built from its
    recipe options, which ``Params`` validates. Subclasses set ``name``, ``description`` and ``Params``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[PluginParams]] = PluginParams

    def __init__(self, params: PluginParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @classmethod
    def from_options(cls, options: dict | None = None) -> Registrable:
        """Build from a plain dict of recipe options (validated by ``Params``)."""
        return cls(cls.Params.model_validate(options or {}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"
