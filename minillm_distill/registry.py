"""A registry of named plugin classes of one kind, with who registered what.

A class is registered either as the class itself or lazily, as a :class:`LazyClass` (``"module:Class"`` and the
name it declares), which is imported and checked the first time it is used. Listing names (``minillm plugins``,
``--help``) then imports nothing heavy: the built-in divergences and samplers register lazily so that these
commands do not import torch.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from minillm_distill.errors import PluginError

T = TypeVar("T")


def import_object(target: str) -> Any:
    """The object ``"package.module:Qual.Name"`` names (importing its module)."""
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class LazyClass:
    """A class registered by reference: ``target`` is ``"module:Class"``, ``name`` the recipe name it declares."""

    target: str
    name: str

    def __post_init__(self) -> None:
        module_name, sep, qualname = self.target.partition(":")
        if not sep or not module_name or not qualname:
            raise TypeError(f"lazy class reference {self.target!r} is not of the form 'package.module:ClassName'")
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"lazy class {self.target!r} needs the name it registers (register(target, name=...))")

    def missing_module(self) -> str | None:
        """The module of :attr:`target` when it cannot be found (checked without importing it), else None. A
        missing module is the plugin's warning at load time and its error only when a recipe uses the name."""
        module_name = self.target.partition(":")[0]
        try:  # cheap: finds the file without importing the module itself
            found = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            found = None
        return module_name if found is None else None


@dataclass
class Entry(Generic[T]):
    name: str
    plugin: str
    distribution: str
    registry: Registry[T] = field(repr=False)
    lazy: LazyClass | None = None  # None: registered as a class
    _cls: type[T] | None = field(default=None, repr=False)

    @property
    def cls(self) -> type[T]:
        """The registered class (a lazy one is imported and checked on first use)."""
        if self._cls is None:
            assert self.lazy is not None
            self._cls = self.registry.load(self)
        return self._cls


class Registry(Generic[T]):
    """Names to classes for one kind (``divergence``, ``sampler``, ...).

    ``base`` is the class every entry must subclass, or its ``"module:Class"`` reference (imported when first
    needed, so that a registry of torch-based classes can list names without importing torch).
    """

    def __init__(self, kind: str, base: type[T] | str) -> None:
        self.kind = kind
        self._base = base
        self._entries: dict[str, Entry[T]] = {}
        self.conflicts: list[str] = []

    @property
    def base(self) -> type[T]:
        if isinstance(self._base, str):
            self._base = import_object(self._base)
        return self._base  # type: ignore[return-value]

    def check_class(self, cls: object) -> str:
        """Raise ``TypeError`` unless ``cls`` can be registered here; return its ``name``."""
        if not isinstance(cls, type) or not issubclass(cls, self.base):
            raise TypeError(f"{cls!r} is not a subclass of {self.base.__module__}.{self.base.__name__}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__qualname__} has no string class attribute 'name'")
        from pydantic import BaseModel

        params = getattr(cls, "Params", None)
        if not isinstance(params, type) or not issubclass(params, BaseModel):
            raise TypeError(
                f"{cls.__qualname__}.Params is not a pydantic model (subclass minillm_distill.api.PluginParams)"
            )
        return name

    def add(self, cls: type[T] | LazyClass, *, plugin: str, distribution: str) -> None:
        name = cls.name if isinstance(cls, LazyClass) else self.check_class(cls)
        if name in self._entries:
            other = self._entries[name]
            self.conflicts.append(
                f"{self.kind} {name!r} is registered twice: by plugin {other.plugin!r} "
                f"({other.distribution}) and by plugin {plugin!r} ({distribution})"
            )
            return
        if isinstance(cls, LazyClass):
            self._entries[name] = Entry(name, plugin, distribution, self, lazy=cls)
        else:
            self._entries[name] = Entry(name, plugin, distribution, self, _cls=cls)

    def load(self, entry: Entry[T]) -> type[T]:
        """Import and check a lazily registered class; a failure is the plugin's :class:`PluginError`."""
        assert entry.lazy is not None
        where = (
            f"plugin {entry.plugin!r} ({entry.distribution}) registered {self.kind} {entry.name!r} "
            f"as {entry.lazy.target}"
        )
        try:
            cls = import_object(entry.lazy.target)
            name = self.check_class(cls)
        except Exception as exc:
            raise PluginError(
                f"{where}, but loading it failed: {type(exc).__name__}: {exc}",
                hint="fix or reinstall that plugin, or block it with MINILLM_DISABLE_PLUGINS=<plugin name>",
            ) from exc
        if name != entry.name:
            raise PluginError(
                f"{where}, but that class is named {name!r}",
                hint=f"make the name passed to register() match {cls.__qualname__}.name",
            )
        return cls

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
