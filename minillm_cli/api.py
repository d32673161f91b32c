"""The public API for plugin authors: base classes and the hook marker."""

from minillm_cli.benchmark import Benchmark, EvalExample
from minillm_cli.components import Component, PluginParams
from minillm_cli.divergence import (
    Divergence,
    Reducer,
    SequenceDivergence,
    StepNorm,
    TokenDivergence,
    TokenDivergenceParams,
    token_divergence_loss,
    token_divergence_sum,
)
from minillm_cli.hookspecs import hookimpl
from minillm_cli.model_family import ModelFamily, ScratchParams
from minillm_cli.sampler import PromptBatch, RolloutBatch, Sampler, SamplerContext
from minillm_cli.scores import ChunkFn, OutputHead, ResponseScores, TokenWalk, as_scores, walk_tokens

__all__ = [
    "Benchmark",
    "ChunkFn",
    "Component",
    "Divergence",
    "EvalExample",
    "ModelFamily",
    "OutputHead",
    "PluginParams",
    "PromptBatch",
    "RolloutBatch",
    "Sampler",
    "SamplerContext",
    "ScratchParams",
    "Reducer",
    "ResponseScores",
    "SequenceDivergence",
    "StepNorm",
    "TokenDivergence",
    "TokenDivergenceParams",
    "TokenWalk",
    "as_scores",
    "hookimpl",
    "token_divergence_loss",
    "token_divergence_sum",
    "walk_tokens",
]
