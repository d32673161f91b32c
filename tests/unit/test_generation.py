"""The batched KV-cache decoding loop (minillm_distill.generation) on tiny random gpt2 and llama models."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from pydantic import ValidationError

from minillm_distill import generation
from minillm_distill.generation import (
    GenerationParams,
    decode,
    eval_mode,
    mixture,
    processed_probs,
    top_k_filter,
    top_p_filter,
)

VOCAB = 32
PAD = 0
EOS = 2


def tiny_model(kind: str, seed: int = 0, vocab: int = VOCAB, init: float = 0.02):
    from transformers import AutoModelForCausalLM, BloomConfig, GPT2Config, LlamaConfig, OPTConfig, Qwen2Config

    common = dict(vocab_size=vocab, bos_token_id=1, eos_token_id=EOS, pad_token_id=PAD, initializer_range=init)
    if kind == "gpt2":
        config = GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=2, **common)
    elif kind == "opt":  # learned positions
        config = OPTConfig(hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=2, **common)
    elif kind == "bloom":  # ALiBi: no position_ids argument at all
        config = BloomConfig(hidden_size=32, n_layer=2, n_head=2, **common)
    elif kind == "qwen2":
        config = Qwen2Config(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **common,
        )
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


def left_padded(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, width - n :] = torch.randint(3, VOCAB, (n,), generator=g)
        mask[i, width - n :] = 1
    return ids, mask


def full_forward_logprobs(model, prompt_ids, prompt_mask, response_ids, response_mask) -> torch.Tensor:
    """log-probs of the response tokens from one uncached forward pass over prompt + response."""
    ids = torch.cat([prompt_ids, response_ids], dim=1)
    mask = torch.cat([prompt_mask, response_mask.to(prompt_mask.dtype)], dim=1)
    extra = {}
    if "position_ids" in inspect.signature(model.forward).parameters:
        extra["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False, **extra).logits.float()
    p = prompt_ids.shape[1]
    predicting = logits[:, p - 1 : -1]
    lp = torch.log_softmax(predicting, -1).gather(-1, response_ids[..., None]).squeeze(-1)
    return lp * response_mask


def forcing(tokens: torch.Tensor):
    """A ``choose`` that puts all mass on ``tokens[:, step]`` (teacher forcing through the sampling loop)."""
    state = {"step": 0}

    def choose(q, p):
        ref = q if q is not None else p
        probs = torch.zeros_like(ref)
        probs[torch.arange(ref.shape[0]), tokens[:, state["step"]]] = 1.0
        state["step"] += 1
        return probs

    return choose


# -- correctness of the cached loop ---------------------------------------------------------------------


@pytest.mark.parametrize(("student_kind", "teacher_kind"), [("gpt2", "llama"), ("llama", "gpt2")])
def test_cached_decoding_matches_full_forward(student_kind, teacher_kind):
    student, teacher = tiny_model(student_kind, 0), tiny_model(teacher_kind, 1)
    prompt_ids, prompt_mask = left_padded([2, 7, 5, 1])
    out = decode(
        prompt_ids,
        prompt_mask,
        student=student,
        teacher=teacher,
        params=GenerationParams(max_new_tokens=12),
        choose=mixture(0.5),
        generator=torch.Generator().manual_seed(3),
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    assert out.response_ids.shape[0] == 4 and out.response_ids.shape[1] <= 12
    for model, got in ((student, out.student_logprobs), (teacher, out.teacher_logprobs)):
        want = full_forward_logprobs(model, prompt_ids, prompt_mask, out.response_ids, out.response_mask)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # valid positions carry real log-probs (non-zero), masked ones are zero
    valid = out.response_mask.bool()
    assert (out.student_logprobs[valid] < 0).all()
    assert (out.student_logprobs[~valid] == 0).all()


@pytest.mark.parametrize("kind", ["opt", "bloom", "qwen2"])
def test_cached_decoding_matches_full_forward_other_families(kind):
    model = tiny_model(kind, 0)
    prompt_ids, prompt_mask = left_padded([2, 7, 5])
    out = decode(
        prompt_ids,
        prompt_mask,
        student=model,
        params=GenerationParams(max_new_tokens=8),
        generator=torch.Generator().manual_seed(0),
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    want = full_forward_logprobs(model, prompt_ids, prompt_mask, out.response_ids, out.response_mask)
    torch.testing.assert_close(out.student_logprobs, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_batching_invariance(kind):
    model = tiny_model(kind, 2)
    prompt_ids, prompt_mask = left_padded([3, 8, 5], seed=4)
    params = GenerationParams(max_new_tokens=10)
    batch = decode(
        prompt_ids,
        prompt_mask,
        student=model,
        params=params,
        generator=torch.Generator().manual_seed(0),
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    for i in range(3):
        keep = prompt_mask[i].bool()
        alone = decode(
            prompt_ids[i : i + 1, keep],
            prompt_mask[i : i + 1, keep],
            student=model,
            params=params,
            choose=forcing(batch.response_ids[i : i + 1]),
            eos_token_id=EOS,
            pad_token_id=PAD,
        )
        n = int(batch.response_mask[i].sum())
        assert alone.response_ids.shape[1] == n
        assert torch.equal(alone.response_ids[0], batch.response_ids[i, :n])
        assert torch.equal(alone.response_mask[0], batch.response_mask[i, :n])
        torch.testing.assert_close(alone.student_logprobs[0], batch.student_logprobs[i, :n], atol=1e-5, rtol=0)


def test_sampling_probs_equal_student_probs_without_processing():
    model = tiny_model("gpt2")
    prompt_ids, prompt_mask = left_padded([4, 2])
    out = decode(
        prompt_ids,
        prompt_mask,
        student=model,
        generator=torch.Generator().manual_seed(0),
        params=GenerationParams(max_new_tokens=6),
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    torch.testing.assert_close(out.sampling_probs, torch.exp(out.student_logprobs), atol=1e-6, rtol=1e-5)
    assert out.teacher_logprobs is None


# -- stopping, masks, determinism -------------------------------------------------------------------------


class CountingModel(torch.nn.Module):
    """Wraps a model as a DeepSpeed engine does (``.module``) and counts forward passes."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.calls = 0

    def forward(self, **kwargs):
        self.calls += 1
        return self.module(**kwargs)


