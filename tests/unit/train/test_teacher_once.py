"""Each rollout token goes through the teacher once: a sampler that decodes with the teacher keeps its final
hidden states, which equal those of a scoring forward (so the losses are unchanged); decoding uses the Cache
API without deprecation warnings."""

from __future__ import annotations

import warnings
from dataclasses import replace

import torch
from tiny_models import build_tiny

from minillm_distill.divergence import token_divergence_sum
from minillm_distill.generation import GenerationParams, decode, mixture
from minillm_distill.plugins import load_plugins
from minillm_distill.sampler import PromptBatch, SamplerContext
from minillm_distill.scoring.forward import score_responses
from minillm_distill.train.step import teacher_scores


def _setup():
    student = build_tiny("qwen2", seed=1)
    teacher = build_tiny("qwen2", seed=2, hidden=24).model.eval()
    prompts = PromptBatch(
        prompt_ids=torch.tensor([[0, 0, 40, 41, 42], [50, 51, 52, 53, 54]]),
        prompt_mask=torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]),
    )
    return student, teacher, prompts


def test_teacher_hidden_from_decoding_equals_a_scoring_forward():
    student, teacher, prompts = _setup()
    sampler = load_plugins().samplers.get("teacher_mixed")(
        load_plugins().samplers.get("teacher_mixed").Params(max_new_tokens=12, alpha=0.5)
    )
    ctx = SamplerContext(
        student=student.model, teacher=teacher, tokenizer=student.tokenizer, step=0,
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    rollout = sampler.sample(prompts, ctx)
    assert rollout.teacher_hidden is not None
    assert rollout.teacher_hidden.shape[:2] == rollout.response_ids.shape
    mask = rollout.response_mask.bool()
    with torch.no_grad():
        forward = score_responses(teacher, rollout)
    assert forward.hidden is not None
    torch.testing.assert_close(rollout.teacher_hidden[mask], forward.hidden[mask], rtol=1e-5, atol=1e-5)
    assert bool((rollout.teacher_hidden[~mask] == 0).all())
    kept = teacher_scores(teacher, rollout)
    assert kept.hidden is rollout.teacher_hidden  # no teacher forward
    div = load_plugins().divergences.get("fkl")()
    s = score_responses(student.model, rollout)
    a, _ = token_divergence_sum(div, s, kept, rollout.response_ids, mask)
    b, _ = token_divergence_sum(div, s, forward, rollout.response_ids, mask)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_decoding_raises_no_deprecation_warning():
    student, teacher, prompts = _setup()
    gpt2 = build_tiny("gpt2", seed=1).model
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (FutureWarning / DeprecationWarning included) fails
        for s, t in ((student.model, teacher), (gpt2, None)):
            out = decode(
                prompts.prompt_ids, prompts.prompt_mask, student=s, teacher=t,
                params=GenerationParams(max_new_tokens=6), choose=mixture(0.3) if t is not None else None,
                generator=torch.Generator().manual_seed(0), keep_teacher_hidden=t is not None,
            )  # fmt: skip
            assert out.response_ids.shape[1] >= 1


def test_probe_student_length_is_off_by_default():
    cls = load_plugins().samplers.get("teacher_mixed")
    assert cls.Params().probe_student_length is False


def _rollout(budget: int, synced: bool = False):
    student, teacher, prompts = _setup()
    cls = load_plugins().samplers.get("teacher_mixed")
    ctx = SamplerContext(
        student=student.model, teacher=teacher, tokenizer=student.tokenizer, step=0,
        generator=torch.Generator().manual_seed(3), teacher_logits_bytes=budget, synced=synced,
    )  # fmt: skip
    return student, teacher, cls(cls.Params(max_new_tokens=12, alpha=0.5)).sample(prompts, ctx)


def test_teacher_logits_kept_within_the_budget_equal_a_scoring_forward():
    student, teacher, _ = _rollout(0)
    vocab = teacher.config.vocab_size
    need = 2 * 12 * vocab * 4  # rows x max_new_tokens x vocabulary float32
    assert _rollout(0)[2].teacher_logits is None
    assert _rollout(need - 1)[2].teacher_logits is None  # one byte short: hidden states only
    assert _rollout(need, synced=True)[2].teacher_logits is None  # ZeRO-3 across ranks: never
    student, teacher, rollout = _rollout(need)
    logits = rollout.teacher_logits
    assert logits is not None and logits.dtype == torch.float32
    assert logits.shape == (*rollout.response_ids.shape, vocab) and logits.is_contiguous()
    mask = rollout.response_mask.bool()
    with torch.no_grad():
        forward = score_responses(teacher, rollout)
        full = forward.head(forward.hidden)
    # kept as log-probabilities (the decode's own log-softmax), and flagged so
    torch.testing.assert_close(logits[mask], torch.log_softmax(full[mask], -1), rtol=1e-5, atol=1e-5)
    assert rollout.teacher_logits_normalised
    kept = teacher_scores(teacher, rollout)
    assert kept.logits is logits and kept.hidden is None  # no output layer
    assert kept.normalised
    assert not teacher_scores(teacher, replace(rollout, teacher_logits_normalised=False)).normalised
    assert rollout.teacher_hidden is None  # kept instead of the hidden states, not beside them
    assert _rollout(need - 1)[2].teacher_hidden is not None
    # the minillm divergence's loss and gradient are those from a teacher scoring forward
    div_cls = load_plugins().divergences.get("minillm")
    div = div_cls(div_cls.Params(ppo_epochs=2, whiten_advantages=False))
    prepared, _ = div.prepare([rollout], _identity_reducer())
    from minillm_distill.divergence import StepNorm

    norm = StepNorm(tokens=float(mask.sum()), sequences=float(mask.shape[0]))
    results = []
    for source in (kept, teacher_scores(teacher, replace(rollout, teacher_logits=None))):
        student.model.zero_grad(set_to_none=True)
        s = score_responses(student.model, rollout)
        loss, _ = div.loss(s, source, rollout, prepared[0], norm)
        loss.backward()
        grads = torch.cat([p.grad.reshape(-1) for p in student.model.parameters() if p.grad is not None])
        results.append((loss.detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-5, atol=1e-7)


def _identity_reducer():
    from minillm_distill.divergence import Reducer

    return Reducer()
