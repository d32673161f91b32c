"""Worker of ``test_loss_chunks_distributed.py``: one rank of a 2-process DeepSpeed run (gloo, CPU).

Each rank scores its own micro-batch (different valid-token counts, so different numbers of chunks) through
DeepSpeed engines at ZeRO stage ``argv[1]`` with the chunked path, backpropagates the loss, and compares the
loss summed over ranks and the full gradient of every student parameter with a plain full-logits computation
over both ranks' batches. Writes ``{"rank": r, "results": {...relative errors...}}`` to ``argv[2]``.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: tiny_models

from tiny_models import build_tiny  # noqa: E402

from minillm_distill.divergence import Reducer, StepNorm, token_divergence_sum  # noqa: E402
from minillm_distill.plugins import load_plugins  # noqa: E402
from minillm_distill.sampler import RolloutBatch  # noqa: E402
from minillm_distill.scoring.forward import score_responses, sequence_inputs  # noqa: E402
from minillm_distill.scoring.walk import ResponseScores  # noqa: E402
from minillm_distill.train import distributed as dist_utils  # noqa: E402


def batch_for(rank: int) -> RolloutBatch:
    g = torch.Generator().manual_seed(100 + rank)
    prompt = torch.randint(3, 120, (2, 4), generator=g)
    pmask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    resp = torch.randint(3, 120, (2, 6), generator=g)
    rmask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]]) if rank == 0 else torch.tensor([[1, 1, 0, 0, 0, 0]] * 2)
    b = RolloutBatch(prompt, pmask, resp * rmask, rmask)
    shape = resp.shape
    b.behaviour_logprobs = (-torch.rand(shape, generator=g) * 3) * rmask
    b.teacher_logprobs = (-torch.rand(shape, generator=g) * 3) * rmask
    b.importance_weights = torch.where(rmask.bool(), 0.5 + torch.rand(shape, generator=g), torch.ones(shape))
    return b


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30))


def main() -> None:
    import deepspeed
    from deepspeed.utils import safe_get_full_grad

    stage, out = int(sys.argv[1]), Path(sys.argv[2])
    dist_utils.init_distributed()
    rank, world = dist_utils.rank(), dist_utils.world_size()
    registry = load_plugins().divergences
    cfg = {
        "train_micro_batch_size_per_gpu": 2,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": stage},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }
    results: dict[str, float] = {}
    batches = [batch_for(r) for r in range(world)]
    tokens = float(sum(int(b.response_mask.sum()) for b in batches))
    for family in ("gpt2", "qwen2"):  # tied and untied heads
        base = build_tiny(family, seed=1).model.float()
        teacher_base = build_tiny(family, seed=2, hidden=24).model.float().requires_grad_(False).eval()
        for m in base.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        # chunks of 2 tokens (recomputed in backward), and for minillm also one chunk for all tokens (plain autograd)
        cases = [("fkl", 2), ("jsd", 2), ("minillm", 2), ("minillm", 10**6)]
        for name, chunk in cases:
            div = registry.get(name)()
            reference = copy.deepcopy(base)
            # reference: full logits of both ranks' batches on a plain model
            ref_loss = torch.zeros(())
            for b in batches:
                tr = b.response_ids.size(1)
                s = reference(**sequence_inputs(b), use_cache=False).logits[:, -(tr + 1) : -1]
                with torch.no_grad():
                    t = teacher_base(**sequence_inputs(b), use_cache=False).logits[:, -(tr + 1) : -1]
                mask = b.response_mask.bool()
                if name == "minillm":
                    prepared, _ = div.prepare([b], Reducer())
                    full = ResponseScores(logits=s, chunk_tokens=10**6)
                    loss, _ = div.loss(full, ResponseScores(logits=t), b, prepared[0], StepNorm(tokens, 4))
                else:
                    loss = div.per_token(s[mask].float(), t[mask].float(), b.response_ids[mask]).sum() / tokens
                ref_loss = ref_loss + loss
            ref_loss.backward()
            ref_grads = {n: p.grad for n, p in reference.named_parameters()}

            model = copy.deepcopy(base)
            opt = torch.optim.SGD(model.parameters(), lr=0.0)
            engine, *_ = deepspeed.initialize(model=model, optimizer=opt, config=cfg)
            teacher = copy.deepcopy(teacher_base)
            if stage == 3:
                teacher, *_ = deepspeed.initialize(model=teacher, config={**cfg, "zero_optimization": {"stage": 3}})
                teacher.eval()
            b = batches[rank]
            mask = b.response_mask.bool()
            student_scores = score_responses(engine, b, chunk_tokens=chunk)
            assert student_scores.hidden is not None
            with torch.no_grad():
                teacher_scores = score_responses(teacher, b)
            if name == "minillm":
                prepared, _ = div.prepare([b], Reducer())
                loss, _ = div.loss(student_scores, teacher_scores, b, prepared[0], StepNorm(tokens, 4))
            else:
                total, _ = token_divergence_sum(div, student_scores, teacher_scores, b.response_ids, mask)
                loss = total / tokens
            engine.backward(loss * world)  # undo DeepSpeed's average over ranks: the gradient of the sum
            (loss_sum,) = dist_utils.all_reduce_sum([float(loss)])
            key = f"{family}-{name}-chunk{chunk}"
            results[f"{key}-loss"] = abs(loss_sum - float(ref_loss)) / abs(float(ref_loss))
            worst = 0.0
            for n, p in engine.module.named_parameters():
                g = safe_get_full_grad(p)
                worst = max(worst, rel(g, ref_grads[n]))
            results[f"{key}-grad"] = worst
            ref_head = reference.get_output_embeddings().weight
            head_name = next(n for n, p in reference.named_parameters() if p is ref_head)
            results[f"{key}-head-grad"] = rel(
                safe_get_full_grad(engine.module.get_output_embeddings().weight), ref_grads[head_name]
            )
            if hasattr(engine, "destroy"):
                engine.destroy()
    Path(f"{out}.{rank}").write_text(json.dumps({"rank": rank, "results": results}))


if __name__ == "__main__":
    import os

    main()
    # end as minillm's own commands do: the process group shut down, then no interpreter teardown (where gloo's
    # threads now and then abort a finished process: "terminate called without an active exception", exit -6)
    dist_utils.shut_down()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
