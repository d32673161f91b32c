"""The recipe JSON Schema (``minillm recipes schema``), for editors such as yaml-language-server.

It is the pydantic schema of :class:`minillm_distill.recipe.schema.Recipe` with the plugin sections filled in: the
``sampler`` and ``divergence`` sections are one of the registered plugins (``name`` chooses, the rest are that
plugin's ``Params``), and ``family`` is one of the registered model families.
"""

from __future__ import annotations

from typing import Any

from minillm_distill.plugins import PluginSet, get_plugins
from minillm_distill.recipe.schema import Recipe

SCHEMA_ID = "https://github.com/minillm/minillm/recipe.schema.json"


def _plugin_variants(kind: str, registry: Any, defs: dict[str, Any]) -> list[dict[str, Any]]:
    variants = []
    for entry in registry.entries():
        prefix = f"{kind}_{entry.name}_"
        params = entry.cls.Params.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
        for key, value in params.pop("$defs", {}).items():
            defs[prefix + key] = value
        properties = {"name": {"const": entry.name, "description": entry.cls.description or entry.name}}
        properties.update(params.get("properties", {}))
        variants.append(
            {
                "type": "object",
                "title": f"{kind} {entry.name}",
                "description": entry.cls.description or "",
                "properties": properties,
                "required": ["name", *params.get("required", [])],
                "additionalProperties": False,
            }
        )
    return variants


def recipe_json_schema(plugins: PluginSet | None = None) -> dict[str, Any]:
    """The JSON Schema of a recipe file with the installed plugins' options."""
    plugins = plugins or get_plugins()
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
        variants = _plugin_variants(kind, registry, defs)
        prop = schema["properties"][section]
        default = prop.get("default")
        schema["properties"][section] = {
            "description": f"the {kind}: `name` is one of {', '.join(registry.names())}; other keys: its options",
            "oneOf": variants,
            **({"default": default} if default is not None else {}),
        }
    families = plugins.model_families.names()
    family = defs["ModelSpec"]["properties"]["family"]
    family["anyOf"] = [{"enum": families}, {"type": "null"}]
    return schema