def test_eos_ends_each_row_and_masks_what_follows():
    model = tiny_model("llama")
    prompt_ids, prompt_mask = left_padded([3, 5, 2])
    other = 7
    script = torch.tensor(
        [
            [other, EOS, other, other, other, other],  # ends at step 1
            [other, other, other, 5, other, other],  # never ends (EOS list is [2, 5] below, so ends at step 3)
            [other] * 6,  # runs to max_new_tokens
        ]
    )
    out = decode(
        prompt_ids,
        prompt_mask,
        student=model,
        params=GenerationParams(max_new_tokens=6),
        choose=forcing(script),
        eos_token_id=[EOS, 5],
        pad_token_id=PAD,
    )
    assert out.response_mask.tolist() == [[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]
    assert out.response_ids.tolist() == [
        [other, EOS, PAD, PAD, PAD, PAD],
        [other, other, other, 5, PAD, PAD],
        [other] * 6,
    ]
    assert out.response_mask.dtype == prompt_mask.dtype
    ended = ~out.response_mask.bool()
    assert (out.student_logprobs[ended] == 0).all()
    assert (out.sampling_probs[ended] == 1).all()
    assert (out.sampling_probs[~ended] == 1).all()  # forced tokens have probability 1 under the one-hot


def test_stops_early_when_every_row_has_ended():
    counted = CountingModel(tiny_model("gpt2"))
    prompt_ids, prompt_mask = left_padded([3, 4])
    script = torch.tensor([[9, EOS] + [9] * 8, [9, 9, EOS] + [9] * 7])
    out = decode(
        prompt_ids,
        prompt_mask,
        student=counted,
        params=GenerationParams(max_new_tokens=10),
        choose=forcing(script),
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    assert out.response_ids.tolist() == [[9, EOS, PAD], [9, 9, EOS]]
    assert out.response_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert counted.calls == 3  # no forward pass after the last token


def test_synced_decoding_steps_until_every_rank_is_done(monkeypatch):
    counted = CountingModel(tiny_model("gpt2"))
    checks = []

    def other_rank_needs_four_steps(local_done, device):
        checks.append(local_done)
        return local_done and len(checks) >= 4

    monkeypatch.setattr(generation, "all_ranks_done", other_rank_needs_four_steps)
    prompt_ids, prompt_mask = left_padded([3, 4])
    script = torch.tensor([[9, EOS] + [9] * 8, [EOS] * 10])
    out = decode(
        prompt_ids,
        prompt_mask,
        student=counted,
        params=GenerationParams(max_new_tokens=10),
        choose=forcing(script),
        eos_token_id=EOS,
        pad_token_id=PAD,
        synced=True,
    )
    assert checks == [False, True, True, True]
    assert counted.calls == 4  # kept stepping for the other rank
    assert out.response_ids.tolist() == [[9, EOS], [EOS, PAD]]  # trimmed to this rank's longest response
    assert out.response_mask.tolist() == [[1, 1], [1, 0]]


@pytest.mark.parametrize("max_new_tokens", [1, 5])
def test_max_new_tokens_is_respected(max_new_tokens):
    counted = CountingModel(tiny_model("gpt2"))
    prompt_ids, prompt_mask = left_padded([3, 6])
    out = decode(
        prompt_ids,
        prompt_mask,
        student=counted,
        params=GenerationParams(max_new_tokens=max_new_tokens),
        generator=torch.Generator().manual_seed(0),
        eos_token_id=None,
        pad_token_id=PAD,
    )
    assert out.response_ids.shape == (2, max_new_tokens)
    assert out.response_mask.all()
    assert counted.calls == max_new_tokens


def test_deterministic_for_a_fixed_generator_seed():
    model = tiny_model("gpt2")
    prompt_ids, prompt_mask = left_padded([3, 6, 4])
    global_state = torch.get_rng_state()

    def run(seed):
        return decode(
            prompt_ids,
            prompt_mask,
            student=model,
            params=GenerationParams(max_new_tokens=8),
            generator=torch.Generator().manual_seed(seed),
            eos_token_id=EOS,
            pad_token_id=PAD,
        )

    a, b, c = run(11), run(11), run(12)
    assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.student_logprobs, b.student_logprobs)
    assert not torch.equal(a.response_ids, c.response_ids)
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is not used


def test_models_restored_to_their_modes_and_no_grad():
    model = tiny_model("gpt2")
    model.train()
    model.transformer.h[0].eval()  # a submodule with its own mode
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    prompt_ids, prompt_mask = left_padded([3])
    out = decode(
        prompt_ids,
        prompt_mask,
        student=model,
        params=GenerationParams(max_new_tokens=3),
        generator=torch.Generator().manual_seed(0),
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    assert seen and not any(seen)  # eval mode while decoding
    assert model.training and model.transformer.h[1].training
    assert not model.transformer.h[0].training
    assert not out.student_logprobs.requires_grad

    teacher = tiny_model("llama").eval()
    with eval_mode([teacher]):
        pass
    assert not teacher.training


def test_different_vocabulary_sizes_are_cut_to_the_shared_rows():
    student, teacher = tiny_model("gpt2", vocab=VOCAB), tiny_model("llama", vocab=VOCAB + 8)
    prompt_ids, prompt_mask = left_padded([2, 4])
    out = decode(
        prompt_ids,
        prompt_mask,
        student=student,
        teacher=teacher,
        choose=mixture(1.0),
        params=GenerationParams(max_new_tokens=6),
        generator=torch.Generator().manual_seed(0),
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    assert int(out.response_ids.max()) < VOCAB


def test_needs_a_model():
    with pytest.raises(ValueError, match="student or a teacher"):
        decode(torch.ones(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.long))


# -- the sampling distribution ------------------------------------------------------------------------------

NEG = float("-inf")


def test_top_k_filter_hand_examples():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert top_k_filter(logits, 2).tolist() == [[NEG, 3.0, 2.0, NEG]]
    assert top_k_filter(logits, 1).tolist() == [[NEG, 3.0, NEG, NEG]]
    assert torch.equal(top_k_filter(logits, 0), logits)
    assert torch.equal(top_k_filter(logits, 4), logits)
    assert torch.equal(top_k_filter(logits, 10), logits)
    ties = torch.tensor([[1.0, 2.0, 2.0, 0.0]])
    assert top_k_filter(ties, 1).tolist() == [[NEG, 2.0, 2.0, NEG]]  # ties with the k-th value are kept


def test_top_p_filter_hand_examples():
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])
    logits = probs.log()

    def kept(p):
        return torch.isfinite(top_p_filter(logits, p))[0].tolist()

    assert kept(0.4) == [False, True, False, False]  # the top token alone has 0.5 >= 0.4
    assert kept(0.75) == [False, True, False, True]  # 0.5 + 0.3
    assert kept(0.85) == [True, True, False, True]  # 0.5 + 0.3 + 0.15
    assert kept(0.99) == [True, True, True, True]
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    # rows are filtered independently
    two = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]).log()
    assert torch.isfinite(top_p_filter(two, 0.6)).tolist() == [[True, False, False], [False, False, True]]


