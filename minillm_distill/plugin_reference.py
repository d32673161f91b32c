"""``docs/plugins/reference.md``, written from the code: for every hook, its signature, the base class a plugin
subclasses, the class attributes it sets (with their defaults) and the methods it implements or may override
(signatures and the first paragraph of their docstrings), and the types those methods take and return.

``python -m minillm_distill.plugin_reference > docs/plugins/reference.md`` rewrites the page; a test fails when
the page and the code differ, so the reference cannot go stale.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from typing import Any

HEADER = """\
# Plugin API reference

Written from the code by `python -m minillm_distill.plugin_reference` (a test keeps the two equal). The guides say
how to write each kind of plugin: [divergences](README.md), [sequence-level divergences](sequence-divergences.md),
[samplers](samplers.md), [model families](model-families.md), [benchmarks](benchmarks.md),
[checking and testing](checking.md).

## Version and compatibility

`minillm_distill.api.API_VERSION` is **{version}** (major, minor), versioned apart from minillm's releases. The API
is: every name `minillm_distill.api` exports, the test kit's names (`minillm_distill.testing.__all__`), the hooks
below with their signatures, and the attributes, methods and fields this page lists.

- Within a major version nothing listed here is removed or changes meaning; a minor version only adds (a name, a
  class attribute with a default, a dataclass field with a default, a keyword argument with a default).
- A rename keeps the old name working, with a `DeprecationWarning`, for at least one minor version, and the
  CHANGELOG names both (as `Record` -> `RawRecord`, `Component` -> `Registrable`, `minillm_cli` ->
  `minillm_distill`).
- A plugin that needs an addition checks it: `API_VERSION >= (1, 1)`. Anything not listed (modules other than
  `minillm_distill.api` and `minillm_distill.testing`, names starting with `_`) may change in any release; the
  built-in plugins use only the API, like a third party's (a test checks it).
"""


_REQUIRED = object()


def _first_paragraph(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def _shown_default(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, tuple) and all(isinstance(v, type) for v in value):
        return "(" + ", ".join(v.__name__ for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _signature(fn: Any, *, drop_self: bool = True) -> str:
    """``(a: int, *, b: str = 'x') -> bool``, annotations as written in the source (not quoted)."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if drop_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    parts: list[str] = []
    star_done = False
    for p in params:
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        star_done = star_done or p.kind is p.VAR_POSITIONAL
        text = prefix + p.name
        if p.annotation is not p.empty:
            text += f": {p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {_shown_default(p.default)}"
        parts.append(text)
    result = ""
    if sig.return_annotation is not sig.empty:
        ret = sig.return_annotation
        result = f" -> {ret if isinstance(ret, str) else inspect.formatannotation(ret)}"
    return f"({', '.join(parts)}){result}"


def _class_attributes(cls: type, names: list[str]) -> list[str]:
    lines = []
    for name in names:
        value = getattr(cls, name, _REQUIRED)
        shown = "(required)" if value is _REQUIRED else value.__name__ if isinstance(value, type) else repr(value)
        hint = _annotation(cls, name)
        lines.append(f"| `{name}` | `{hint}` | {shown if value is _REQUIRED else f'`{shown}`'} |")
    return lines


def _annotation(cls: type, name: str) -> str:
    for klass in cls.__mro__:
        text = getattr(klass, "__annotations__", {}).get(name)
        if text is not None:
            return str(text).replace("ClassVar[", "", 1).removesuffix("]") if "ClassVar[" in str(text) else str(text)
    return ""


def _methods(cls: type, names: list[str]) -> list[str]:
    lines = []
    for name in names:
        member = inspect.getattr_static(cls, name)
        fn = member.__func__ if isinstance(member, classmethod | staticmethod) else member
        kind = "classmethod " if isinstance(member, classmethod) else ""
        lines.append(f"- `{kind}{name}{_signature(fn)}`: {_first_paragraph(fn)}")
    return lines


