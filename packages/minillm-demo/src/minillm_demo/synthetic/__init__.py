"""A synthetic instruction task with a known answer distribution (the offline demo's benchmark).

``task`` builds a seeded world and samples prompt/response pairs, ``checker`` decides validity exactly,
``metrics`` measures validity, coverage and true probabilities and writes Dolly-format data, ``tokenizer``
is the task's word-level tokenizer.

As a plugin (entry point ``synthetic``) it registers the ``synthetic`` model family (GPT-2, bare instruction as
the prompt: ``family``) and the ``synthetic`` benchmark (held-out prompts scored against the true distribution:
``benchmark``), which ``minillm demo`` uses.
"""

from minillm_demo.synthetic.benchmark import SyntheticBenchmark, load_world, save_world
from minillm_demo.synthetic.checker import Checker, Verdict, check, is_valid, mode_of
from minillm_demo.synthetic.family import SyntheticFamily
from minillm_demo.synthetic.metrics import (
    Coverage,
    coverage,
    evaluate,
    reference_metrics,
    true_log_probability,
    true_probability,
    validity_rate,
    write_dolly_jsonl,
    write_splits,
)
from minillm_demo.synthetic.task import EOS, PAD, UNK, Prompt, Response, Sample, TaskConfig, World, make_world
from minillm_demo.synthetic.tokenizer import build_tokenizer, save_tokenizer
from minillm_distill.api import hookimpl

__all__ = [
    "EOS",
    "PAD",
    "UNK",
    "Checker",
    "Coverage",
    "Prompt",
    "Response",
    "Sample",
    "SyntheticBenchmark",
    "SyntheticFamily",
    "TaskConfig",
    "Verdict",
    "World",
    "build_tokenizer",
    "check",
    "coverage",
    "evaluate",
    "is_valid",
    "load_world",
    "make_world",
    "mode_of",
    "reference_metrics",
    "register_benchmarks",
    "register_model_families",
    "save_tokenizer",
    "save_world",
    "true_log_probability",
    "true_probability",
    "validity_rate",
    "write_dolly_jsonl",
    "write_splits",
]


@hookimpl
def register_model_families(register) -> None:
    register(SyntheticFamily)


@hookimpl
def register_benchmarks(register) -> None:
    register(SyntheticBenchmark)
