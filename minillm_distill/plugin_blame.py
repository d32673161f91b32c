"""Blame an error on the plugin whose code raised it, and name who registered a component.

A plugin's ``per_token``, ``sample``, ``loss`` or ``parse_record`` that raises (a bug in the plugin, not a user
mistake minillm could check) becomes a :class:`PluginError` naming the plugin, its distribution, the method
minillm called and the original error, instead of a traceback through minillm's internals (the traceback stays
under ``--debug``, as the error's cause). Every command goes through it (``minillm_distill.cli.main``), training
too. Built-in plugins are plugins too (distribution ``minillm-distill``).

A frame belongs to a plugin when its module is (inside) the plugin's entry-point module or the module of a
class it registered; the most specific match wins (the built-in plugins share the ``minillm_distill.builtins`` package).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from minillm_distill.errors import PluginError
from minillm_distill.plugins import PluginSet


@dataclass(frozen=True)
class _Owner:
    plugin: str
    distribution: str


def _owned_modules(plugins: PluginSet) -> dict[str, _Owner]:
    """Module prefix -> the plugin owning it."""
    owners: dict[str, _Owner] = {}
    for info in plugins.plugins:
        if info.status == "loaded":
            owners.setdefault(info.target.partition(":")[0], _Owner(info.name, info.distribution))
    for registry in plugins.registries.values():
        for entry in registry.entries():
            if entry.lazy is not None:
                module = entry.lazy.target.partition(":")[0]
            elif entry._cls is not None:
                module = entry._cls.__module__
            else:
                continue
            owners[module] = _Owner(entry.plugin, entry.distribution)
    return owners


def _owner_of(module: str, owners: dict[str, _Owner]) -> _Owner | None:
    best, best_len = None, -1
    for prefix, owner in owners.items():
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
            best, best_len = owner, len(prefix)
    return best


def _frames(tb: TracebackType | None) -> list[TracebackType]:
    out = []
    while tb is not None:
        out.append(tb)
        tb = tb.tb_next
    return out


def blame_plugin(exc: BaseException, plugins: PluginSet) -> PluginError | None:
    """The :class:`PluginError` for ``exc`` if plugin code raised it, else None.

    The innermost plugin frame decides the plugin; the outermost frame of that plugin is the method minillm
    called (``ForwardKL.per_token``), the innermost one the line that raised.
    """
    owners = _owned_modules(plugins)
    hits = []
    for tb in _frames(exc.__traceback__):
        module = tb.tb_frame.f_globals.get("__name__", "")
        owner = _owner_of(module, owners) if isinstance(module, str) else None
        if owner is not None:
            hits.append((tb, owner))
    if not hits:
        return None
    owner = hits[-1][1]
    mine = [tb for tb, o in hits if o == owner]
    entry_code, raising = mine[0].tb_frame.f_code, mine[-1]
    method = getattr(entry_code, "co_qualname", entry_code.co_name)
    where = f"{raising.tb_frame.f_code.co_filename}, line {raising.tb_lineno}"
    return PluginError(
        f"plugin {owner.plugin!r} (distribution {owner.distribution}) failed in {method}: {type(exc).__name__}: {exc}",
        details=[f"raised at {where}"],
        why="the error was raised inside the plugin's code, not by minillm",
        hint=f"fix the plugin or report it to the maintainers of {owner.distribution} (with the --debug "
        "traceback), or choose another component in the recipe",
    )


def plugin_origin(plugins: PluginSet | None, kind: str, name: str, obj: object) -> str:
    """``sampler 'x' (plugin 'p', distribution d; class mod.Cls)``: who to blame for ``obj``, the ``kind``
    component registered as ``name``."""
    cls = obj if isinstance(obj, type) else type(obj)
    where = f"class {cls.__module__}.{cls.__qualname__}"
    entry = None
    if plugins is not None and kind in plugins.registries:
        entry = next((e for e in plugins.registries[kind].entries() if e.name == name), None)
    if entry is None:
        return f"{kind} {name!r} ({where})"
    return f"{kind} {name!r} (plugin {entry.plugin!r}, distribution {entry.distribution}; {where})"
