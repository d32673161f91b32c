"""``minillm export``: a training checkpoint becomes a plain Hugging Face folder.

A checkpoint is ``RUN/checkpoints/step-N/`` as :mod:`minillm_distill.train.checkpoint` writes it: DeepSpeed's
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

The parts, one concern a file: :mod:`~minillm_distill.export.run` (the checkpoint folder and the run's recipe),
:mod:`~minillm_distill.export.weights` (reading the weights), :mod:`~minillm_distill.export.student` (the student
rebuilt on ``meta``, the weights assigned, LoRA merged), :mod:`~minillm_distill.export.card` (the model card),
:mod:`~minillm_distill.export.write` (the folder, whole or not at all) and :mod:`~minillm_distill.export.pipeline`
(:func:`export_checkpoint`, which runs them in order). Every name is importable from ``minillm_distill.export``
as before the split.
"""

from __future__ import annotations

from minillm_distill.export.card import RECIPE_COPY, describe_model, metrics_at, model_card, prompt_example
from minillm_distill.export.pipeline import ExportResult, export_checkpoint
from minillm_distill.export.run import ENGINE_TAG, STATE_FILE, Checkpoint, RunInfo, read_run, resolve_checkpoint
from minillm_distill.export.student import build_student, load_weights, merged_student
from minillm_distill.export.weights import DTYPES, FULL_MODEL_STATES, checkpoint_weights
from minillm_distill.export.write import check_output, write_export, write_folder

__all__ = [
    "DTYPES",
    "ENGINE_TAG",
    "FULL_MODEL_STATES",
    "RECIPE_COPY",
    "STATE_FILE",
    "Checkpoint",
    "ExportResult",
    "RunInfo",
    "build_student",
    "check_output",
    "checkpoint_weights",
    "describe_model",
    "export_checkpoint",
    "load_weights",
    "merged_student",
    "metrics_at",
    "model_card",
    "prompt_example",
    "read_run",
    "resolve_checkpoint",
    "write_export",
    "write_folder",
]
