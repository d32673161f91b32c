"""The public API for plugin authors: base classes, the helpers the built-in plugins use, the hook marker, and
the parts a plugin package with commands of its own runs (models, recipes, evaluation, staged jobs; the demo
package uses them). The test kit for a plugin's tests is :mod:`minillm_distill.testing`.

Built-in plugins import only from here, exactly like a third party. Names are imported on first use (PEP 562
module ``__getattr__``), so ``from minillm_distill.api import ModelFamily`` does not import torch; the
torch-based classes (divergences, samplers, decoding) import it when they are first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # what this API promises (docs/plugins/reference.md)
    "API_VERSION": "minillm_distill.api_version",
    # plugin base classes and their options
    "Registrable": "minillm_distill.registrable",
    "PluginParams": "minillm_distill.registrable",
    "hookimpl": "minillm_distill.hookspecs",
    # benchmarks
    "Benchmark": "minillm_distill.benchmark",
    "EvalExample": "minillm_distill.benchmark",
    "RawRecord": "minillm_distill.json_rows",
    "read_records": "minillm_distill.benchmark",
    "load_hub_rows": "minillm_distill.benchmark",
    "fetch_jsonl": "minillm_distill.benchmark",
    # model families
    "ModelFamily": "minillm_distill.model_family",
    "ScratchParams": "minillm_distill.model_family",
    "ALPACA_PROMPT": "minillm_distill.model_family",
    "ALPACA_PROMPT_WITH_INPUT": "minillm_distill.model_family",
    # divergences
    "Divergence": "minillm_distill.divergence",
    "TokenDivergence": "minillm_distill.divergence",
    "TokenDivergenceParams": "minillm_distill.divergence",
    "SequenceDivergence": "minillm_distill.divergence",
    "PhaseParams": "minillm_distill.divergence",
    "Reducer": "minillm_distill.divergence",
    "StepNorm": "minillm_distill.divergence",
    "DEFAULT_CHUNK_TOKENS": "minillm_distill.divergence",
    "cross_entropy_per_token": "minillm_distill.divergence",
    "token_divergence_loss": "minillm_distill.divergence",
    "token_divergence_sum": "minillm_distill.divergence",
    # scoring: hidden states and the output layer, logits one chunk of tokens at a time
    "ChunkFn": "minillm_distill.scoring.walk",
    "OutputHead": "minillm_distill.scoring.walk",
    "ResponseScores": "minillm_distill.scoring.walk",
    "TokenWalk": "minillm_distill.scoring.walk",
    "as_scores": "minillm_distill.scoring.walk",
    "walk_tokens": "minillm_distill.scoring.walk",
    # samplers and decoding
    "PromptBatch": "minillm_distill.rollout",
    "RolloutBatch": "minillm_distill.rollout",
    "Sampler": "minillm_distill.sampler",
    "SamplerContext": "minillm_distill.sampler",
    "generate_rollout": "minillm_distill.sampler",
    "derive_seed": "minillm_distill.seeds",
    # where a results page came from (its first line): the command, the machine, the date, the version
    "command_line": "minillm_distill.cli.state",
    "provenance_record": "minillm_distill.provenance",
    "provenance_header": "minillm_distill.provenance",
    "GenerationParams": "minillm_distill.generation",
    "Decoded": "minillm_distill.generation",
    "decode": "minillm_distill.generation",
    "choose_student": "minillm_distill.generation",
    "choose_teacher": "minillm_distill.generation",
    "mixture": "minillm_distill.generation",
    "ChooseFn": "minillm_distill.generation",
    "processed_probs": "minillm_distill.generation",
    "eos_token_ids": "minillm_distill.model_facts",
    "pad_token_id": "minillm_distill.model_facts",
    "shared_vocab_size": "minillm_distill.model_facts",
    "model_device": "minillm_distill.model_facts",
    # the checks of `minillm plugins check`, for a plugin's own tests
    "CheckResult": "minillm_distill.plugin_check",
    "check_divergence": "minillm_distill.plugin_check",
    "check_sampler": "minillm_distill.plugin_check",
    "tiny_models": "minillm_distill.plugin_check",
    # running minillm's parts from code (a plugin package with commands of its own, such as the demo)
    "use_huge_pages": "minillm_distill.host_memory",
    "load_yaml": "minillm_distill.recipe.yaml_io",
    "dump_yaml": "minillm_distill.recipe.yaml_io",
    "validate_recipe_dict": "minillm_distill.recipe.loader",
    "ModelSpec": "minillm_distill.recipe.schema",
    "load_model": "minillm_distill.models",
    "Job": "minillm_distill.jobs",
    "Runner": "minillm_distill.jobs",
    "distill_job": "minillm_distill.jobs",
    "EvalSettings": "minillm_distill.eval.runner",
    "generate_predictions": "minillm_distill.eval.runner",
    "encode_prompt": "minillm_distill.eval.prompts",
    "prompt_budget": "minillm_distill.eval.prompts",
    "left_pad": "minillm_distill.eval.prompts",
    "rouge_l": "minillm_distill.eval.metrics",
    "expected_calibration_error": "minillm_distill.eval.metrics",
    "measure_exposure_bias": "minillm_distill.eval.analysis",
    "token_calibration": "minillm_distill.eval.analysis",
    # errors a plugin raises (rendered as a panel with their exit code)
    "MinillmError": "minillm_distill.errors",
    "UsageError": "minillm_distill.errors",
    "RecipeError": "minillm_distill.errors",
    "PluginError": "minillm_distill.errors",
    "ResourceError": "minillm_distill.errors",
    "RuntimeFailure": "minillm_distill.errors",
}

__all__ = sorted(_EXPORTS)


#: old name -> new name, importable with a DeprecationWarning for one release (CHANGELOG lists them)
_RENAMED: dict[str, str] = {"Record": "RawRecord", "Component": "Registrable"}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        import warnings

        new = _RENAMED[name]
        warnings.warn(
            f"minillm_distill.api.{name} is renamed {new}; the old name goes in the next release",
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


if TYPE_CHECKING:  # what type checkers and editors see; tests/unit/test_api.py checks it matches _EXPORTS
    from minillm_distill.api_version import API_VERSION
    from minillm_distill.benchmark import Benchmark, EvalExample, fetch_jsonl, load_hub_rows, read_records
    from minillm_distill.cli.state import command_line
    from minillm_distill.divergence import (
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
    from minillm_distill.errors import MinillmError, PluginError, RecipeError, ResourceError, RuntimeFailure, UsageError
    from minillm_distill.eval.analysis import measure_exposure_bias, token_calibration
    from minillm_distill.eval.metrics import expected_calibration_error, rouge_l
    from minillm_distill.eval.prompts import encode_prompt, left_pad, prompt_budget
    from minillm_distill.eval.runner import EvalSettings, generate_predictions
    from minillm_distill.generation import (
        ChooseFn,
        Decoded,
        GenerationParams,
        choose_student,
        choose_teacher,
        decode,
        mixture,
        processed_probs,
    )
    from minillm_distill.hookspecs import hookimpl
    from minillm_distill.host_memory import use_huge_pages
    from minillm_distill.jobs import Job, Runner, distill_job
    from minillm_distill.json_rows import RawRecord
    from minillm_distill.model_facts import eos_token_ids, model_device, pad_token_id, shared_vocab_size
    from minillm_distill.model_family import ALPACA_PROMPT, ALPACA_PROMPT_WITH_INPUT, ModelFamily, ScratchParams
    from minillm_distill.models import load_model
    from minillm_distill.plugin_check import CheckResult, check_divergence, check_sampler, tiny_models
    from minillm_distill.provenance import provenance_header, provenance_record
    from minillm_distill.recipe.loader import validate_recipe_dict
    from minillm_distill.recipe.schema import ModelSpec
    from minillm_distill.recipe.yaml_io import dump_yaml, load_yaml
    from minillm_distill.registrable import PluginParams, Registrable
    from minillm_distill.rollout import PromptBatch, RolloutBatch
    from minillm_distill.sampler import Sampler, SamplerContext, generate_rollout
    from minillm_distill.scoring.walk import ChunkFn, OutputHead, ResponseScores, TokenWalk, as_scores, walk_tokens
    from minillm_distill.seeds import derive_seed
