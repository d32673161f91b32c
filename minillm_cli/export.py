"""``minillm export``: a training checkpoint becomes a plain Hugging Face folder.

A checkpoint is ``RUN/checkpoints/step-N/`` as :mod:`minillm_cli.train.checkpoint` writes it: DeepSpeed's
``engine.save_checkpoint(step-N, tag="engine")`` output plus ``state.json``. Weights come from

* ZeRO 0, 1 and 2: ``engine/mp_rank_00_model_states.pt``, which holds the full module ``state_dict`` exactly
  as the model had it at that step (in its training dtype);
* ZeRO-3 (any number of ranks): DeepSpeed's own consolidation of the per-rank fp32 partitions
  (``deepspeed.utils.zero_to_fp32``; no process group needed). In a bf16/fp16 run these are the fp32 master
  weights, from which the 16-bit training weights are a plain cast.

The student architecture and tokenizer are rebuilt from the run's resolved ``recipe.yaml`` (a ``scratch``
spec or a ``path``), with parameters on the ``meta`` device so no memory is spent on a random init, then
the weights are assigned and cast to the export dtype (default: the run's ``engine.dtype``, which
reproduces the model of that step bit for bit).

The folder (``model.safetensors``, ``config.json``, ``generation_config.json``, tokenizer files, a README
model card and the run's ``recipe.yaml`` as ``minillm_recipe.yaml``) is written to a hidden temporary sibling
of OUT and renamed into place only once complete, so a failure never leaves a half-written OUT.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import ValidationError

from minillm_cli.errors import RecipeError, ResourceError, RuntimeFailure, UsageError
from minillm_cli.io_errors import resource_error
from minillm_cli.models import LoadedModel, load_model, load_tokenizer
from minillm_cli.recipe.schema import EngineSpec, ModelSpec
from minillm_cli.recipe.yaml_io import load_yaml
from minillm_cli.safe_load import UnsafeCheckpointError, safe_torch_load

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ENGINE_TAG = "engine"  # the tag minillm_cli.train.checkpoint saves the DeepSpeed engine under
STATE_FILE = "state.json"
FULL_MODEL_STATES = "mp_rank_00_model_states.pt"
RECIPE_COPY = "minillm_recipe.yaml"


@dataclass(frozen=True)
class Checkpoint:
    """A resolved ``step-N`` folder and the run it belongs to."""

    path: Path
    run_dir: Path
    step: int
    state: dict[str, Any]


@dataclass(frozen=True)
class RunInfo:
    """What the run's resolved ``recipe.yaml`` says about the models."""

    recipe: dict[str, Any]
    recipe_text: str
    student: ModelSpec
    teacher: ModelSpec | None
    engine: EngineSpec
    name: str


@dataclass(frozen=True)
class ExportResult:
    out: Path
    checkpoint: Checkpoint
    dtype: str
    zero_stage: int
    source: str
    """``"module"`` (full weights from the model states) or ``"zero_to_fp32"`` (consolidated partitions)."""


# -- finding the checkpoint and its run ------------------------------------------------------------------


