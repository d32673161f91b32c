"""Plugin discovery and loading through the ``minillm`` entry-point group.

Loading is safe: a plugin that raises on import or in a hook is recorded (``minillm plugins`` lists it as
failed, and it registers nothing) and the rest still load. ``MINILLM_DISABLE_PLUGINS=a,b`` blocks plugins by
entry-point (plugin) name or distribution name. Two plugins registering the same name is a
:class:`PluginError` naming both (:meth:`PluginSet.check`).
"""

from __future__ import annotations

import difflib
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from minillm_distill.errors import PluginError, UsageError
from minillm_distill.hookspecs import PROJECT, MinillmHookSpecs
from minillm_distill.registry import LazyClass, Registry

if TYPE_CHECKING:
    from minillm_distill.benchmark import Benchmark
    from minillm_distill.divergence import Divergence
    from minillm_distill.model_family import ModelFamily
    from minillm_distill.sampler import Sampler

DISABLE_ENV = "MINILLM_DISABLE_PLUGINS"

# hook name -> registry kind
REGISTER_HOOKS = {
    "register_divergences": "divergence",
    "register_samplers": "sampler",
    "register_model_families": "model_family",
    "register_benchmarks": "benchmark",
}


#: the package of the plugins shipped with minillm
BUILTINS = "minillm_distill.builtins"


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    target: str
    status: str = "loaded"  # loaded | failed | disabled
    error: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # loaded, but something in it is probably a mistake
    traceback: str | None = field(default=None, repr=False)  # full traceback of a failure (``--debug``)

    @property
    def builtin(self) -> bool:
        """Shipped with minillm (``minillm_distill.builtins``): always installed, registered like any plugin."""
        return self.target == BUILTINS or self.target.startswith(BUILTINS + ".")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "builtin": self.builtin,
            "version": self.version,
            "target": self.target,
            "status": self.status,
            "error": self.error,
            "provides": self.provides,
            "warnings": self.warnings,
        }

    def fail(self, exc: BaseException, where: str | None = None) -> None:
        """Record a failure: the plugin then provides nothing."""
        self.status = "failed"
        self.error = (f"{where}: " if where else "") + _short_error(exc)
        self.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.provides = {}


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

    def info(self, name: str) -> PluginInfo | None:
        return next((p for p in self.plugins if p.name == name and p.status == "loaded"), None)

    def fail(self, name: str, exc: BaseException, where: str | None = None) -> None:
        """Mark the loaded plugin ``name`` failed and withdraw everything it registered."""
        info = self.info(name)
        if info is not None:
            info.fail(exc, where)
        for registry in self.registries.values():
            registry.discard_plugin(name)
        if self.manager.get_plugin(name) is not None:
            self.manager.unregister(name=name)

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
    """Plugin (entry-point) or distribution names listed in ``MINILLM_DISABLE_PLUGINS`` (comma-separated)."""
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
        # bases by reference: listing what plugins register must not import torch (divergence.py, sampler.py)
        "divergence": Registry("divergence", "minillm_distill.divergence:Divergence"),
        "sampler": Registry("sampler", "minillm_distill.sampler:Sampler"),
        "model_family": Registry("model family", "minillm_distill.model_family:ModelFamily"),
        "benchmark": Registry("benchmark", "minillm_distill.benchmark:Benchmark"),
    }


class _HookFailed(Exception):
    """A plugin's hook raised; carries the hook name and the original exception."""

    def __init__(self, hook: str, exc: BaseException) -> None:
        super().__init__(hook)
        self.hook = hook
        self.exc = exc


# A plugin calling sys.exit() on import must not end the CLI either; KeyboardInterrupt still propagates.
_PLUGIN_FAILURES = (Exception, SystemExit)


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
        if ep.name in blocked or dist in blocked:
            info.status = "disabled"
            infos.append(info)
            continue
        try:
            other = next((i for i in infos if i.name == ep.name and i.status == "loaded"), None)
            if other is not None:
                raise PluginError(
                    f"plugin name {ep.name!r} ({ep.value}, distribution {dist}) is already taken by "
                    f"{other.target} (distribution {other.distribution}); entry-point names must be unique"
                )
            obj = ep.load()
            if isinstance(obj, type):  # an entry point naming a class: pluggy needs an instance
                obj = obj()
            if pm.is_registered(obj):
                raise PluginError(f"{ep.value} is already registered as plugin {pm.get_name(obj)!r}")
            # hook implementations whose arguments are not in the hookspec fail here (pluggy validates them)
            pm.register(obj, name=ep.name)
        except _PLUGIN_FAILURES as exc:  # a broken plugin must not break the CLI
            info.fail(exc)
            infos.append(info)
            continue
        infos.append(info)
        info.warnings = unmarked_hooks(obj, ep.value)
        try:
            _check_hookimpls(pm, ep.name)
            staged = _run_register_hooks(pm, ep.name, registries)
        except _HookFailed as err:
            info.fail(err.exc, where=f"in {err.hook}")
            pm.unregister(name=ep.name)
            continue
        except _PLUGIN_FAILURES as exc:
            info.fail(exc)
            pm.unregister(name=ep.name)
            continue
        # only a plugin whose hooks all succeeded registers anything
        for kind, cls in staged:
            registries[kind].add(cls, plugin=ep.name, distribution=dist)
            info.provides.setdefault(kind, []).append(cls.name)
            missing = cls.missing_module() if isinstance(cls, LazyClass) else None
            if missing is not None:
                info.warnings.append(
                    f"{ep.value}: registers {kind} {cls.name!r} as {cls.target}, but there is no module named "
                    f"{missing!r}; a recipe that uses {cls.name!r} fails (the rest of the plugin works)"
                )
    return PluginSet(pm, infos, registries)


