"""Evaluation during training (``eval.every``): the student generates on each configured benchmark the way
``minillm eval`` does, on rank 0; scores go to ``DIR/eval/step-N/NAME/`` and into that step's metrics row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minillm_distill import run_layout
from minillm_distill.benchmark import Benchmark, EvalExample
from minillm_distill.errors import RecipeError
from minillm_distill.plugins import PluginSet
from minillm_distill.recipe.schema import EvalSpec
from minillm_distill.train import distributed as dist_utils


class PeriodicEval:
    def __init__(
        self, spec: EvalSpec, sharded: bool, plugins: PluginSet, tokenizer: Any, family: Any, run_dir: Path
    ) -> None:
        """``spec``: the recipe's ``eval`` section; ``sharded``: the models are ZeRO-3 (engine.zero_stage 3)."""
        self.spec = spec
        self.tokenizer, self.family, self.run_dir = tokenizer, family, run_dir
        self.enabled = self.spec.every > 0 and bool(self.spec.benchmarks)
        self.sets: list[tuple[Benchmark, list[EvalExample]]] = []
        self.skip_reason: str | None = None
        if self.enabled and sharded and dist_utils.world_size() > 1:
            self.skip_reason = "evaluation during training is skipped under multi-process ZeRO-3; run `minillm eval`"
            self.enabled = False
        if not self.enabled or not dist_utils.is_main():
            return
        for name in self.spec.benchmarks:
            if name not in plugins.benchmarks:
                raise RecipeError(f"eval.benchmarks: {plugins.benchmarks.unknown_message(name)}")
            bench = plugins.benchmarks.get(name)()
            bench.check_scorers()  # before training, not at the first evaluation
            examples = bench.load_examples(self.spec.data.get(name))
            if self.spec.limit is not None:
                examples = examples[: self.spec.limit]
            self.sets.append((bench, examples))

    def due(self, step: int, last: int) -> bool:
        return self.enabled and (step % self.spec.every == 0 or step == last)

    def run(self, engine: Any, step: int) -> dict[str, float]:
        """Collective (a barrier); returns the scores on rank 0, {} elsewhere."""
        row: dict[str, float] = {}
        if dist_utils.is_main():
            from minillm_distill.eval.report import write_model_outputs
            from minillm_distill.eval.runner import EvalSettings, evaluate_model

            settings = EvalSettings(
                seeds=tuple(self.spec.seeds),
                max_new_tokens=self.spec.max_new_tokens,
                batch_size=self.spec.batch_size,
                max_new_tokens_setting="eval.max_new_tokens",
            )
            model = engine.module
            for bench, examples in self.sets:
                scores, predictions = evaluate_model(
                    model, self.tokenizer, self.family, bench, examples, settings, model_name=f"step-{step}"
                )
                write_model_outputs(
                    self.run_dir / run_layout.EVAL / f"{run_layout.STEP_PREFIX}{step}" / bench.name, scores, predictions
                )
                row[f"eval/{bench.name}/rougeL"] = scores.rouge_l
                row[f"eval/{bench.name}/exact_match"] = scores.exact_match
                row[f"eval/{bench.name}/mean_length"] = scores.mean_length
            engine.module.train()
        dist_utils.barrier()
        return row