def _fields(cls: type) -> list[str]:
    lines = ["| field | type | default |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        lines.append(f"| `{f.name}` | `{f.type}` | `{default}` |")
    return lines


def _kinds() -> list[dict[str, Any]]:
    from minillm_distill.benchmark import Benchmark
    from minillm_distill.divergence import SequenceDivergence, TokenDivergence
    from minillm_distill.model_family import ModelFamily
    from minillm_distill.sampler import Sampler

    common = ["name", "description", "Params"]
    return [
        {
            "title": "Token-level divergences",
            "hook": "register_divergences",
            "base": TokenDivergence,
            "attributes": [*common, "needs_teacher"],
            "methods": ["per_token"],
        },
        {
            "title": "Sequence-level divergences",
            "hook": "register_divergences",
            "base": SequenceDivergence,
            "attributes": [*common, "needs_teacher", "needs_teacher_logprobs"],
            "methods": ["prepare", "loss", "pretrain_loss"],
        },
        {
            "title": "Samplers",
            "hook": "register_samplers",
            "base": Sampler,
            "attributes": [
                *common,
                "needs_teacher",
                "needs_responses",
                "records_logprobs",
                "records_teacher_logprobs",
                "replays_data",
                "teacher_writes",
            ],  # fmt: skip
            "methods": ["sample", "state_dict", "load_state_dict"],
        },
        {
            "title": "Model families",
            "hook": "register_model_families",
            "base": ModelFamily,
            "attributes": [*common, "model_types", "fallback"],
            "methods": ["build_config", "load_tokenizer", "prepare_tokenizer", "load_model", "format_prompt"],
        },
        {
            "title": "Benchmarks",
            "hook": "register_benchmarks",
            "base": Benchmark,
            "attributes": [
                *common,
                "hub_id",
                "hub_config",
                "hub_split",
                "source_url",
                "data_format",
                "length_buckets",
                "example_records",
                "scorer_packages",
            ],  # fmt: skip
            "methods": ["parse_record", "load_local", "format_prompt", "extra_scores", "require", "format_error"],
        },
    ]


def _types() -> list[type]:
    from minillm_distill.benchmark import EvalExample
    from minillm_distill.divergence import StepNorm
    from minillm_distill.rollout import PromptBatch, RolloutBatch
    from minillm_distill.sampler import SamplerContext

    return [PromptBatch, RolloutBatch, SamplerContext, EvalExample, StepNorm]


def render() -> str:
    """The whole page."""
    from minillm_distill.api_version import API_VERSION
    from minillm_distill.hookspecs import MinillmHookSpecs

    out = [HEADER.format(version=".".join(map(str, API_VERSION)))]
    out.append("## Hooks\n")
    out.append("A plugin module (named by an entry point in the `minillm` group) implements any of these with "
               "`@hookimpl` (from `minillm_distill.api`):\n")  # fmt: skip
    for name, fn in inspect.getmembers(MinillmHookSpecs, inspect.isfunction):
        out.append(f"- `{name}{_signature(fn)}`: {_first_paragraph(fn)}")
    out.append("\n`register(cls)` takes the class, or `register(\"package.module:Class\", name=\"...\")` to import it "
               "only when a recipe uses it.\n")  # fmt: skip
    for kind in _kinds():
        base = kind["base"]
        out.append(f"## {kind['title']}\n")
        out.append(f"Hook `{kind['hook']}`; subclass `{base.__name__}`. {_first_paragraph(base)}\n")
        out.append("| class attribute | type | default |")
        out.append("|---|---|---|")
        out += _class_attributes(base, kind["attributes"])
        out.append("\nMethods:\n")
        out += _methods(base, kind["methods"])
        out.append("")
    out.append("## Types the methods take and return\n")
    for cls in _types():
        out.append(f"### `{cls.__name__}`\n")
        out.append(_first_paragraph(cls) + "\n")
        if dataclasses.is_dataclass(cls):
            out += _fields(cls)
        else:
            out.append(f"`{cls.__name__}{_signature(cls.__init__)}`")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
