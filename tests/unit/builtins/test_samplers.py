"""The built-in samplers: student, teacher, mixed (GKD) and teacher_mixed (MiniLLM)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from minillm_distill.api import PromptBatch, SamplerContext
from minillm_distill.builtins.samplers.mixed import MixedSampler, on_policy_decision
from minillm_distill.builtins.samplers.student import StudentSampler
from minillm_distill.builtins.samplers.teacher import TeacherSampler
from minillm_distill.builtins.samplers.teacher_mixed import TeacherMixedSampler
from minillm_distill.generation import eval_mode
from minillm_distill.plugins import load_plugins

VOCAB = 32
PAD = 0
EOS = 2
TOKENIZER = SimpleNamespace(eos_token_id=EOS, pad_token_id=PAD)


def tiny_model(kind: str, seed: int, init: float = 0.3):
    """A random model with a fairly peaked next-token distribution (large init), so student and teacher differ."""
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    common = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=EOS, pad_token_id=PAD, initializer_range=init)
    if kind == "gpt2":
        config = GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=2, **common)
    else:
        config = LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            **common,
        )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).float()


@pytest.fixture(scope="module")
def models():
    return tiny_model("gpt2", 0), tiny_model("llama", 1)


def prompts(lengths=(3, 6, 2, 5), seed=0, with_responses=False) -> PromptBatch:
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), PAD, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, width - n :] = torch.randint(3, VOCAB, (n,), generator=g)
        mask[i, width - n :] = 1
    if not with_responses:
        return PromptBatch(ids, mask)
    resp = torch.randint(3, VOCAB, (len(lengths), 4), generator=g)
    return PromptBatch(ids, mask, resp, torch.ones_like(resp))


def ctx(models, seed=0, step=0, gen_seed=123, rank=0, teacher=True) -> SamplerContext:
    student, t = models
    return SamplerContext(
        student=student,
        teacher=t if teacher else None,
        tokenizer=TOKENIZER,
        step=step,
        generator=torch.Generator().manual_seed(gen_seed),
        seed=seed,
        rank=rank,
    )


def test_all_samplers_are_registered():
    names = load_plugins().samplers.names()
    for name in ("dataset", "student", "teacher", "mixed", "teacher_mixed"):
        assert name in names
    registry = load_plugins().samplers
    assert registry.get("teacher_mixed").needs_teacher and registry.get("teacher").needs_teacher
    assert not registry.get("mixed").needs_teacher and not registry.get("student").needs_teacher


# -- student and teacher ----------------------------------------------------------------------------------


def test_student_sampler_with_a_byte_tokenizer_model():
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    loaded = load_model(ModelSpec(family="gpt2", scratch={"layers": 1, "hidden": 32, "heads": 2}, tokenizer="byte"))
    tok = loaded.tokenizer
    enc = tok(["Hello", "a longer prompt"], return_tensors="pt", padding=True)
    sampler = StudentSampler.from_options({"max_new_tokens": 5, "temperature": 0.8, "top_k": 20})
    c = SamplerContext(loaded.model, None, tok, step=0, generator=torch.Generator().manual_seed(0))
    out = sampler.sample(PromptBatch(enc["input_ids"], enc["attention_mask"]), c)
    assert out.response_ids.shape == out.response_mask.shape == out.behaviour_logprobs.shape
    assert out.response_ids.shape[0] == 2 and out.response_ids.shape[1] <= 5
    assert out.source == "student" and out.teacher_logprobs is None and out.importance_weights is None
    assert torch.equal(out.prompt_ids, enc["input_ids"])


def test_teacher_sampler_fills_teacher_logprobs(models):
    out = TeacherSampler.from_options({"max_new_tokens": 6}).sample(prompts(), ctx(models))
    assert out.teacher_logprobs is not None and out.behaviour_logprobs is None
    valid = out.response_mask.bool()
    assert (out.teacher_logprobs[valid] < 0).all() and (out.teacher_logprobs[~valid] == 0).all()
    with pytest.raises(ValueError, match="teacher"):
        TeacherSampler().sample(prompts(), ctx(models, teacher=False))


# -- teacher_mixed ----------------------------------------------------------------------------------------


def test_teacher_mixed_alpha_0_is_the_student_sampler(models):
    opts = {"max_new_tokens": 8}
    mixed = TeacherMixedSampler.from_options({**opts, "alpha": 0.0}).sample(prompts(), ctx(models))
    student = StudentSampler.from_options(opts).sample(prompts(), ctx(models))
    assert torch.equal(mixed.response_ids, student.response_ids)
    assert torch.equal(mixed.response_mask, student.response_mask)
    torch.testing.assert_close(mixed.behaviour_logprobs, student.behaviour_logprobs, atol=1e-6, rtol=0)
    torch.testing.assert_close(mixed.importance_weights, torch.ones_like(mixed.importance_weights), atol=1e-5, rtol=0)
    # and alpha > 0 does change the tokens (the teacher differs from the student)
    other = TeacherMixedSampler.from_options({**opts, "alpha": 0.5}).sample(prompts(), ctx(models))
    assert not torch.equal(other.response_ids, student.response_ids)


def test_teacher_mixed_alpha_0_matches_student_with_temperature_and_filters(models):
    opts = {"max_new_tokens": 8, "temperature": 0.7, "top_k": 10, "top_p": 0.9}
    mixed = TeacherMixedSampler.from_options({**opts, "alpha": 0.0}).sample(prompts(), ctx(models))
    student = StudentSampler.from_options(opts).sample(prompts(), ctx(models))
    assert torch.equal(mixed.response_ids, student.response_ids)
    # w = q_old(y) / m(y): here m is the processed student distribution, so w != 1 in general
    want = torch.exp(mixed.behaviour_logprobs) / mixed.extras["sampling_probs"]
    torch.testing.assert_close(mixed.importance_weights, want)


def test_teacher_mixed_alpha_1_is_the_teacher_sampler(models):
    opts = {"max_new_tokens": 8}
    mixed = TeacherMixedSampler.from_options({**opts, "alpha": 1.0}).sample(prompts(), ctx(models))
    teacher = TeacherSampler.from_options(opts).sample(prompts(), ctx(models))
    assert torch.equal(mixed.response_ids, teacher.response_ids)
    torch.testing.assert_close(mixed.teacher_logprobs, teacher.teacher_logprobs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("alpha", [0.2, 0.7])
def test_teacher_mixed_importance_weights_formula(models, alpha):
    out = TeacherMixedSampler.from_options({"max_new_tokens": 10, "alpha": alpha}).sample(prompts(), ctx(models))
    lq, lp, mask = out.behaviour_logprobs, out.teacher_logprobs, out.response_mask.bool()
    q, p = lq.double().exp(), lp.double().exp()
    want = q / ((1 - alpha) * q + alpha * p)
    torch.testing.assert_close(out.importance_weights[mask].double(), want[mask], atol=1e-5, rtol=1e-4)
    assert (out.importance_weights[~mask] == 1).all()
    assert out.source == "teacher_mixed"
    # the log-probs are those of a full forward pass of each model over prompt + response
    batch = prompts()
    ids = torch.cat([batch.prompt_ids, out.response_ids], 1)
    full_mask = torch.cat([batch.prompt_mask, out.response_mask], 1)
    pos = (full_mask.cumsum(-1) - 1).clamp(min=0)
    for model, got in zip(models, (lq, lp), strict=True):
        with torch.no_grad(), eval_mode([model]):  # no dropout
            logits = model(input_ids=ids, attention_mask=full_mask, position_ids=pos).logits
        p0 = batch.prompt_ids.shape[1]
        lp_full = torch.log_softmax(logits[:, p0 - 1 : -1].float(), -1).gather(-1, out.response_ids[..., None])
        torch.testing.assert_close(got[mask], lp_full.squeeze(-1)[mask], atol=1e-5, rtol=0)


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson chi-square statistic and degrees of freedom; cells with expected count < 5 are pooled."""
    n = float(counts.sum())
    expected = probs.double() * n
    big = expected >= 5
    obs = torch.cat([counts[big].double(), counts[~big].sum().double().reshape(1)])
    exp = torch.cat([expected[big], expected[~big].sum().reshape(1)])
    keep = exp > 0
    stat = float((((obs - exp) ** 2)[keep] / exp[keep]).sum())
    return stat, int(keep.sum()) - 1


