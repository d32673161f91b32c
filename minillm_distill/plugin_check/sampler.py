"""Checks of a sampler (:class:`~minillm_distill.sampler.Sampler`) on two tiny GPT-2 models built from configs
(a student and a teacher sharing the byte-level tokenizer, both nudged towards EOS so that responses end at
different lengths), on three left-padded prompts with gold responses.

Every option set of :func:`~minillm_distill.plugin_check.cases.param_cases` is sampled once (``max_new_tokens``
starts at 8 when the sampler has that option) and its :class:`~minillm_distill.rollout.RolloutBatch` checked:

* ``contract``: a ``RolloutBatch`` with the prompts as given, ``response_ids``/``response_mask`` ``[B, T]``
  (long ids below the vocabulary size, a 0/1 mask whose ones are a prefix of each row), every per-token
  tensor ``[B, T]`` (``teacher_hidden`` ``[B, T, H]``, zero at masked positions), finite importance weights
  above 0, and ``records_logprobs`` kept; a sampler that needs no teacher also samples without one;
* ``EOS inside the mask``: a row's first EOS is its last masked-in token, and a row shorter than the batch
  ends with EOS;
* ``log-probs``: ``behaviour_logprobs`` / ``teacher_logprobs`` equal the student's / teacher's unprocessed
  log-probs of the response tokens (one forward over prompt + response), 0 at masked positions;
* ``reproducible``: the same generator seed gives the same rollout;
* ``checkpointable``: ``state_dict()`` survives JSON, and the rollout (``extras`` included) survives the
  checkpoint format (JSON + safetensors, no pickle);
* ``synced (ZeRO-3)``: with ``ctx.synced`` set and another rank simulated that is still decoding (minillm's
  rank synchronisation in :func:`~minillm_distill.generation.decode` answers "not done"), a sampler that runs the
  models must go through that synchronisation (``generate_rollout``, or ``decode(..., synced=ctx.synced)``),
  and its rollout must be the one it returns unsynced (options with ``max_new_tokens`` 1 decode one step
  and are skipped). A loop of its own that stops when its rows are done
  would hang under ZeRO-3 with several ranks (each forward pass is a collective there); this check cannot tell
  a custom loop that synchronises by other means, so use ``decode``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from minillm_distill.plugin_check.cases import Case, param_cases
from minillm_distill.plugin_check.result import CheckFailed, CheckPlan, CheckResult, fail_if
from minillm_distill.rollout import PromptBatch, RolloutBatch
from minillm_distill.rollout_contract import rollout_problems, state_problem
from minillm_distill.sampler import Sampler, SamplerContext

PROMPTS = ("Name a colour.", "Add two and three.", "Hi")
RESPONSES = ("Blue.", "Five, because 2 + 3 = 5.", "Hello!")
MAX_NEW_TOKENS = 8
LOGPROB_TOLERANCE = 1e-4
SAMPLER_CHECKS = ("contract", "EOS inside the mask", "log-probs", "reproducible", "checkpointable", "synced (ZeRO-3)")


@dataclass
class CheckModels:
    """The tiny models, tokenizer and prompt batch every sampler check uses."""

    student: Any
    teacher: Any
    tokenizer: Any
    batch: PromptBatch
    eos: list[int]
    vocab: int


def _towards_eos(model: Any, eos: int, nats: float) -> None:
    """Raise EOS's logit by about ``nats`` at every position (through the final layer norm's bias)."""
    embedding = model.get_output_embeddings().weight
    with torch.no_grad():
        row = embedding[eos]
        model.transformer.ln_f.bias.add_(row * (nats / float(row.pow(2).sum())))


@functools.lru_cache(maxsize=1)
def build_check_models() -> CheckModels:
    """The tiny models and prompts (built once per process: samplers only decode with them)."""
    from minillm_distill.model_facts import eos_token_ids
    from minillm_distill.models import load_model
    from minillm_distill.recipe.schema import ModelSpec

    def spec(layers: int, hidden: int) -> ModelSpec:
        size = {"layers": layers, "hidden": hidden, "heads": 2, "max_positions": 128}
        return ModelSpec(family="gpt2", scratch=size, tokenizer="byte")

    student = load_model(spec(1, 32), seed=1)
    teacher = load_model(spec(2, 48), seed=2)
    tok = student.tokenizer
    eos = int(tok.eos_token_id)
    _towards_eos(student.model, eos, 4.0)
    _towards_eos(teacher.model, eos, 5.0)
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    responses = [tok(r)["input_ids"] + [eos] for r in RESPONSES]
    p_len, r_len, b = max(map(len, prompts)), max(map(len, responses)), len(PROMPTS)
    prompt_ids = torch.full((b, p_len), int(tok.pad_token_id), dtype=torch.long)
    prompt_mask = torch.zeros(b, p_len, dtype=torch.long)
    response_ids = torch.full((b, r_len), int(tok.pad_token_id), dtype=torch.long)
    response_mask = torch.zeros(b, r_len, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        prompt_ids[i, p_len - len(p) :], prompt_mask[i, p_len - len(p) :] = torch.tensor(p), 1
        response_ids[i, : len(r)], response_mask[i, : len(r)] = torch.tensor(r), 1
    batch = PromptBatch(prompt_ids, prompt_mask, response_ids, response_mask)
    ids = eos_token_ids(tok, student.model, teacher.model)
    return CheckModels(student.model, teacher.model, tok, batch, ids, int(student.model.config.vocab_size))


def _context(models: CheckModels, *, teacher: bool = True, seed: int = 7, synced: bool = False) -> SamplerContext:
    return SamplerContext(
        student=models.student,
        teacher=models.teacher if teacher else None,
        tokenizer=models.tokenizer,
        step=3,
        generator=torch.Generator().manual_seed(seed),
        seed=11,
        synced=synced,
    )


def _sample(cls: type[Sampler], case: Case, models: CheckModels, **ctx: Any) -> RolloutBatch:
    sampler = cls(cls.Params.model_validate(case.options))
    batch = models.batch if cls.needs_responses else PromptBatch(models.batch.prompt_ids, models.batch.prompt_mask)
    out = sampler.sample(batch, _context(models, **ctx))
    fail_if(not isinstance(out, RolloutBatch), f"sample returned {type(out).__name__}, not a RolloutBatch")
    return out


def _check_contract(cls: type[Sampler], case: Case, models: CheckModels, rollout: RolloutBatch) -> None:
    r = rollout
    problems = rollout_problems(r.to("cpu"), models.batch, models.vocab)
    fail_if(bool(problems), "; ".join(problems))
    ids, valid = r.response_ids.cpu(), r.response_mask.cpu().bool()
    if r.teacher_hidden is not None:
        fail_if(bool((r.teacher_hidden.cpu()[~valid] != 0).any()), "teacher_hidden is not zero at masked positions")
    if cls.records_logprobs:
        fail_if(r.behaviour_logprobs is None, "records_logprobs is True but the rollout has no behaviour_logprobs")
    if cls.records_teacher_logprobs:
        fail_if(r.teacher_logprobs is None, "records_teacher_logprobs is True but the rollout has no teacher_logprobs")
    if not cls.needs_teacher:
        alone = _sample(cls, case, models, teacher=False)
        fail_if(alone.response_ids.size(0) != ids.size(0), "without a teacher the rollout has other rows")


def _check_eos(cls: type[Sampler], case: Case, models: CheckModels, rollout: RolloutBatch) -> None:
    ids, mask = rollout.response_ids.cpu(), rollout.response_mask.cpu().long()
    eos = torch.tensor(models.eos)
    lengths = mask.sum(1)
    for row in range(ids.size(0)):
        n = int(lengths[row])
        is_eos = torch.isin(ids[row, :n], eos).nonzero().flatten().tolist()
        if is_eos and is_eos[0] != n - 1:
            raise CheckFailed(f"row {row}: EOS at position {is_eos[0]} but the mask runs to {n - 1} (EOS must end it)")
        if n < ids.size(1) and not is_eos:
            raise CheckFailed(f"row {row} ends after {n} of {ids.size(1)} tokens without an EOS inside the mask")


def _rescored(model: Any, rollout: RolloutBatch, vocab: int) -> torch.Tensor:
    from minillm_distill.scoring.forward import sequence_inputs

    batch = rollout.to("cpu")
    batch = replace(batch, prompt_mask=batch.prompt_mask.long(), response_mask=batch.response_mask.long())
    with torch.no_grad():
        logits = model(**sequence_inputs(batch)).logits.float()
    p, t = batch.prompt_ids.size(1), batch.response_ids.size(1)
    logp = torch.log_softmax(logits[:, p - 1 : p - 1 + t, :vocab], dim=-1)
    return logp.gather(-1, batch.response_ids[..., None])[..., 0]


def _check_logprobs(cls: type[Sampler], case: Case, models: CheckModels, rollout: RolloutBatch) -> None:
    valid = rollout.response_mask.cpu().bool()
    for name, model in (("behaviour_logprobs", models.student), ("teacher_logprobs", models.teacher)):
        got = getattr(rollout, name)
        if got is None:
            continue
        got = got.cpu().float()
        fail_if(bool((got[~valid] != 0).any()), f"{name} is not 0 at masked positions")
        want = _rescored(model, rollout, models.vocab)
        diff = (got - want).abs()[valid]
        if diff.numel() and float(diff.max()) > LOGPROB_TOLERANCE:
            raise CheckFailed(
                f"{name} differ from the model's unprocessed log-probs of the response tokens by up to "
                f"{float(diff.max()):.3g} (temperature 1, no top-k/top-p, at sampling time)"
            )


def _check_reproducible(cls: type[Sampler], case: Case, models: CheckModels, rollout: RolloutBatch) -> None:
    again = _sample(cls, case, models)
    same = tuple(again.response_ids.shape) == tuple(rollout.response_ids.shape) and torch.equal(
        again.response_ids.cpu(), rollout.response_ids.cpu()
    )
    fail_if(not same, "the same generator seed gave different responses (draw only from ctx.generator)")


def _check_checkpointable(cls: type[Sampler], case: Case, models: CheckModels, rollout: RolloutBatch) -> None:
    from minillm_distill.state_files import load_state, save_state

    sampler = cls(cls.Params.model_validate(case.options))
    sampler.sample(models.batch, _context(models))
    state = sampler.state_dict()
    problem = state_problem(state)
    fail_if(problem is not None, str(problem))
    text = json.dumps(state)
    cls(cls.Params.model_validate(case.options)).load_state_dict(json.loads(text))
    with tempfile.TemporaryDirectory(prefix="minillm-check-") as tmp:
        try:
            save_state(rollout, Path(tmp) / "r.json", Path(tmp) / "r.safetensors")
        except TypeError as exc:
            raise CheckFailed(f"the rollout cannot be saved in a checkpoint: {exc}") from exc
        back = load_state(Path(tmp) / "r.json", Path(tmp) / "r.safetensors")
    fail_if(not torch.equal(back.response_ids.cpu(), rollout.response_ids.cpu()), "the rollout changed when saved")


@contextlib.contextmanager
def _peer_still_decoding() -> Iterator[list[int]]:
    """Make minillm's rank synchronisation answer "another rank is not done" (as a slower rank would), and
    count how often it is asked."""
    from minillm_distill import generation

    asked: list[int] = []
    original = generation.all_ranks_done

    def not_done(local_done: bool, device: torch.device) -> bool:
        asked.append(int(local_done))
        return False

    generation.all_ranks_done = not_done  # type: ignore[assignment]
    try:
        yield asked
    finally:
        generation.all_ranks_done = original  # type: ignore[assignment]


@contextlib.contextmanager
def _forward_count(*models: Any) -> Iterator[list[int]]:
    calls = [0]

    def hook(module: Any, args: Any, kwargs: Any) -> None:
        calls[0] += 1

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in models]
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def _check_synced(cls: type[Sampler], case: Case, models: CheckModels, rollout: RolloutBatch) -> None:
    sampler = cls(cls.Params.model_validate(case.options))
    if getattr(sampler.params, "max_new_tokens", 2) < 2:
        return  # one decoding step: every rank runs exactly one forward pass, nothing to synchronise
    batch = models.batch if cls.needs_responses else PromptBatch(models.batch.prompt_ids, models.batch.prompt_mask)
    with _forward_count(models.student, models.teacher) as calls, _peer_still_decoding() as asked:
        synced = sampler.sample(batch, _context(models, synced=True))
    if calls[0] and not asked:
        raise CheckFailed(
            f"with ctx.synced the models ran {calls[0]} forward passes without minillm's rank synchronisation: "
            "under ZeRO-3 with several ranks a rank that stops decoding first leaves the others waiting forever; "
            "decode with generate_rollout, or decode(..., synced=ctx.synced)"
        )
    same = tuple(synced.response_ids.shape) == tuple(rollout.response_ids.shape) and torch.equal(
        synced.response_ids.cpu(), rollout.response_ids.cpu()
    )
    fail_if(not same, "with ctx.synced (another rank still decoding) the rollout differs from the unsynced one")


_CHECKS = {
    "contract": _check_contract,
    "EOS inside the mask": _check_eos,
    "log-probs": _check_logprobs,
    "reproducible": _check_reproducible,
    "checkpointable": _check_checkpointable,
    "synced (ZeRO-3)": _check_synced,
}


def check_sampler(
    cls: type[Sampler], name: str | None = None, models: CheckModels | None = None, **deprecated: Any
) -> list[CheckResult]:
    """Every sampler check of ``cls`` over its option sets; one result per check. ``models``: what the checks
    run on (default :func:`build_check_models`; ``world=`` is its old name, accepted for one release)."""
    if "world" in deprecated:
        import warnings

        warnings.warn("check_sampler(world=...) is now check_sampler(models=...)", DeprecationWarning, stacklevel=2)
        models = models or deprecated.pop("world")
    if deprecated:
        raise TypeError(f"check_sampler() got unexpected keyword arguments {sorted(deprecated)}")
    return plan_sampler(cls, name, models).run()


def plan_sampler(cls: type[Sampler], name: str | None = None, models: CheckModels | None = None) -> CheckPlan:
    """The sampler checks of ``cls`` and its option sets, not yet run (the tiny models are built when a check
    first runs, unless ``models`` are given)."""
    name = name or getattr(cls, "name", cls.__name__)
    base = {"max_new_tokens": MAX_NEW_TOKENS} if "max_new_tokens" in cls.Params.model_fields else {}
    rollouts: dict[str, RolloutBatch] = {}
    given = models

    def models_() -> CheckModels:
        return given or build_check_models()

    def rollout_of(case: Case) -> RolloutBatch:
        if case.label not in rollouts:
            rollouts[case.label] = _sample(cls, case, models_())
        return rollouts[case.label]

    checks = {check: (lambda case, fn=fn: fn(cls, case, models_(), rollout_of(case))) for check, fn in _CHECKS.items()}
    return CheckPlan("sampler", name, param_cases(cls.Params, base), checks)