def resolve_checkpoint(path: str | Path) -> Checkpoint:
    """``path`` is a ``step-N`` folder, its ``engine`` subfolder, or a run directory (its latest checkpoint)."""
    from minillm_cli.train.checkpoint import latest_checkpoint

    given = Path(path).expanduser()
    if not given.exists():
        raise ResourceError(f"checkpoint {str(given)!r} does not exist", hint="give RUN/checkpoints/step-N or RUN")
    if not given.is_dir():
        raise ResourceError(f"checkpoint {str(given)!r} is not a directory", hint="give RUN/checkpoints/step-N")
    ck = given
    if ck.name == ENGINE_TAG and (ck.parent / STATE_FILE).exists():
        ck = ck.parent
    if ck.name == "checkpoints" and not (ck / STATE_FILE).exists():
        ck = ck.parent  # RUN/checkpoints: the run's latest
    if not (ck / STATE_FILE).exists():
        if (ck / "checkpoints").is_dir() or (ck / "recipe.yaml").exists():
            latest = latest_checkpoint(ck)
            if latest is None:
                raise ResourceError(
                    f"run {str(ck)!r} has no complete checkpoint in {str(ck / 'checkpoints')!r}",
                    hint="train with train.save_every below total_steps, or export the run's final/ folder as is",
                )
            ck = latest
        elif ck.name.startswith(".tmp-step-"):
            raise ResourceError(
                f"{str(ck)!r} is an incomplete checkpoint (the run stopped while writing it)",
                hint="export a complete step-N folder (it has state.json)",
            )
        else:
            raise ResourceError(
                f"{str(ck)!r} is neither a checkpoint (no {STATE_FILE}) nor a run directory (no checkpoints/)",
                hint="give RUN/checkpoints/step-N, or the run directory to export its latest checkpoint",
            )
    if not (ck / ENGINE_TAG).is_dir():
        raise ResourceError(
            f"checkpoint {str(ck)!r} has no {ENGINE_TAG}/ folder of DeepSpeed weights",
            hint="was it written by `minillm distill`?",
        )
    try:
        state = json.loads((ck / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResourceError(f"cannot read {str(ck / STATE_FILE)!r}", why=str(exc)) from exc
    if not isinstance(state, dict):
        raise ResourceError(f"{str(ck / STATE_FILE)!r} is not a JSON object", hint="is it a minillm checkpoint?")
    step = state.get("step")
    if not isinstance(step, int):
        try:
            step = int(ck.name.split("-", 1)[1])
        except (IndexError, ValueError):
            step = -1
    run_dir = ck.parent.parent if ck.parent.name == "checkpoints" else ck.parent
    return Checkpoint(path=ck, run_dir=run_dir, step=step, state=state)


def read_run(recipe_path: Path) -> RunInfo:
    """The student/teacher specs and engine settings from a run's resolved ``recipe.yaml``."""
    if not recipe_path.exists():
        raise ResourceError(
            f"no recipe.yaml at {str(recipe_path)!r}",
            why="export rebuilds the student architecture and tokenizer from the run's resolved recipe",
            hint="keep the checkpoint inside its run directory (RUN/checkpoints/step-N), or pass --recipe",
        )
    text = recipe_path.read_text(encoding="utf-8")
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"cannot parse {str(recipe_path)!r}", why=str(exc).splitlines()[0]) from exc
    if not isinstance(data, dict) or not isinstance(data.get("student"), dict):
        raise RecipeError(f"{str(recipe_path)!r} has no `student` section", hint="is it a minillm recipe?")
    problems: list[str] = []

    def section(key: str, model: Any) -> Any:
        raw = data.get(key)
        if raw is None:
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            problems.extend(f"{'.'.join([key, *map(str, e['loc'])])}: {e['msg']}" for e in exc.errors())
            return None

    student = section("student", ModelSpec)
    teacher = section("teacher", ModelSpec)
    engine = section("engine", EngineSpec) or EngineSpec()
    if problems or student is None:
        raise RecipeError(f"invalid recipe {str(recipe_path)!r}", details=problems)
    return RunInfo(
        recipe=data,
        recipe_text=text,
        student=student,
        teacher=teacher,
        engine=engine,
        name=str(data.get("name") or recipe_path.parent.name),
    )


# -- weights ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """DeepSpeed's consolidation prints progress to stdout and stderr; keep the CLI output clean."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield sink


def checkpoint_weights(ck: Checkpoint, dtype: torch.dtype) -> tuple[dict[str, torch.Tensor], str]:
    """The full ``state_dict`` of the student at that step, cast to ``dtype``; and where it came from."""
    engine_dir = ck.path / ENGINE_TAG
    full = engine_dir / FULL_MODEL_STATES
    if full.exists():
        try:
            with safe_torch_load():
                try:
                    states = torch.load(full, map_location="cpu", mmap=True)
                except RuntimeError:  # a file in the legacy (non-zip) format cannot be memory-mapped
                    states = torch.load(full, map_location="cpu")
        except UnsafeCheckpointError:
            raise
        except Exception as exc:  # torch.load raises many types for a damaged file
            raise ResourceError(f"cannot read {str(full)!r}", why=f"{type(exc).__name__}: {exc}") from exc
        module = states.get("module") if isinstance(states, dict) else None
        if not isinstance(module, dict) or not module:
            raise ResourceError(f"{str(full)!r} holds no module weights", hint="was it written by `minillm distill`?")
        return {k: _cast(v, dtype) for k, v in module.items()}, "module"
    if not any(engine_dir.glob("*_optim_states.pt")):
        raise ResourceError(
            f"no DeepSpeed weights in {str(engine_dir)!r}",
            why=f"expected {FULL_MODEL_STATES} (ZeRO 0-2) or *_model_states.pt + *_optim_states.pt files (ZeRO-3)",
        )
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    try:
        with _quiet(), safe_torch_load():
            lazy = get_fp32_state_dict_from_zero_checkpoint(str(ck.path), tag=ENGINE_TAG, lazy_mode=True)
            # one tensor at a time (the lazy tensors gather their partitions on .contiguous()); aliases of a
            # shared parameter stay one tensor
            out: dict[str, torch.Tensor] = {}
            seen: dict[int, str] = {}
            for name, lazy_tensor in lazy.items():
                if id(lazy_tensor) in seen:
                    out[name] = out[seen[id(lazy_tensor)]]
                    continue
                seen[id(lazy_tensor)] = name
                out[name] = _cast(lazy_tensor.contiguous(), dtype)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
        raise ResourceError(
            f"cannot consolidate the ZeRO partitions in {str(engine_dir)!r}",
            why=f"{type(exc).__name__}: {exc}",
            hint="every rank's *_model_states.pt and *_optim_states.pt file must be present",
        ) from exc
    return out, "zero_to_fp32"


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.dtype != dtype:
        return tensor.to(dtype)
    return tensor.clone() if not tensor.is_contiguous() else tensor


# -- the student architecture ----------------------------------------------------------------------------


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Create module parameters on the ``meta`` device (no memory, no init cost); buffers stay real, so
    non-persistent ones (rotary frequencies, ...) are computed as usual."""
    original = torch.nn.Module.register_parameter

    def register(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            kind = type(param)
            extra = dict(param.__dict__)
            extra["requires_grad"] = param.requires_grad
            module._parameters[name] = kind(param.to("meta"), **extra)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


def build_student(spec: ModelSpec) -> LoadedModel:
    """The student's architecture (parameters on ``meta``), tokenizer and family, as ``load_model`` builds
    them for training."""
    if spec.scratch is not None:
        with _parameters_on_meta():
            return load_model(spec)
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from minillm_cli.models import _load_error, detect_family
    from minillm_cli.plugins import get_plugins

    assert spec.path is not None
    plugins = get_plugins()
    if spec.family is not None:
        family = plugins.model_families.get(spec.family)()
    else:
        family = detect_family(
            spec.path, revision=spec.revision, plugins=plugins, trust_remote_code=spec.trust_remote_code
        )
    tokenizer = load_tokenizer(spec, family)
    try:
        config = AutoConfig.from_pretrained(spec.path, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _load_error("model config", spec.path, exc) from exc
    with _parameters_on_meta():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=spec.trust_remote_code)
    with contextlib.suppress(OSError, ValueError):
        model.generation_config = GenerationConfig.from_pretrained(spec.path, revision=spec.revision)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, family=family)


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Assign ``weights`` to the (meta) model; every parameter must be covered."""
    hint = "was recipe.yaml (or --recipe) changed after the run? export with the recipe the run used"
    try:
        result = model.load_state_dict(weights, strict=False, assign=True)
    except RuntimeError as exc:  # shape mismatches
        mismatches = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise RuntimeFailure(
            "the checkpoint's weights do not fit the student the recipe describes",
            details=mismatches[:3] + ([f"... and {len(mismatches) - 3} more"] if len(mismatches) > 3 else []),
            hint=hint,
        ) from exc
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    unexpected = list(result.unexpected_keys)
    if any("lora_" in k for k in unexpected):
        raise RuntimeFailure(
            "this checkpoint holds LoRA adapter weights but the recipe has no `student.lora` section",
            details=[f"e.g. {next(k for k in unexpected if 'lora_' in k)}"],
            hint="export with the recipe the run used (--recipe RUN/recipe.yaml), which names the adapters",
        )
    missing = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if missing or unexpected:
        details = []
        if missing:
            details.append(f"{len(missing)} parameter(s) of the student have no weights, e.g. {missing[0]}")
        if unexpected:
            details.append(f"{len(unexpected)} checkpoint tensor(s) match no parameter, e.g. {unexpected[0]}")
        raise RuntimeFailure(
            "the checkpoint's weights do not fit the student the recipe describes",
            details=details,
            hint=hint,
        )


# -- the model card --------------------------------------------------------------------------------------


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
    path = run_dir / "metrics.jsonl"
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


# -- writing ---------------------------------------------------------------------------------------------


def check_output(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {str(out)!r} exists and is not a directory", hint="choose another OUT")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(
            f"output folder {str(out)!r} is not empty",
            hint="choose another OUT, or add --force to replace it",
        )


def write_folder(out: Path, fill: Any) -> Path:
    """Run ``fill(tmp)`` on a temporary sibling of ``out``, then move it into place (replacing ``out``).
    On any failure the temporary folder is removed and ``out`` is left as it was."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        fill(tmp)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    dtype: str | None = None,
    force: bool = False,
    recipe: str | Path | None = None,
) -> ExportResult:
    """Export ``checkpoint`` (a ``step-N`` folder or a run directory) to the Hugging Face folder ``out``."""
    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}", hint=f"choose one of {', '.join(DTYPES)}")
    out = Path(out).expanduser()
    check_output(out, force=force)
    ck = resolve_checkpoint(checkpoint)
    if out.absolute() == ck.path.absolute() or ck.path.absolute() in out.absolute().parents:
        raise UsageError(f"output {str(out)!r} is inside the checkpoint", hint="choose an OUT outside it")
    run = read_run(Path(recipe).expanduser() if recipe is not None else ck.run_dir / "recipe.yaml")
    dtype_name = dtype or run.engine.dtype
    torch_dtype = DTYPES[dtype_name]

    weights, source = checkpoint_weights(ck, torch_dtype)
    loaded = build_student(run.student)
    model = loaded.model
    if run.student.lora is not None:  # a LoRA run: rebuild the adapters, load, merge into a plain model
        from minillm_cli.lora import apply_lora

        model = apply_lora(model, run.student.lora)
    load_weights(model, weights)
    del weights
    if run.student.lora is not None:
        model = model.merge_and_unload()
    model = model.to(torch_dtype)
    model.eval()
    total = run.recipe.get("train", {}).get("total_steps") if isinstance(run.recipe.get("train"), dict) else None
    try:
        from minillm_cli.data.prompt_format import PromptFormatter

        data_spec = run.recipe.get("data")
        setting = data_spec.get("prompt_format", "family") if isinstance(data_spec, dict) else "family"
        example: str | None = PromptFormatter(setting, loaded.family, loaded.tokenizer).format_prompt("{instruction}")
    except Exception:  # a third-party family's template is only decoration here
        example = None
    card = model_card(
        run,
        step=ck.step,
        total_steps=total if isinstance(total, int) else None,
        dtype=dtype_name,
        metrics=metrics_at(ck.run_dir, ck.step),
        prompt_example=example,
    )

    def fill(tmp: Path) -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        (tmp / RECIPE_COPY).write_text(run.recipe_text, encoding="utf-8")
        data_section = run.recipe.get("data")
        if isinstance(data_section, dict) and isinstance(data_section.get("prompt_format"), str):
            from minillm_cli.data.prompt_format import write_prompt_format

            write_prompt_format(tmp, data_section["prompt_format"])

    try:
        write_folder(out, fill)
    except Exception as exc:
        hint = "free space on that disk or choose another OUT; nothing was written"
        err = resource_error(exc, out, "export", hint=hint)
        if err is not None:
            raise err from exc
        if not isinstance(exc, OSError):
            raise
        raise ResourceError(
            f"cannot write the export to {str(out)!r}; nothing was written",
            why=f"{type(exc).__name__}: {exc}",
            hint="check the free disk space and that OUT's parent folder is writable",
        ) from exc
    return ExportResult(out=out, checkpoint=ck, dtype=dtype_name, zero_stage=run.engine.zero_stage, source=source)
