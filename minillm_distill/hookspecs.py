"""The pluggy hook specifications of the ``minillm`` entry-point group.

A plugin is any module (or object) named by an entry point in the ``minillm`` group that implements
some of these hooks with :data:`hookimpl`. Each ``register_*`` hook receives a ``register`` callback;
call it once per class you provide. The class must subclass the matching base in
:mod:`minillm_distill.api` and define ``name`` and ``Params``.

``register`` also takes a reference instead of the class, ``register("my_pkg.module:MyClass", name="mine")``:
the class is then imported (and checked) only when a recipe uses it, so ``minillm plugins`` and ``--help`` stay
fast when the module imports torch. ``name`` must equal the class's ``name``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

PROJECT = "minillm"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

if TYPE_CHECKING:
    import typer


class Register(Protocol):
    """The callback a ``register_*`` hook receives."""

    def __call__(self, cls: type[Any] | str, *, name: str | None = None) -> None: ...


class MinillmHookSpecs:
    """Hooks a ``minillm`` plugin may implement."""

    @hookspec
    def register_divergences(self, register: Register) -> None:
        """Register :class:`minillm_distill.api.Divergence` subclasses (token- or sequence-level)."""

    @hookspec
    def register_samplers(self, register: Register) -> None:
        """Register :class:`minillm_distill.api.Sampler` subclasses (where response tokens come from)."""

    @hookspec
    def register_model_families(self, register: Register) -> None:
        """Register :class:`minillm_distill.api.ModelFamily` subclasses (loading, templates, quirks)."""

    @hookspec
    def register_benchmarks(self, register: Register) -> None:
        """Register :class:`minillm_distill.api.Benchmark` subclasses (evaluation sets and metrics)."""

    @hookspec
    def register_commands(self, app: typer.Typer) -> None:
        """Add subcommands to the ``minillm`` Typer app (``@app.command()``)."""