KNOWN_HOOKS = (*REGISTER_HOOKS, "register_commands")


def _check_hookimpls(pm: pluggy.PluginManager, plugin_name: str) -> None:
    """A misspelled hook name would otherwise be silently ignored; hook wrappers make no sense here."""
    plugin = pm.get_plugin(plugin_name)
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.name not in KNOWN_HOOKS:
            guess = difflib.get_close_matches(caller.name, KNOWN_HOOKS, n=1)
            raise PluginError(
                f"unknown hook {caller.name!r}"
                + (f"; did you mean {guess[0]!r}?" if guess else "")
                + f" (known hooks: {', '.join(KNOWN_HOOKS)})"
            )
        for impl in caller.get_hookimpls():
            if impl.plugin_name == plugin_name and (impl.hookwrapper or impl.wrapper):
                raise PluginError(f"hook {caller.name!r} must be a plain hookimpl, not a wrapper")


def unmarked_hooks(plugin: object, target: str) -> list[str]:
    """Warnings for functions named like a hook that lack ``@hookimpl`` (pluggy silently ignores them)."""
    warnings = []
    for hook in KNOWN_HOOKS:
        function = getattr(plugin, hook, None)
        if callable(function) and getattr(function, f"{PROJECT}_impl", None) is None:
            warnings.append(
                f"{target}: {hook}() is not marked @hookimpl, so minillm never calls it and it registers "
                "nothing; decorate it with @hookimpl (from minillm_distill.api import hookimpl)"
            )
    return warnings


def _call_impl(impl: pluggy.HookImpl, **kwargs: Any) -> None:
    """Call one hook implementation with the arguments it asks for (pluggy allows a subset)."""
    impl.function(**{name: kwargs[name] for name in impl.argnames})


def _run_register_hooks(
    pm: pluggy.PluginManager,
    plugin_name: str,
    registries: dict[str, Registry[Any]],
) -> list[tuple[str, type[Any] | LazyClass]]:
    """Run the plugin's ``register_*`` hooks; return ``(kind, class)`` pairs to add once all succeeded."""
    staged: list[tuple[str, type[Any] | LazyClass]] = []
    for hook_name, kind in REGISTER_HOOKS.items():
        registry = registries[kind]

        def register(
            cls: type[Any] | str,
            *,
            name: str | None = None,
            _registry: Registry[Any] = registry,
            _kind: str = kind,
        ) -> None:
            # a bad class or reference raises TypeError inside the plugin's hook: a clear failure
            if isinstance(cls, str):
                staged.append((_kind, LazyClass(cls, name)))  # type: ignore[arg-type]
                return
            if name is not None:
                raise TypeError("register(cls) takes name= only with a 'module:Class' reference")
            _registry.check_class(cls)
            staged.append((_kind, cls))

        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name != plugin_name:
                continue
            try:
                _call_impl(impl, register=register)
            except _PLUGIN_FAILURES as exc:
                raise _HookFailed(hook_name, exc) from exc
    return staged


def _command_names(commands: list[Any], groups: list[Any]) -> list[str]:
    """Build Typer command/group infos into Click commands (catching bad signatures now) and name them."""
    import typer

    probe = typer.Typer()
    probe.callback()(lambda: None)
    probe.registered_commands.extend(commands)
    probe.registered_groups.extend(groups)
    return list(typer.main.get_command(probe).commands)  # type: ignore[attr-defined]


def add_plugin_commands(app: Any, plugin_set: PluginSet, taken: Iterable[str] = ()) -> None:
    """Run every loaded plugin's ``register_commands(app)``.

    A plugin that raises, adds a command Typer cannot build, or reuses a taken command name (one of ``app``'s
    or of ``taken``, minillm's own) is marked failed (with everything it registered withdrawn); the CLI and
    the other plugins keep working.
    """
    owners = dict.fromkeys([*taken, *_command_names(app.registered_commands, app.registered_groups)], "minillm")
    for impl in plugin_set.manager.hook.register_commands.get_hookimpls():
        name = impl.plugin_name
        n_commands, n_groups = len(app.registered_commands), len(app.registered_groups)
        try:
            _call_impl(impl, app=app)
            added = _command_names(app.registered_commands[n_commands:], app.registered_groups[n_groups:])
            for command in added:
                if command in owners:
                    raise PluginError(f"command {command!r} is already provided by {owners[command]}")
        except _PLUGIN_FAILURES as exc:
            del app.registered_commands[n_commands:]
            del app.registered_groups[n_groups:]
            plugin_set.fail(name, exc, where="in register_commands")
            continue
        owners.update(dict.fromkeys(added, f"plugin {name!r}"))
        info = plugin_set.info(name)
        if info is not None:
            provided = info.provides.setdefault("command", [])
            provided.extend(c for c in added if c not in provided)


@lru_cache(maxsize=1)
def get_plugins() -> PluginSet:
    """The process-wide plugin set (loaded once)."""
    return load_plugins()


def reset_plugins() -> None:
    """Forget the cached plugin set (tests, or after installing a plugin in-process)."""
    get_plugins.cache_clear()


def resolve_benchmark(name: str) -> Any:
    """An instance of the installed benchmark called ``name``; an unknown name is a usage error (exit 2)."""
    registry = get_plugins().benchmarks
    if name not in registry:
        raise UsageError(
            registry.unknown_message(name),
            hint="`minillm plugins` lists every installed benchmark; a plugin can add more",
        )
    return registry.get(name)()
