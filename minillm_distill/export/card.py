"""The exported folder's README: a model card with the distillation provenance (recipe, method, models, step,
final metrics, usage, prompt template)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from minillm_distill import run_layout
from minillm_distill.export.run import RunInfo
from minillm_distill.recipe.schema import ModelSpec

RECIPE_COPY = "minillm_recipe.yaml"


def describe_model(spec: ModelSpec | None) -> str:
    if spec is None:
        return "none"
    if spec.scratch is not None:
        sizes = ", ".join(f"{k}={v}" for k, v in spec.scratch.items())
        text = f"`{spec.family}` built from scratch ({sizes})"
    else:
        text = f"`{spec.path}`" + (f" (revision `{spec.revision}`)" if spec.revision else "")
    if spec.tokenizer and spec.tokenizer != spec.path:
        text += f", tokenizer `{spec.tokenizer}`"
    return text


def metrics_at(run_dir: Path, step: int) -> dict[str, Any] | None:
    """The ``metrics.jsonl`` row of ``step`` (else the last one before it); ``None`` if there is none."""
    path = run_layout.inside(run_dir, run_dir / run_layout.METRICS, "metrics.jsonl")
    if not path.exists():
        return None
    best: dict[str, Any] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            continue
        if row["step"] <= step and (best is None or row["step"] >= best["step"]):
            best = row
    return best


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def _plugin_name(section: Any) -> str:
    return str(section.get("name")) if isinstance(section, dict) and section.get("name") else "?"


def model_card(
    run: RunInfo,
    *,
    step: int,
    total_steps: int | None,
    dtype: str,
    metrics: dict[str, Any] | None,
    prompt_example: str | None = None,
) -> str:
    """A README.md model card with the distillation provenance."""
    sampler = _plugin_name(run.recipe.get("sampler"))
    divergence = _plugin_name(run.recipe.get("divergence"))
    of_total = f" of {total_steps}" if total_steps else ""
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags:",
        "- minillm",
        "- knowledge-distillation",
        f"- {divergence}",
        "---",
        "",
        f"# {run.name} (step {step})",
        "",
        f"A student language model distilled with `minillm` ({sampler} sampler x {divergence} divergence), "
        f"exported from the training checkpoint of step {step}{of_total}.",
        "",
        "| | |",
        "|---|---|",
        f"| Recipe | `{run.name}` |",
        f"| Method | `{sampler}` sampler x `{divergence}` divergence |",
        f"| Teacher | {describe_model(run.teacher)} |",
        f"| Student | {describe_model(run.student)} |",
        f"| Step | {step}{of_total} |",
        f"| Training | ZeRO stage {run.engine.zero_stage}, {run.engine.dtype} |",
        f"| Weights | {dtype} |",
        "",
        f"## Final metrics (step {metrics['step'] if metrics else step})",
        "",
    ]
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if k != "step"]
    else:
        lines.append("No metrics were recorded for this step.")
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        "```",
        "",
        'or `minillm generate --model path/to/this/folder -p "..."`, which applies the prompt template the '
        "student was trained with.",
    ]
    if prompt_example:
        lines += ["", "Prompt template:", "", "```text", prompt_example.rstrip("\n"), "```"]
    lines += ["", "## Recipe", "", f"The resolved recipe of the run (also in `{RECIPE_COPY}`):", "", "```yaml"]
    lines += [run.recipe_text.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def prompt_example(run: RunInfo, family: Any, tokenizer: Any) -> str | None:
    """The run's prompt template with ``{instruction}`` in place of the instruction, or ``None`` when the
    family's formatter cannot show it (a third-party family's template is only decoration in the card)."""
    try:
        from minillm_distill.data.prompt_format import PromptFormatter

        data_spec = run.recipe.get("data")
        setting = data_spec.get("prompt_format", "family") if isinstance(data_spec, dict) else "family"
        return PromptFormatter(setting, family, tokenizer).format_prompt("{instruction}")
    except Exception:
        return None
