"""The public API for plugin authors: base classes, the helpers the built-in plugins use, the hook marker, and
the parts a plugin package with commands of its own runs (models, recipes, evaluation, staged jobs; the demo
package uses them). The test kit for a plugin's tests is :mod:`minillm_cli.testing`.

Built-in plugins import only from here, exactly like a third party. Names are imported on first use (PEP 562
module ``__getattr__``), so ``from minillm_cli.api import ModelFamily`` does not import torch; the
torch-based classes (divergences, samplers, decoding) import it when they are first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # plugin base classes and their options
    "Component": "minillm_cli.components",
    "PluginParams": "minillm_cli.components",
    "hookimpl": "minillm_cli.hookspecs",
    # benchmarks
    "Benchmark": "minillm_cli.benchmark",
    "EvalExample": "minillm_cli.benchmark",
    "RawRecord": "minillm_cli.json_rows",
    "read_records": "minillm_cli.benchmark",
    "load_hub_rows": "minillm_cli.benchmark",
    "fetch_jsonl": "minillm_cli.benchmark",
    # model families
    "ModelFamily": "minillm_cli.model_family",
    "ScratchParams": "minillm_cli.model_family",
    "ALPACA_PROMPT": "minillm_cli.model_family",
    "ALPACA_PROMPT_WITH_INPUT": "minillm_cli.model_family",
    # divergences
    "Divergence": "minillm_cli.divergence",
    "TokenDivergence": "minillm_cli.divergence",
    "TokenDivergenceParams": "minillm_cli.divergence",
    "SequenceDivergence": "minillm_cli.divergence",
    "PhaseParams": "minillm_cli.divergence",
    "Reducer": "minillm_cli.divergence",
    "StepNorm": "minillm_cli.divergence",
    "DEFAULT_CHUNK_TOKENS": "minillm_cli.divergence",
    "cross_entropy_per_token": "minillm_cli.divergence",
    "token_divergence_loss": "minillm_cli.divergence",
    "token_divergence_sum": "minillm_cli.divergence",
    # scoring: hidden states and the output layer, logits one chunk of tokens at a time
    "ChunkFn": "minillm_cli.scoring.walk",
    "OutputHead": "minillm_cli.scoring.walk",
    "ResponseScores": "minillm_cli.scoring.walk",
    "TokenWalk": "minillm_cli.scoring.walk",
    "as_scores": "minillm_cli.scoring.walk",
    "walk_tokens": "minillm_cli.scoring.walk",
    # samplers and decoding
    "PromptBatch": "minillm_cli.rollout",
    "RolloutBatch": "minillm_cli.rollout",
    "Sampler": "minillm_cli.sampler",
    "SamplerContext": "minillm_cli.sampler",
    "generate_rollout": "minillm_cli.sampler",
    "derive_seed": "minillm_cli.seeds",
    "GenerationParams": "minillm_cli.generation",
    "Decoded": "minillm_cli.generation",
    "decode": "minillm_cli.generation",
    "choose_student": "minillm_cli.generation",
    "choose_teacher": "minillm_cli.generation",
    "mixture": "minillm_cli.generation",
    "ChooseFn": "minillm_cli.generation",
    "processed_probs": "minillm_cli.generation",
    "eos_token_ids": "minillm_cli.generation",
    "pad_token_id": "minillm_cli.generation",
    "shared_vocab_size": "minillm_cli.generation",
    "model_device": "minillm_cli.generation",
    # the checks of `minillm plugins check`, for a plugin's own tests
    "CheckResult": "minillm_cli.plugin_check",
    "check_divergence": "minillm_cli.plugin_check",
    "check_sampler": "minillm_cli.plugin_check",
    "tiny_models": "minillm_cli.plugin_check",
    # running minillm's parts from code (a plugin package with commands of its own, such as the demo)
    "use_huge_pages": "minillm_cli.host_memory",
    "load_yaml": "minillm_cli.recipe.yaml_io",
    "dump_yaml": "minillm_cli.recipe.yaml_io",
    "validate_recipe_dict": "minillm_cli.recipe.loader",
    "ModelSpec": "minillm_cli.recipe.schema",
    "load_model": "minillm_cli.models",
    "Job": "minillm_cli.jobs",
    "Runner": "minillm_cli.jobs",
    "distill_job": "minillm_cli.jobs",
    "EvalSettings": "minillm_cli.eval.runner",
    "generate_predictions": "minillm_cli.eval.runner",
    "encode_prompt": "minillm_cli.eval.prompts",
    "prompt_budget": "minillm_cli.eval.prompts",
    "left_pad": "minillm_cli.eval.prompts",
    "rouge_l": "minillm_cli.eval.metrics",
    "expected_calibration_error": "minillm_cli.eval.metrics",
    "measure_exposure_bias": "minillm_cli.eval.analysis",
    "token_calibration": "minillm_cli.eval.analysis",
    # errors a plugin raises (rendered as a panel with their exit code)
    "MinillmError": "minillm_cli.errors",
    "UsageError": "minillm_cli.errors",
    "RecipeError": "minillm_cli.errors",
    "PluginError": "minillm_cli.errors",
    "ResourceError": "minillm_cli.errors",
    "RuntimeFailure": "minillm_cli.errors",
}

__all__ = sorted(_EXPORTS)


#: old name -> new name, importable with a DeprecationWarning for one release (CHANGELOG lists them)
_RENAMED: dict[str, str] = {"Record": "RawRecord"}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        import warnings

        new = _RENAMED[name]
        warnings.warn(
            f"minillm_cli.api.{name} is renamed {new}; the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return __getattr__(new)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and editors see; tests/test_api.py checks it matches _EXPORTS
    from minillm_cli.benchmark import Benchmark, EvalExample, fetch_jsonl, load_hub_rows, read_records
    from minillm_cli.components import Component, PluginParams
    from minillm_cli.divergence import (
        DEFAULT_CHUNK_TOKENS,
        Divergence,
        PhaseParams,
        Reducer,
        SequenceDivergence,
        StepNorm,
        TokenDivergence,
        TokenDivergenceParams,
        cross_entropy_per_token,
        token_divergence_loss,
        token_divergence_sum,
    )
    from minillm_cli.errors import MinillmError, PluginError, RecipeError, ResourceError, RuntimeFailure, UsageError
    from minillm_cli.eval.analysis import measure_exposure_bias, token_calibration
    from minillm_cli.eval.metrics import expected_calibration_error, rouge_l
    from minillm_cli.eval.prompts import encode_prompt, left_pad, prompt_budget
    from minillm_cli.eval.runner import EvalSettings, generate_predictions
    from minillm_cli.generation import (
        ChooseFn,
        Decoded,
        GenerationParams,
        choose_student,
        choose_teacher,
        decode,
        eos_token_ids,
        mixture,
        model_device,
        pad_token_id,
        processed_probs,
        shared_vocab_size,
    )
    from minillm_cli.hookspecs import hookimpl
    from minillm_cli.host_memory import use_huge_pages
    from minillm_cli.jobs import Job, Runner, distill_job
    from minillm_cli.json_rows import RawRecord
    from minillm_cli.model_family import ALPACA_PROMPT, ALPACA_PROMPT_WITH_INPUT, ModelFamily, ScratchParams
    from minillm_cli.models import load_model
    from minillm_cli.plugin_check import CheckResult, check_divergence, check_sampler, tiny_models
    from minillm_cli.recipe.loader import validate_recipe_dict
    from minillm_cli.recipe.schema import ModelSpec
    from minillm_cli.recipe.yaml_io import dump_yaml, load_yaml
    from minillm_cli.rollout import PromptBatch, RolloutBatch
    from minillm_cli.sampler import Sampler, SamplerContext, generate_rollout
    from minillm_cli.scoring.walk import ChunkFn, OutputHead, ResponseScores, TokenWalk, as_scores, walk_tokens
    from minillm_cli.seeds import derive_seed
