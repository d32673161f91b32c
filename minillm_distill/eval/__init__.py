"""``minillm eval``: generate on a benchmark as the MiniLLM paper does, score, and report.

* :mod:`.metrics` - Rouge-L, exact match, ECE, ExAccErr (pure functions over strings and numbers);
* :mod:`.runner` - batched sampling of every prompt for every seed, and scoring;
* :mod:`.analysis` - measurements that need model forward passes: exposure bias against a teacher, and
  label-word calibration for classification examples;
* :mod:`.report` - ``predictions.jsonl``, ``scores.json`` and the Rich table.
"""

from minillm_distill.eval.runner import EvalSettings, ModelScores, evaluate_model

__all__ = ["EvalSettings", "ModelScores", "evaluate_model"]
