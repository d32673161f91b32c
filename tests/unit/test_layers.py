"""The shape of the package, checked from its source: every module sits on a layer and imports only from its own
layer or the ones below, the import graph has no circle, and no module reaches into another's private names.

Imports are read with ``ast`` (module level and inside functions alike; only ``if TYPE_CHECKING:`` blocks are
left out, since they never run). The layers, lowest first, are :data:`LAYERS`; docs/architecture.md draws them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT

PACKAGES = {
    "minillm_distill": ROOT / "minillm_distill",  # the core, with its built-in plugins in builtins/
    "minillm_demo": ROOT / "packages" / "minillm-demo" / "src" / "minillm_demo",
}
#: plugin packages: above the whole core, and they import only its api (the built-in ones like any other)
PLUGIN_PACKAGES = ("minillm_distill.builtins", "minillm_demo")

#: lowest first; a module's layer is the one of its longest listed prefix (below ``minillm_distill.``)
LAYERS: list[tuple[str, ...]] = [
    # ground floor: errors, files and folders, the rollout types, chat text, the plugin base
    (
        "errors", "api_version", "io_errors", "file_modes", "seeds", "json_rows", "provenance", "run_lock",
        "safe_load", "host_memory", "run_layout", "tracker_names", "byte_tokenizer", "registry", "hookspecs",
        "rollout", "rollout_contract", "registrable", "data.chat", "data.prompt_format", "data.records",
    ),
    # the contracts plugins implement, and scoring
    ("state_files", "model_facts", "scoring", "generation", "benchmark", "model_family", "divergence", "sampler"),
    # installed plugins, models, tokenized data
    (
        "plugins", "plugin_blame", "plugin_outputs", "plugin_reference", "gguf", "models", "lora", "data",
        "teacher_cache.cache_format", "teacher_cache.fingerprints",
    ),
    # recipes (validation, pre-flight) and the pieces of evaluation that know no runner
    ("recipe", "eval.metrics", "eval.labels", "eval.prompts"),
    # what works on loaded models: evaluation, plugin checks, export, cutting and fetching models
    ("eval", "plugin_check", "export", "cut", "fetch", "teacher_cache"),
    ("train",),
    ("jobs", "reproduce"),
    # the surfaces: commands, the public API, the plugin test kit
    ("cli", "api", "testing", "__main__", ""),
]  # fmt: skip


def module_names() -> dict[str, Path]:
    found = {}
    for pkg, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [pkg, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = module_names()


def _owner(name: str) -> str | None:
    """The module (or package) of ours that ``name`` lives in, if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


def imports_of(module: str) -> list[tuple[str, list[str]]]:
    """(imported module of ours, names taken from it) for each import statement in ``module``."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".")
            base = base if node.level else (node.module or "")
            for a in node.names:  # ``from pkg import module`` imports the module itself
                sub = f"{base}.{a.name}"
                found.append((sub, []) if sub in MODULES else (base, [a.name]))
    return [(owner, names) for name, names in found if (owner := _owner(name)) and owner != module]


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in imports_of(m) if not m.startswith(t + ".")} for m in MODULES}


def layer_of(module: str) -> int:
    if _is_plugin(module):
        return len(LAYERS)
    rest = module.removeprefix("minillm_distill").removeprefix(".")
    best = max(
        ((len(prefix), i) for i, group in enumerate(LAYERS) for prefix in group if _under(rest, prefix)),
        default=None,
    )
    assert best is not None, f"{module} is on no layer: add it to LAYERS in tests/unit/test_layers.py"
    return best[1]


def _is_plugin(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in PLUGIN_PACKAGES)


def _under(name: str, prefix: str) -> bool:
    return prefix == "" if name == "" else prefix == "" or name == prefix or name.startswith(prefix + ".")


def test_every_core_module_is_on_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_runs_up_the_layers():
    upward = [
        f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
        for m, targets in graph().items()
        for t in targets
        if layer_of(t) > layer_of(m)
    ]
    assert upward == [], "\n".join(upward)


def test_the_import_graph_has_no_circle():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    circles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                circles.append(path[path.index(t) :] + [t])
            elif t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert circles == [], "\n".join(" -> ".join(c) for c in circles)


def test_no_module_uses_another_modules_private_names():
    private = []
    for m in MODULES:
        tree = ast.parse(MODULES[m].read_text(encoding="utf-8"))
        aliases = {}  # local name -> our module it is bound to
        for target, names in imports_of(m):
            private += [f"{m} imports {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                for a in node.names:
                    full = a.name if isinstance(node, ast.Import) else f"{node.module}.{a.name}"
                    if full in MODULES:
                        aliases[a.asname or a.name.split(".")[-1]] = full
        for node in _runtime_nodes(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                private.append(f"{m} uses {aliases[node.value.id]}.{node.attr}")
    assert private == [], "\n".join(private)


def test_plugin_packages_import_only_the_api():
    outside = [
        f"{m} imports {t}"
        for m, targets in graph().items()
        if _is_plugin(m)
        for t in targets
        if not _is_plugin(t) and t != "minillm_distill.api"
    ]
    assert outside == [], "\n".join(outside)


@pytest.mark.parametrize(
    ("module", "expected"),
    [("minillm_distill.errors", 0), ("minillm_distill.scoring.walk", 1), ("minillm_distill.eval.prompts", 3),
     ("minillm_distill.eval.runner", 4), ("minillm_distill.train.loop", 5), ("minillm_distill", 7),
     ("minillm_demo.report", 8), ("minillm_distill.builtins.samplers.mixed", 8)],
)  # fmt: skip
def test_layer_lookup_takes_the_longest_prefix(module, expected):
    assert layer_of(module) == expected
