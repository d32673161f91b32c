"""Checks of a model family (:class:`~minillm_distill.model_family.ModelFamily`), offline, on a tiny model it
builds itself with the byte-level tokenizer:

* ``declaration``: ``model_types`` is a tuple of non-empty strings (empty: the family is chosen by name only,
  ``family:`` in a recipe);
* ``scratch model``: ``build_config`` gives a config a causal LM is built from, whose ``model_type`` the family
  claims when it claims any (else its saved models would load through another family), and a forward pass gives
  finite logits over at least the tokenizer's vocabulary (a family that cannot build from scratch is skipped);
* ``save and load``: the model saved with ``save_pretrained`` loads back through the family's ``load_model``
  and ``load_tokenizer`` with the same logits and token ids;
* ``prompt``: ``format_prompt`` returns text holding the instruction (and the input, when given), the same
  text every time.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import torch

from minillm_distill.plugin_check.cases import Case, Cases
from minillm_distill.plugin_check.result import CheckFailed, CheckPlan, fail_if

#: a recipe's ``scratch:`` options for the tiny model (those the family's ``Params`` has)
TINY = {"layers": 1, "hidden": 16, "heads": 2, "kv_heads": 2, "intermediate": 32, "max_positions": 64}
TEXT = "Name a colour, then add two and three."


def _family(cls: type) -> Any:
    return cls()


def _tiny(cls: type) -> tuple[Any, Any, Any] | None:
    """(family, tokenizer, model) built from scratch; None when the family cannot build from scratch."""
    from transformers import AutoModelForCausalLM

    from minillm_distill.byte_tokenizer import byte_level_tokenizer
    from minillm_distill.models import scratch_config
    from minillm_distill.recipe.schema import ModelSpec

    family = _family(cls)
    tokenizer = family.prepare_tokenizer(byte_level_tokenizer())
    scratch = {k: v for k, v in TINY.items() if k in cls.Params.model_fields}
    spec = ModelSpec(family=cls.name, scratch=scratch, tokenizer="byte")
    try:
        family.build_config(cls.Params.model_validate(scratch), vocab_size=len(tokenizer), bos_token_id=0,
                            eos_token_id=0, pad_token_id=0)  # fmt: skip
    except NotImplementedError:
        return None
    config = scratch_config(spec, family, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config).eval()
    return family, tokenizer, model


def _logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def _check_declaration(cls: type, case: Case) -> None:
    types = cls.model_types
    fail_if(not isinstance(types, tuple), f"model_types is {type(types).__name__}, not a tuple of strings")
    fail_if(not all(isinstance(t, str) and t for t in types), f"model_types {types!r} holds a non-string or ''")


def _check_scratch(cls: type, case: Case) -> None:
    built = _tiny(cls)
    if built is None:
        return  # build_config is not implemented: nothing to build (recipes name a path for this family)
    _, tokenizer, model = built
    model_type = getattr(model.config, "model_type", None)
    claims = bool(cls.model_types) and not cls.fallback
    fail_if(
        claims and not cls.matches(str(model_type)),
        f"the config's model_type {model_type!r} is not in model_types {cls.model_types!r}: its saved models would "
        "load through another family",
    )
    ids = torch.tensor([tokenizer(TEXT)["input_ids"][:16]])
    logits = _logits(model, ids)
    fail_if(logits.shape[:2] != ids.shape, f"logits of shape {tuple(logits.shape)} for ids {tuple(ids.shape)}")
    fail_if(logits.size(-1) < len(tokenizer), f"{logits.size(-1)} logits per position, fewer than the "
            f"tokenizer's {len(tokenizer)} tokens")  # fmt: skip
    fail_if(not bool(torch.isfinite(logits).all()), "the tiny model's logits have nan/inf values")


def _check_round_trip(cls: type, case: Case) -> None:
    built = _tiny(cls)
    if built is None:
        return
    family, tokenizer, model = built
    ids = torch.tensor([tokenizer(TEXT)["input_ids"][:16]])
    with tempfile.TemporaryDirectory(prefix="minillm-check-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            back = family.load_model(str(Path(tmp)), dtype=torch.float32).eval()
            tok = family.load_tokenizer(str(Path(tmp)))
        except Exception as exc:
            raise CheckFailed(f"the saved tiny model does not load back: {type(exc).__name__}: {exc}") from exc
        fail_if(tok(TEXT)["input_ids"][:16] != ids[0].tolist(), "the saved tokenizer gives other token ids")
        diff = (_logits(back, ids) - _logits(model, ids)).abs().max()
    fail_if(float(diff) > 1e-5, f"the loaded model's logits differ from the saved one's by {float(diff):.3g}")


def _check_prompt(cls: type, case: Case) -> None:
    family = _family(cls)
    plain = family.format_prompt("Name a colour.")
    fail_if(not isinstance(plain, str), f"format_prompt returned {type(plain).__name__}, not a string")
    fail_if("Name a colour." not in plain, f"the prompt {plain!r} does not hold the instruction")
    with_input = family.format_prompt("Summarize the text.", "The cat sat on the mat.")
    fail_if("The cat sat on the mat." not in with_input, f"the prompt {with_input!r} does not hold the input")
    fail_if(family.format_prompt("Name a colour.") != plain, "format_prompt gives other text on a second call")


_CHECKS = {
    "declaration": _check_declaration,
    "scratch model": _check_scratch,
    "save and load": _check_round_trip,
    "prompt": _check_prompt,
}


def _quiet(fn: Any) -> Any:
    @functools.wraps(fn)
    def run(*args: Any) -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Writing model shards" bars between the check lines
        try:
            fn(*args)
        finally:
            hf_logging.enable_progress_bar()

    return run


def plan_model_family(cls: type, name: str | None = None) -> CheckPlan:
    """The checks of a model family class (one case: the tiny model), not yet run."""
    checks = {check: functools.partial(_quiet(fn), cls) for check, fn in _CHECKS.items()}
    return CheckPlan("model_family", name or cls.name, Cases([Case({}, "tiny")]), checks)
