"""YAML reading with three fixes over PyYAML's defaults: ``3e-4`` is a float (PyYAML reads it as a
string), a key given twice in one mapping is an error (:class:`DuplicateKeyError`, naming every
repeated key by its dotted location) instead of silently keeping the last, and a document whose aliases
expand to more than :data:`MAX_EXPANDED_NODES` values (a "billion laughs" document of nested ``*alias``
lists) is an error (:class:`ExpansionError`) before anything is built from it."""

from __future__ import annotations

import re
from typing import Any

import yaml

_FLOAT = re.compile(
    r"""^(?:
        [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
      | [-+]?(?:[0-9][0-9_]*)[eE][-+]?[0-9]+
      | [-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
      | [-+]?\.(?:inf|Inf|INF)
      | \.(?:nan|NaN|NAN)
    )$""",
    re.X,
)


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 style floats (``1e-5`` is a float); duplicates are found by ``load_yaml``."""


RecipeLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class DuplicateKeyError(yaml.YAMLError):
    """One or more mappings give the same key twice; ``duplicates`` holds ``(dotted location, message)``."""

    def __init__(self, duplicates: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{loc}: {msg}" for loc, msg in duplicates))
        self.duplicates = duplicates


_MERGE_TAG = "tag:yaml.org,2002:merge"

# Far above any recipe or settings file (the largest shipped recipe expands to a few hundred values), far
# below what hangs a program that walks the structure (DeepSpeed prints its whole config).
MAX_EXPANDED_NODES = 100_000


class ExpansionError(yaml.YAMLError):
    """The document expands (through anchors and aliases) to too large, or an endless, structure."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return self.message


#: how deep sections may nest (a recipe needs 4); deeper is refused before anything recurses through it
MAX_DEPTH = 64


class NestingError(yaml.YAMLError):
    """The document nests deeper than :data:`MAX_DEPTH` levels."""

    def __init__(self, line: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        self.message = (
            f"{where}the YAML nests more than {MAX_DEPTH} levels deep; nothing this deep is a recipe or a setting"
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def _check_expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> None:
    """Raise :class:`ExpansionError` if the document, with every alias expanded, has more than ``limit``
    values, or refers to itself (an alias inside its own anchor: an endless structure)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise ExpansionError(
                f"line {node.start_mark.line + 1}: an alias refers to the anchor it is inside "
                "(the structure would be endless)",
                node.start_mark.line + 1,
            )
        on_path.add(key)
        if len(on_path) > MAX_DEPTH:
            raise NestingError(node.start_mark.line + 1)
        total = 1
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        on_path.discard(key)
        sizes[key] = total
        return total

    if size(root) > limit:
        raise ExpansionError(
            f"the YAML expands to more than {limit:,} values through its anchors and aliases (&name / *name); "
            "nothing this large is a recipe or a setting",
            root.start_mark.line + 1,
        )


def _find_duplicates(node: yaml.Node, path: tuple[str, ...], seen_nodes: set[int]) -> list[tuple[int, str, str]]:
    """``(line, dotted location, message)`` for every key given twice in one mapping.

    Keys brought in by a ``<<: *anchor`` merge may be overridden; that is not a duplicate.
    """
    if id(node) in seen_nodes:  # anchors/aliases share nodes (and may even be recursive)
        return []
    seen_nodes.add(id(node))
    found: list[tuple[int, str, str]] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                found += _find_duplicates(value_node, path, seen_nodes) if key_node.tag == _MERGE_TAG else []
                continue
            ident = (key_node.tag, key_node.value)
            where = ".".join((*path, key_node.value))
            if ident in first:
                found.append(
                    (
                        key_node.start_mark.line,
                        where,
                        f"key {key_node.value!r} is given twice (lines {first[ident].start_mark.line + 1} and "
                        f"{key_node.start_mark.line + 1}); keep one",
                    )
                )
            else:
                first[ident] = key_node
            found += _find_duplicates(value_node, (*path, key_node.value), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _find_duplicates(item, (*path, str(i)), seen_nodes)
    return found


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raises ``yaml.YAMLError`` (``DuplicateKeyError`` for repeated keys,
    ``ExpansionError`` for a document that expands to a huge or endless structure, ``NestingError`` for one
    nested more than :data:`MAX_DEPTH` levels)."""
    loader = RecipeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # the parser recurses once per level: thousands of levels exhaust the stack
            raise NestingError() from None
        if node is None:
            return None
        _check_expanded_size(node)
        duplicates = sorted(_find_duplicates(node, (), set()))
        if duplicates:
            raise DuplicateKeyError([(where, msg) for _, where, msg in duplicates])
        return loader.construct_document(node)
    finally:
        loader.dispose()


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
