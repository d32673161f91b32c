"""``min_new_tokens``: EOS cannot be drawn before a response has that many tokens (generation options of every
generating sampler), and a recipe asking for more than ``max_new_tokens`` is rejected."""

from __future__ import annotations

import pytest
import torch
from helpers import ROOT
from pydantic import ValidationError

from minillm_distill.generation import GenerationParams, decode, mixture, with_eos_banned

VOCAB, PAD, EOS = 32, 0, 2


def tiny_model(kind: str, seed: int = 0, init: float = 0.02):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    common = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=EOS, pad_token_id=PAD, initializer_range=init)
    if kind == "gpt2":
        config = GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=2, **common)
    else:
        config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, **common)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).float()


def left_padded(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), max(lengths)), PAD, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, ids.shape[1] - n :] = torch.randint(3, VOCAB, (n,), generator=g)
        mask[i, ids.shape[1] - n :] = 1
    return ids, mask


def uncached_probs(model, prompt_ids, prompt_mask, response_ids, response_mask) -> torch.Tensor:
    """``[B, T, V]`` next-token distributions at the response positions, from one uncached forward."""
    ids = torch.cat([prompt_ids, response_ids], 1)
    mask = torch.cat([prompt_mask, response_mask.to(prompt_mask.dtype)], 1)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    return torch.softmax(logits[:, prompt_ids.shape[1] - 1 : -1].float(), -1)


class EosBiased(torch.nn.Module):
    """A causal LM whose EOS logits are raised by ``bias`` (so EOS is drawn first almost surely); wrapped as a
    DeepSpeed engine is (``.module``), so decode sees the inner model's forward signature."""

    def __init__(self, module: torch.nn.Module, bias: float, eos: tuple[int, ...] = (EOS,)) -> None:
        super().__init__()
        self.module, self.bias, self.eos = module, bias, list(eos)

    def forward(self, **kwargs):
        out = self.module(**kwargs)
        logits = out.logits.clone()
        logits[..., self.eos] += self.bias
        out.logits = logits
        return out


def _decode(model, params: GenerationParams, *, teacher=None, choose=None, eos=EOS, seed: int = 0):
    prompt_ids, prompt_mask = left_padded([3, 6, 4, 5], seed=1)
    return decode(
        prompt_ids,
        prompt_mask,
        student=model,
        teacher=teacher,
        params=params,
        choose=choose,
        generator=torch.Generator().manual_seed(seed),
        eos_token_id=eos,
        pad_token_id=PAD,
    )


def test_without_min_new_tokens_a_likely_eos_ends_every_row_at_once():
    out = _decode(EosBiased(tiny_model("gpt2"), 30.0), GenerationParams(max_new_tokens=8))
    assert out.response_ids.tolist() == [[EOS]] * 4
    assert out.response_mask.tolist() == [[1]] * 4


@pytest.mark.parametrize("n", [1, 5, 8])
def test_no_row_ends_before_min_new_tokens(n):
    out = _decode(EosBiased(tiny_model("gpt2"), 30.0), GenerationParams(max_new_tokens=8, min_new_tokens=n))
    lengths = out.response_mask.sum(1).tolist()
    assert all(length >= n for length in lengths)
    assert not (out.response_ids[:, :n] == EOS).any()
    if n < 8:  # EOS is still almost certain as soon as it is allowed again
        assert lengths == [n + 1] * 4
        assert (out.response_ids[:, n] == EOS).all()


def test_every_eos_id_is_banned():
    model = EosBiased(tiny_model("llama"), 30.0, eos=(EOS, 5))
    out = _decode(model, GenerationParams(max_new_tokens=6, min_new_tokens=3), eos=[EOS, 5])
    assert not torch.isin(out.response_ids[:, :3], torch.tensor([EOS, 5])).any()
    assert torch.isin(out.response_ids[:, 3], torch.tensor([EOS, 5])).all()


def test_teacher_mixed_decoding_bans_eos_in_both_distributions():
    student = EosBiased(tiny_model("gpt2", 0), 30.0)
    teacher = EosBiased(tiny_model("llama", 1), 30.0)
    out = _decode(student, GenerationParams(max_new_tokens=6, min_new_tokens=4), teacher=teacher, choose=mixture(0.5))
    assert out.response_mask.sum(1).tolist() == [5] * 4
    assert not (out.response_ids[:, :4] == EOS).any()


