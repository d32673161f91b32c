"""Measurements that need model forward passes: exposure bias against a teacher (ExAccErr) and label-word
calibration (ECE). The formulas are in :mod:`minillm_distill.eval.metrics`."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from minillm_distill.eval.metrics import ExposureBiasCurve, expected_calibration_error, exposure_bias_curve
from minillm_distill.eval.prompts import encode_prompt, left_pad, prompt_budget
from minillm_distill.generation import GenerationParams, decode
from minillm_distill.model_facts import eos_token_ids, model_device, pad_token_id


def _forward_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    extra = {}
    if "position_ids" in inspect.signature(model.forward).parameters:
        extra["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    return model(input_ids=ids, attention_mask=mask, use_cache=False, **extra).logits


@torch.no_grad()
def forward_kl_per_step(
    teacher: Any,
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    vocab_size: int | None = None,
) -> list[list[float]]:
    """KL(p_t || q_t) at every response step, p the teacher's and q the model's next-token distribution
    (teacher forcing on prompt + response, exact sum over the shared vocabulary rows). One list per row, as
    long as the row's response (its EOS included)."""
    from minillm_distill.rollout import RolloutBatch
    from minillm_distill.scoring.forward import score_responses
    from minillm_distill.scoring.walk import ResponseScores, walk_tokens

    batch = RolloutBatch(prompt_ids, prompt_mask, response_ids, response_mask.to(prompt_mask.dtype))
    was_training = (teacher.training, model.training)
    teacher.eval()
    model.eval()
    try:
        # hidden states + output layers; the logits exist one chunk of tokens at a time
        p_scores = score_responses(teacher, batch)
        q_scores = score_responses(model, batch)
    finally:
        teacher.train(was_training[0])
        model.train(was_training[1])
    if vocab_size is not None:
        q_scores = ResponseScores(
            hidden=q_scores.hidden, head=q_scores.head, logits=q_scores.logits,
            vocab_size=min(q_scores.vocab_size, vocab_size),
        )  # fmt: skip

    def forward_kl(q: torch.Tensor, p: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
        assert p is not None
        log_p, log_q = torch.log_softmax(p, dim=-1), torch.log_softmax(q, dim=-1)
        return (log_p.exp() * (log_p - log_q)).sum(-1).clamp(min=0.0)

    valid = response_mask.bool()
    walk = walk_tokens(q_scores, p_scores, response_ids, valid, forward_kl)
    kl = torch.zeros(response_ids.shape, dtype=torch.float32, device=response_ids.device)
    kl.view(-1)[walk.index] = walk.values.float()
    lengths = response_mask.sum(-1).tolist()
    return [kl[i, : int(n)].tolist() for i, n in enumerate(lengths)]


def measure_exposure_bias(
    model: Any,
    teacher: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    samples_per_prompt: int = 10,
    max_new_tokens: int = 256,
    max_prompt_tokens: int = 256,
    batch_size: int = 8,
    seed: int = 10,
) -> ExposureBiasCurve:
    """ExAccErr(l) of ``model`` against ``teacher`` on ``prompts`` (formatted prompt texts).

    For each prompt, ``samples_per_prompt`` responses are sampled from the model (free run: R(l)) and as many
    from the teacher (eps(l)), with plain sampling (temperature 1, no top-k/top-p, no n-gram blocking: the
    expectations are over the models' own distributions), and both models score every step of every
    response. Both models must share the tokenizer."""
    device = model_device(model)
    params = GenerationParams(max_new_tokens=max_new_tokens)
    eos = eos_token_ids(tokenizer, model, teacher)
    pad = pad_token_id(tokenizer, eos)
    budget = min(prompt_budget(m, max_prompt_tokens, max_new_tokens) for m in (model, teacher))
    encoded = [encode_prompt(tokenizer, text, budget) for text in prompts]
    rows = [ids for ids in encoded for _ in range(samples_per_prompt)]
    vocab = len(tokenizer)
    generator = torch.Generator().manual_seed(seed)
    per_source: dict[str, list[list[float]]] = {"model": [], "teacher": []}
    for source, sampler in (("model", model), ("teacher", teacher)):
        for start in range(0, len(rows), batch_size):
            ids, mask = left_pad(rows[start : start + batch_size], pad)
            ids, mask = ids.to(device), mask.to(device)
            out = decode(
                ids,
                mask,
                student=sampler,
                params=params,
                generator=generator,
                eos_token_id=eos,
                pad_token_id=pad,
                vocab_size=vocab,
            )
            per_source[source].extend(
                forward_kl_per_step(teacher, model, ids, mask, out.response_ids, out.response_mask, vocab_size=vocab)
            )
    return exposure_bias_curve(per_source["model"], per_source["teacher"], max_length=max_new_tokens)


@dataclass
class CalibrationResult:
    accuracy: float
    """x100"""
    ece: float
    """in [0, 1]"""
    confidences: list[float]
    correct: list[bool]

    def as_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "ece": self.ece, "n": len(self.correct)}


