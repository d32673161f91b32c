"""The student architecture rebuilt from the recipe with parameters on the ``meta`` device, the checkpoint's
weights assigned to it, and a LoRA run's adapters merged into a plain model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from minillm_distill.errors import MinillmError, RuntimeFailure
from minillm_distill.models import LoadedModel, load_model, load_tokenizer, spec_source
from minillm_distill.recipe.schema import ModelSpec


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

    from minillm_distill.models import detect_family, load_error, spec_source
    from minillm_distill.plugins import get_plugins

    source = spec_source(spec)
    plugins = get_plugins()
    if spec.family is not None:
        family = plugins.model_families.get(spec.family)()
    else:
        family = detect_family(
            source, revision=spec.revision, plugins=plugins, trust_remote_code=spec.trust_remote_code
        )
    tokenizer = load_tokenizer(spec, family)
    try:
        config = AutoConfig.from_pretrained(source, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise load_error("model config", source, exc) from exc
    with _parameters_on_meta():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=spec.trust_remote_code)
    with contextlib.suppress(OSError, ValueError):
        model.generation_config = GenerationConfig.from_pretrained(source, revision=spec.revision)
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


def merged_student(
    spec: ModelSpec, weights: dict[str, torch.Tensor], dtype: torch.dtype, *, trust_asked: bool = False
) -> LoadedModel:
    """The student of ``spec`` with ``weights`` (LoRA adapters rebuilt, loaded and merged into a plain model),
    cast to ``dtype``, in eval mode. ``weights`` is consumed (emptied) once loaded. ``trust_asked``: the run's
    recipe wanted ``trust_remote_code`` and did not get it; a failure to build the student then says how to
    give it."""
    try:
        loaded = build_student(spec)
    except MinillmError as err:
        if trust_asked and not spec.trust_remote_code:
            err.hint = (
                f"the run's recipe.yaml sets trust_remote_code, which export never takes from a run folder; if you "
                f"trust the code in {spec_source(spec)!r}, run the export again with --trust-remote-code"
            )
        raise
    model = loaded.model
    if spec.lora is not None:  # a LoRA run: rebuild the adapters, load, merge into a plain model
        from minillm_distill.lora import apply_lora

        model = apply_lora(model, spec.lora)
    load_weights(model, weights)
    weights.clear()
    if spec.lora is not None:
        model = model.merge_and_unload()
    model = model.to(dtype)
    model.eval()
    return LoadedModel(model=model, tokenizer=loaded.tokenizer, family=loaded.family)