def test_sampling_distribution_is_renormalised_without_eos_and_logprobs_stay_unprocessed():
    """Before ``min_new_tokens`` a token is drawn with probability q(y) / (1 - q(EOS)); the returned log-probs
    are still those of the unprocessed distribution (EOS included), checked against an uncached forward."""
    model = EosBiased(tiny_model("gpt2", 3), 2.0)  # q(EOS) about 0.2
    n = 4
    out = _decode(model, GenerationParams(max_new_tokens=6, min_new_tokens=n))
    prompt_ids, prompt_mask = left_padded([3, 6, 4, 5], seed=1)
    q = uncached_probs(model, prompt_ids, prompt_mask, out.response_ids, out.response_mask)
    q_chosen = q.gather(-1, out.response_ids[..., None]).squeeze(-1)
    live = out.response_mask.bool()
    torch.testing.assert_close(out.student_logprobs[live], torch.log(q_chosen[live]), atol=1e-5, rtol=0)
    expected = torch.where(torch.arange(q.shape[1]) < n, q_chosen / (1 - q[..., EOS]), q_chosen)
    torch.testing.assert_close(out.sampling_probs[live], expected[live], atol=1e-5, rtol=1e-4)
    assert (q[:, :n, EOS] > 0.05).all()  # the ban changed the distribution at every checked step


def test_default_is_unchanged_for_the_same_generator():
    """min_new_tokens 0 (the default) draws the same tokens as before, from the unprocessed distribution."""
    model = EosBiased(tiny_model("gpt2", 3), 2.0)
    a = _decode(model, GenerationParams(max_new_tokens=6), seed=4)
    b = _decode(model, GenerationParams(max_new_tokens=6, min_new_tokens=0), seed=4)
    assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.sampling_probs, b.sampling_probs)
    live = a.response_mask.bool()
    torch.testing.assert_close(a.sampling_probs[live], torch.exp(a.student_logprobs[live]), atol=1e-6, rtol=1e-5)
    assert (a.response_mask.sum(1) < 6).any()  # some row did end early at an EOS


def test_with_eos_banned_merges_with_other_bans():
    eos = torch.tensor([2, 40])  # 40 is outside the shared width and ignored
    other = torch.zeros(2, 4, dtype=torch.bool)
    other[0, 1] = True
    other[1, [0, 1, 3]] = True  # with EOS (2) this row would ban everything: only EOS stays banned
    merged = with_eos_banned(other, eos, 2, 4)
    assert merged.tolist() == [[False, True, True, False], [False, False, True, False]]
    assert with_eos_banned(None, eos, 1, 4).tolist() == [[False, False, True, False]]
    assert with_eos_banned(None, torch.tensor([0, 1]), 1, 2).tolist() == [[False, False]]  # EOS is everything


def test_min_new_tokens_above_max_new_tokens_is_rejected():
    with pytest.raises(ValidationError, match=r"min_new_tokens \(9\) exceeds max_new_tokens \(8\)"):
        GenerationParams(max_new_tokens=8, min_new_tokens=9)
    assert GenerationParams(max_new_tokens=8, min_new_tokens=8).min_new_tokens == 8


def test_recipe_with_min_above_max_is_an_invalid_recipe(cli, tmp_path):
    text = (ROOT / "recipes" / "tiny" / "gkd.yaml").read_text()
    text = text.replace("data/instructions.jsonl", str(ROOT / "recipes" / "tiny" / "data" / "instructions.jsonl"))
    assert "  max_new_tokens: 32\n" in text
    path = tmp_path / "recipe.yaml"
    path.write_text(text.replace("  max_new_tokens: 32\n", "  max_new_tokens: 32\n  min_new_tokens: 40\n"))
    res = cli("recipes", "validate", path)
    assert res.code == 3, res.output
    assert "Traceback" not in res.output
    assert "min_new_tokens (40) exceeds max_new_tokens (32)" in " ".join(res.output.split())
    assert "sampler" in res.output