@torch.no_grad()
def label_word_probabilities(
    model: Any, tokenizer: Any, prompt: str, choices: Sequence[str], budget: int
) -> list[float]:
    """The model's distribution over the label words: softmax over choices of log p(choice | prompt) (the
    sum of the choice's token log-probs), as the MiniLLM paper scores zero-shot classification."""
    device = model_device(model)
    prompt_ids = encode_prompt(tokenizer, prompt, budget)
    scores = []
    for choice in choices:
        choice_ids = list(tokenizer(choice, add_special_tokens=False)["input_ids"])
        if not choice_ids:
            raise ValueError(f"label word {choice!r} has no tokens")
        ids = torch.tensor([prompt_ids + choice_ids], device=device)
        mask = torch.ones_like(ids)
        logits = _forward_logits(model, ids, mask)[0, len(prompt_ids) - 1 : -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        target = torch.tensor(choice_ids, device=device)
        scores.append(float(logprobs.gather(-1, target[:, None]).sum()))
    return torch.softmax(torch.tensor(scores), dim=0).tolist()


def label_word_calibration(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    choices: Sequence[Sequence[str]],
    gold: Sequence[str],
    *,
    max_prompt_tokens: int = 256,
    n_bins: int = 10,
) -> CalibrationResult:
    """Accuracy and ECE of zero-shot classification by label words: the prediction is the most probable
    choice, its probability the confidence, correct when it equals the gold label."""
    longest_choice = max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for cs in choices for c in cs)
    budget = prompt_budget(model, max_prompt_tokens, longest_choice)
    confidences, correct = [], []
    for prompt, options, label in zip(prompts, choices, gold, strict=True):
        probs = label_word_probabilities(model, tokenizer, prompt, options, budget)
        best = max(range(len(options)), key=probs.__getitem__)
        confidences.append(probs[best])
        correct.append(options[best].strip().lower() == label.strip().lower())
    accuracy = 100.0 * sum(correct) / len(correct) if correct else float("nan")
    return CalibrationResult(accuracy, expected_calibration_error(confidences, correct, n_bins), confidences, correct)


@torch.no_grad()
def token_calibration(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    references: Sequence[str],
    *,
    max_prompt_tokens: int = 256,
    max_reference_tokens: int = 256,
    n_bins: int = 10,
) -> CalibrationResult:
    """Next-token calibration on the references, for generative benchmarks without label words: the model
    reads prompt + reference (teacher forcing); at every reference position its most probable token is the
    prediction, that probability the confidence, correct when it is the reference token. Accuracy (x100) and
    ECE are over all reference tokens."""
    device = model_device(model)
    budget = prompt_budget(model, max_prompt_tokens, max_reference_tokens)
    confidences: list[float] = []
    correct: list[bool] = []
    for prompt, reference in zip(prompts, references, strict=True):
        prompt_ids = encode_prompt(tokenizer, prompt, budget)
        ref_ids = list(tokenizer(reference, add_special_tokens=False)["input_ids"])[:max_reference_tokens]
        if not ref_ids:
            continue
        ids = torch.tensor([prompt_ids + ref_ids], device=device)
        logits = _forward_logits(model, ids, torch.ones_like(ids))[0, len(prompt_ids) - 1 : -1].float()
        probs = torch.softmax(logits, dim=-1)
        conf, pred = probs.max(dim=-1)
        target = torch.tensor(ref_ids, device=device)
        confidences.extend(conf.tolist())
        correct.extend((pred == target).tolist())
    accuracy = 100.0 * sum(correct) / len(correct) if correct else float("nan")
    return CalibrationResult(accuracy, expected_calibration_error(confidences, correct, n_bins), confidences, correct)
