"""Plugin discovery and loading through the ``minillm`` entry-point group.

Loading is safe: a plugin that raises on import or in a hook is recorded (``minillm plugins`` lists it as
failed) and the rest still load. ``MINILLM_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name.
Two plugins registering the same name is a :class:`PluginError` naming both.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from minillm_cli.benchmark import Benchmark
from minillm_cli.divergence import Divergence
from minillm_cli.errors import PluginError
from minillm_cli.hookspecs import PROJECT, MinillmHookSpecs
from minillm_cli.model_family import ModelFamily
from minillm_cli.registry import Registry
from minillm_cli.sampler import Sampler

DISABLE_ENV = "MINILLM_DISABLE_PLUGINS"

# hook name -> registry kind
REGISTER_HOOKS = {
    "register_divergences": "divergence",
    "register_samplers": "sampler",
    "register_model_families": "model_family",
    "register_benchmarks": "benchmark",
}


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    target: str
    status: str = "loaded"  # loaded | failed | disabled
    error: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "target": self.target,
            "status": self.status,
            "error": self.error,
            "provides": self.provides,
        }


@dataclass
class PluginSet:
    """Everything the installed plugins provide."""

    manager: pluggy.PluginManager
    plugins: list[PluginInfo]
    registries: dict[str, Registry[Any]]

    @property
    def divergences(self) -> Registry[Divergence]:
        return self.registries["divergence"]

    @property
    def samplers(self) -> Registry[Sampler]:
        return self.registries["sampler"]

    @property
    def model_families(self) -> Registry[ModelFamily]:
        return self.registries["model_family"]

    @property
    def benchmarks(self) -> Registry[Benchmark]:
        return self.registries["benchmark"]

    @property
    def conflicts(self) -> list[str]:
        return [c for reg in self.registries.values() for c in reg.conflicts]

    def check(self) -> None:
        """Raise :class:`PluginError` if two plugins registered the same name."""
        if self.conflicts:
            raise PluginError(
                "conflicting plugin registrations",
                details=self.conflicts,
                why="two installed plugins provide the same name, so a recipe could not say which it means",
                hint=f"uninstall one of them, or block one with {DISABLE_ENV}=<plugin name>",
            )


def disabled_plugins() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def _dist_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown", "unknown"
    return dist.metadata["Name"] or dist.name, dist.version


def _short_error(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _new_registries() -> dict[str, Registry[Any]]:
    return {
        "divergence": Registry("divergence", Divergence),
        "sampler": Registry("sampler", Sampler),
        "model_family": Registry("model family", ModelFamily),
        "benchmark": Registry("benchmark", Benchmark),
    }


def load_plugins(eps: list[EntryPoint] | None = None) -> PluginSet:
    """Discover, import and run the ``register_*`` hooks of every plugin (uncached)."""
    if eps is None:
        eps = sorted(entry_points(group=PROJECT), key=lambda e: e.name)
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(MinillmHookSpecs)
    blocked = disabled_plugins()
    infos: list[PluginInfo] = []
    registries = _new_registries()
    for ep in eps:
        dist, version = _dist_of(ep)
        info = PluginInfo(ep.name, dist, version, ep.value)
        infos.append(info)
        if ep.name in blocked:
            info.status = "disabled"
            continue
        try:
            obj = ep.load()
            if pm.is_registered(obj) or pm.get_plugin(ep.name) is not None:
                raise PluginError(f"plugin {ep.name!r} ({ep.value}) is registered twice")
            # hook implementations with unknown arguments fail here (pluggy validates them)
            pm.register(obj, name=ep.name)
        except Exception as exc:  # a broken plugin must not break the CLI
            info.status = "failed"
            info.error = _short_error(exc)
            continue
        try:
            _check_hookimpls(pm, ep.name)
            _run_register_hooks(pm, ep.name, info, registries, dist)
        except Exception as exc:
            info.status = "failed"
            info.error = _short_error(exc)
            pm.unregister(name=ep.name)
    return PluginSet(pm, infos, registries)


def _check_hookimpls(pm: pluggy.PluginManager, plugin_name: str) -> None:
    """A misspelled hook name would otherwise be silently ignored."""
    known = set(REGISTER_HOOKS) | {"register_commands"}
    plugin = pm.get_plugin(plugin_name)
    for attr in dir(plugin):
        fn = getattr(plugin, attr, None)
        if callable(fn) and hasattr(fn, f"{PROJECT}_impl") and attr not in known:
            raise PluginError(f"unknown hook {attr!r} (known hooks: {', '.join(sorted(known))})")


def _run_register_hooks(
    pm: pluggy.PluginManager,
    plugin_name: str,
    info: PluginInfo,
    registries: dict[str, Registry[Any]],
    dist: str,
) -> None:
    for hook_name, kind in REGISTER_HOOKS.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            if impl.plugin_name != plugin_name:
                continue
            registry = registries[kind]

            def register(cls: type[Any], _registry: Registry[Any] = registry, _kind: str = kind) -> None:
                _registry.add(cls, plugin=plugin_name, distribution=dist)
                info.provides.setdefault(_kind, []).append(cls.name)

            impl.function(register=register)


def add_plugin_commands(app: Any, plugin_set: PluginSet) -> None:
    """Run every loaded plugin's ``register_commands(app)``; a failing plugin is recorded, not fatal."""
    by_name = {info.name: info for info in plugin_set.plugins}
    for impl in plugin_set.manager.hook.register_commands.get_hookimpls():
        info = by_name.get(impl.plugin_name)
        before = len(app.registered_commands)
        try:
            impl.function(app=app)
        except Exception as exc:
            del app.registered_commands[before:]
            if info is not None:
                info.status = "failed"
                info.error = _short_error(exc)
            continue
        if info is not None:
            added = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands[before:]]
            info.provides.setdefault("command", []).extend(added)


@lru_cache(maxsize=1)
def get_plugins() -> PluginSet:
    """The process-wide plugin set (loaded once)."""
    return load_plugins()


def reset_plugins() -> None:
    """Forget the cached plugin set (tests, or after installing a plugin in-process)."""
    get_plugins.cache_clear()
