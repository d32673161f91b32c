"""The recipe JSON Schema (``minillm recipes schema``), for editors such as yaml-language-server.

It is the pydantic schema of :class:`minillm_distill.recipe.schema.Recipe` with the plugin sections filled in: the
``sampler`` and ``divergence`` sections are one of the registered plugins (``name`` chooses, the rest are that
plugin's ``Params``), and ``family`` is one of the registered model families.
"""

from __future__ import annotations

from typing import Any

from minillm_distill.errors import PluginError
from minillm_distill.plugins import PluginSet, get_plugins
from minillm_distill.recipe.schema import Recipe

SCHEMA_ID = "https://github.com/minillm/minillm/recipe.schema.json"


def _plugin_variants(kind: str, registry: Any, defs: dict[str, Any], skipped: list[str]) -> list[dict[str, Any]]:
    variants = []
    for entry in registry.entries():
        prefix = f"{kind}_{entry.name}_"
        try:
            cls = entry.cls  # a lazily registered class is imported here
            params = cls.Params.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
        except PluginError as err:  # one broken plugin leaves the others' schema whole
            skipped.append(f"{kind} {entry.name!r} left out: {err.message}")
            continue
        except Exception as exc:
            skipped.append(
                f"{kind} {entry.name!r} of plugin {entry.plugin!r} ({entry.distribution}) left out: its options "
                f"have no JSON schema ({type(exc).__name__}: {exc})"
            )
            continue
        for key, value in params.pop("$defs", {}).items():
            defs[prefix + key] = value
        properties = {"name": {"const": entry.name, "description": cls.description or entry.name}}
        properties.update(params.get("properties", {}))
        variants.append(
            {
                "type": "object",
                "title": f"{kind} {entry.name}",
                "description": cls.description or "",
                "properties": properties,
                "required": ["name", *params.get("required", [])],
                "additionalProperties": False,
            }
        )
    return variants


def recipe_json_schema(plugins: PluginSet | None = None, skipped: list[str] | None = None) -> dict[str, Any]:
    """The JSON Schema of a recipe file with the installed plugins' options. A plugin class that cannot be
    loaded is left out and said in ``skipped`` (when given), not an error for everyone."""
    plugins = plugins or get_plugins()
    skipped = [] if skipped is None else skipped
    schema = Recipe.model_json_schema()
    defs = schema.setdefault("$defs", {})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "minillm recipe"
    # the loader defaults `name` to the file's name
    schema["required"] = [r for r in schema.get("required", []) if r != "name"]
    for section, kind, registry in (
        ("sampler", "sampler", plugins.samplers),
        ("divergence", "divergence", plugins.divergences),
    ):
        variants = _plugin_variants(kind, registry, defs, skipped)
        prop = schema["properties"][section]
        default = prop.get("default")
        names = ", ".join(v["properties"]["name"]["const"] for v in variants)
        schema["properties"][section] = {
            "description": f"the {kind}: `name` is one of {names}; other keys: its options",
            "oneOf": variants,
            **({"default": default} if default is not None else {}),
        }
    families = plugins.model_families.names()
    family = defs["ModelSpec"]["properties"]["family"]
    family["anyOf"] = [{"enum": families}, {"type": "null"}]
    return schema
