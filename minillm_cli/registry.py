"""A registry of named plugin classes of one kind, with who registered what."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from minillm_cli.errors import PluginError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    cls: type[T]
    plugin: str
    distribution: str


class Registry(Generic[T]):
    """Names to classes for one kind (``divergence``, ``sampler``, ...)."""

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, Entry[T]] = {}
        self.conflicts: list[str] = []

    def check_class(self, cls: object) -> str:
        """Raise ``TypeError`` unless ``cls`` can be registered here; return its ``name``."""
        if not isinstance(cls, type) or not issubclass(cls, self.base):
            raise TypeError(f"{cls!r} is not a subclass of {self.base.__module__}.{self.base.__name__}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__qualname__} has no string class attribute 'name'")
        params = getattr(cls, "Params", None)
        if not isinstance(params, type) or not issubclass(params, BaseModel):
            raise TypeError(
                f"{cls.__qualname__}.Params is not a pydantic model (subclass minillm_cli.api.PluginParams)"
            )
        return name

    def add(self, cls: type[T], *, plugin: str, distribution: str) -> None:
        name = self.check_class(cls)
        if name in self._entries:
            other = self._entries[name]
            self.conflicts.append(
                f"{self.kind} {name!r} is registered twice: by plugin {other.plugin!r} "
                f"({other.distribution}) and by plugin {plugin!r} ({distribution})"
            )
            return
        self._entries[name] = Entry(name, cls, plugin, distribution)

    def discard_plugin(self, plugin: str) -> None:
        """Forget everything ``plugin`` registered (it failed after registering)."""
        self._entries = {n: e for n, e in self._entries.items() if e.plugin != plugin}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def suggest(self, name: str) -> str | None:
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
        return close[0] if close else None

    def unknown_message(self, name: str) -> str:
        available = ", ".join(self.names()) or "(none installed)"
        msg = f"unknown {self.kind} {name!r}; available: {available}"
        guess = self.suggest(name)
        if guess:
            msg += f". Did you mean {guess!r}?"
        return msg

    def get(self, name: str) -> type[T]:
        if name not in self._entries:
            raise PluginError(
                self.unknown_message(name),
                hint=f"run `minillm plugins` to see every installed {self.kind}, or install the plugin that "
                "provides it",
            )
        return self._entries[name].cls
