"""Which installed plugins ``minillm plugins check NAME...`` checks, and running their checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from minillm_distill.errors import UsageError
from minillm_distill.plugin_check.result import CheckResult
from minillm_distill.plugins import PluginSet
from minillm_distill.registry import Entry

CHECKED_KINDS = ("divergence", "sampler", "model_family", "benchmark")


@dataclass(frozen=True)
class Target:
    """One registered class to check."""

    kind: str
    entry: Entry[Any]

    @property
    def name(self) -> str:
        return self.entry.name


def _targets(plugins: PluginSet) -> list[Target]:
    return [Target(kind, e) for kind in CHECKED_KINDS for e in plugins.registries[kind].entries()]


def select_targets(plugins: PluginSet, names: list[str]) -> list[Target]:
    """Every divergence, sampler, model family and benchmark (no names), or those named: a component's name,
    or a plugin's (or its distribution's) name for everything it registers. An unknown name is a usage error."""
    everything = _targets(plugins)
    if not names:
        return everything
    chosen: list[Target] = []
    for name in names:
        found = [t for t in everything if t.name == name]
        if not found:
            found = [t for t in everything if name in (t.entry.plugin, t.entry.distribution)]
        if not found:
            if plugins.info(name) is not None:
                raise UsageError(
                    f"plugin {name!r} registers nothing to check",
                    hint="`minillm plugins` lists what each plugin registers",
                )
            known = sorted({t.name for t in everything} | {t.entry.plugin for t in everything})
            raise UsageError(
                f"no divergence, sampler, model family, benchmark or plugin named {name!r}",
                details=[f"known: {', '.join(known)}"],
                hint="`minillm plugins` lists the installed plugins and what they register",
            )
        chosen += [t for t in found if t not in chosen]
    return chosen


def check_target(target: Target, models_factory: Callable[[], Any]) -> list[CheckResult]:
    """The results of every check of one target (a class that fails to load is one failed result)."""
    from minillm_distill.divergence import SequenceDivergence, TokenDivergence
    from minillm_distill.errors import MinillmError

    try:
        cls = target.entry.cls
    except (MinillmError, Exception) as exc:  # a lazy reference that does not import or is not a valid class
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        return [CheckResult(target.kind, target.name, "load", False, 0, message)]
    if target.kind == "sampler":
        from minillm_distill.plugin_check.sampler import check_sampler

        results = check_sampler(cls, target.name, models_factory())
    elif target.kind == "model_family":
        from minillm_distill.plugin_check.family import plan_model_family

        results = plan_model_family(cls, target.name).run()
    elif target.kind == "benchmark":
        from minillm_distill.plugin_check.benchmark import notes, plan_benchmark

        results = plan_benchmark(cls, target.name).run()
        for r in results:
            r.notes += notes(cls) if r.check == "records" else []
    elif issubclass(cls, TokenDivergence):
        from minillm_distill.plugin_check.token import check_token_divergence

        results = check_token_divergence(cls, target.name)
    elif issubclass(cls, SequenceDivergence):
        from minillm_distill.plugin_check.sequence import check_sequence_divergence

        results = check_sequence_divergence(cls, target.name)
    else:
        why = (
            f"{cls.__qualname__} subclasses Divergence but neither TokenDivergence nor SequenceDivergence: "
            "training cannot use it"
        )
        results = [CheckResult(target.kind, target.name, "level", False, 0, why)]
    for r in results:
        r.distribution = target.entry.distribution
    return results


def run_checks(targets: list[Target]) -> Iterator[CheckResult]:
    """Each target's results as they are computed (the sampler checks' tiny models are built once)."""
    import torch

    built: list[Any] = []

    def models_factory() -> Any:
        if not built:
            from minillm_distill.plugin_check.sampler import build_check_models

            built.append(build_check_models())
        return built[0]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: thread hand-offs cost more than the arithmetic
    try:
        with torch.random.fork_rng(devices=[]):
            for target in targets:
                yield from check_target(target, models_factory)
    finally:
        torch.set_num_threads(threads)