def test_processed_probs_temperature_then_top_k_then_top_p():
    logits = torch.tensor([[0.4, 0.3, 0.2, 0.1]]).log()
    torch.testing.assert_close(
        processed_probs(logits, GenerationParams(temperature=0.5)), torch.softmax(logits / 0.5, -1)
    )
    # top-k 2 leaves (4/7, 3/7); top-p 0.5 then keeps the first only. (top-p first would keep two.)
    assert processed_probs(logits, GenerationParams(top_k=2, top_p=0.5)).tolist() == [[1.0, 0.0, 0.0, 0.0]]
    torch.testing.assert_close(
        processed_probs(logits, GenerationParams(top_k=2)), torch.tensor([[4 / 7, 3 / 7, 0.0, 0.0]])
    )
    # temperature comes before the filters: at T=4 the distribution is flat enough that top-p 0.5 keeps two
    probs = processed_probs(logits, GenerationParams(temperature=4.0, top_p=0.5))
    assert (probs > 0).tolist() == [[True, True, False, False]]
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-6)


def test_mixture_choice():
    q, p = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert mixture(0.25)(q, p).tolist() == [[0.75, 0.25]]
    assert torch.equal(mixture(0.0)(q, p), q) and torch.equal(mixture(1.0)(q, p), p)
    with pytest.raises(ValueError):
        mixture(0.5)(q, None)


@pytest.mark.parametrize(
    "bad", [{"temperature": 0}, {"top_p": 0}, {"top_p": 1.5}, {"top_k": -1}, {"max_new_tokens": 0}, {"topk": 3}]
)
def test_generation_params_validation(bad):
    with pytest.raises(ValidationError):
        GenerationParams.model_validate(bad)


def test_generation_params_defaults():
    p = GenerationParams()
    assert (p.max_new_tokens, p.temperature, p.top_k, p.top_p) == (256, 1.0, 0, 1.0)