def test_teacher_mixed_draws_from_the_mixture(models):
    alpha, rows = 0.3, 20000
    prompt = torch.tensor([[7, 11, 19]])
    batch = PromptBatch(prompt.repeat(rows, 1), torch.ones(rows, 3, dtype=torch.long))
    out = TeacherMixedSampler.from_options({"max_new_tokens": 1, "alpha": alpha}).sample(batch, ctx(models))
    counts = torch.bincount(out.response_ids[:, 0], minlength=VOCAB)
    with torch.no_grad(), eval_mode(models):
        q = torch.softmax(models[0](input_ids=prompt).logits[0, -1].float(), -1)
        p = torch.softmax(models[1](input_ids=prompt).logits[0, -1].float(), -1)
    mix = (1 - alpha) * q + alpha * p
    stat, df = chi_square(counts, mix)
    limit = df + 5 * math.sqrt(2 * df)  # ~5 standard deviations of a chi-square with df degrees of freedom
    assert stat < limit, (stat, df)
    # the check has power: the student's own distribution is rejected
    wrong, df_q = chi_square(counts, q)
    assert wrong > 10 * (df_q + 5 * math.sqrt(2 * df_q))


# -- mixed (GKD) ----------------------------------------------------------------------------------------------


def test_mixed_on_policy_fraction_is_lambda():
    for lam in (0.3, 0.8):
        decisions = [on_policy_decision(seed=42, step=s, prob=lam) for s in range(200)]
        frac = sum(decisions) / 200
        assert abs(frac - lam) < 4 * math.sqrt(lam * (1 - lam) / 200)
    assert not any(on_policy_decision(1, s, 0.0) for s in range(50))
    assert all(on_policy_decision(1, s, 1.0) for s in range(50))


def test_mixed_decisions_same_on_every_rank_and_seed_dependent(models):
    batch = prompts(with_responses=True)
    rank0 = MixedSampler.from_options({"lambda": 0.5, "max_new_tokens": 2})
    rank1 = MixedSampler.from_options({"lambda": 0.5, "max_new_tokens": 2})
    global_state = torch.get_rng_state()
    src0, src1 = [], []
    for step in range(12):
        # each rank has its own token generator; only (seed, step) may decide
        src0.append(rank0.sample(batch, ctx(models, seed=7, step=step, gen_seed=step, rank=0)).source)
        src1.append(rank1.sample(batch, ctx(models, seed=7, step=step, gen_seed=1000 + step, rank=1)).source)
    assert src0 == src1
    assert set(src0) == {"student", "dataset"}
    assert torch.equal(torch.get_rng_state(), global_state)
    assert src0 == ["student" if on_policy_decision(7, s, 0.5) else "dataset" for s in range(12)]
    state = rank0.state_dict()
    assert state["on_policy_steps"] == src0.count("student")
    assert state["off_policy_steps"] == src0.count("dataset")
    fresh = MixedSampler.from_options({"lambda": 0.5})
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state
    # different recipe seeds give different schedules
    a = [on_policy_decision(7, s, 0.5) for s in range(200)]
    b = [on_policy_decision(8, s, 0.5) for s in range(200)]
    assert a != b


def test_mixed_branches(models):
    batch = prompts(with_responses=True)
    on = MixedSampler.from_options({"lambda": 1.0, "max_new_tokens": 3}).sample(batch, ctx(models))
    assert on.source == "student" and on.extras["on_policy"] and on.behaviour_logprobs is not None
    off = MixedSampler.from_options({"lambda": 0.0}).sample(batch, ctx(models))
    assert off.source == "dataset" and not off.extras["on_policy"]
    assert torch.equal(off.response_ids, batch.response_ids)
    with pytest.raises(ValueError, match="responses"):
        MixedSampler.from_options({"lambda": 0.0}).sample(prompts(), ctx(models))


def test_sampler_params_validation():
    assert MixedSampler.from_options({"lambda": 0.25}).params.lambda_ == 0.25
    assert MixedSampler.from_options({"lambda_": 0.25}).params.lambda_ == 0.25
    assert TeacherMixedSampler().params.alpha == 0.2
    for cls, bad in [
        (MixedSampler, {"lambda": 1.5}),
        (TeacherMixedSampler, {"alpha": -0.1}),
        (TeacherMixedSampler, {"beta": 0.1}),
        (StudentSampler, {"temperature": 0.0}),
    ]:
        with pytest.raises(ValidationError):
            cls.from_options(bad)


def test_teacher_mixed_student_length_probe_leaves_the_rollout_unchanged(models):
    opts = {"max_new_tokens": 8, "alpha": 0.3}
    with_probe = TeacherMixedSampler.from_options({**opts, "probe_student_length": True}).sample(prompts(), ctx(models))
    without = TeacherMixedSampler.from_options({**opts, "probe_student_length": False}).sample(prompts(), ctx(models))
    assert torch.equal(with_probe.response_ids, without.response_ids)
    assert "student_lengths" not in without.extras
    lengths = with_probe.extras["student_lengths"]
    # the probe is the student sampler on the same prompts (its own generator): lengths of real responses
    assert lengths.shape == (4,) and bool(((lengths >= 1) & (lengths <= 8)).all())


def test_the_coin_is_seeded_by_the_shared_derivation():
    """One seed derivation (minillm_distill.seeds, FNV-1a over 48-bit parts): the coin's generator is seeded with
    derive_seed(seed, step, COIN_STREAM), whose value is recomputed here by hand."""
    from minillm_distill.api import derive_seed
    from minillm_distill.builtins.samplers.mixed import COIN_STREAM

    def fnv(*parts: int) -> int:
        h = 1469598103934665603
        for p in parts:
            h = ((h ^ (p % (1 << 48))) * 1099511628211) % (1 << 63)
        return h

    assert derive_seed(3, 5, COIN_STREAM) == fnv(3, 5, COIN_STREAM)
    assert derive_seed(1, 2) != derive_seed(2, 1)
    for step in range(20):
        g = torch.Generator().manual_seed(fnv(11, step, COIN_STREAM))
        assert on_policy_decision(11, step, 0.5) == bool(torch.rand((), generator=g).item() < 0.5)
