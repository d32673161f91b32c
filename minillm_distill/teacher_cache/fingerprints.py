"""Fingerprints that tie a teacher cache to what it was captured from, computable without loading a model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from minillm_distill.teacher_cache.cache_format import DATA_RESPONSES, file_sha256

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def teacher_fingerprint(spec: Any, seed: int) -> str:
    """A model folder: sha256 over its config and weight files (names and contents); a from-scratch model: over
    its spec and the seed it is built with; a hub id: over its name and revision."""
    from minillm_distill.models import spec_source

    digest = hashlib.sha256()
    if spec.scratch is not None:
        digest.update(json.dumps({"spec": spec.model_dump(mode="json"), "seed": seed}, sort_keys=True).encode())
        return "scratch:" + digest.hexdigest()
    folder = Path(spec_source(spec))
    if not folder.is_dir():  # a hub id: its name and revision (the files are not here to hash)
        digest.update(f"{spec.path}@{spec.revision}".encode())
        return "hub:" + digest.hexdigest()
    files = sorted(p for p in folder.iterdir() if p.name == "config.json" or p.suffix in WEIGHT_SUFFIXES)
    for path in files:
        digest.update(path.name.encode() + b"\0" + file_sha256(path).encode())
    return "files:" + digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the vocabulary, the special tokens and the chat template."""
    body = {
        "vocab": sorted(tokenizer.get_vocab().items()),
        "special": sorted(map(str, tokenizer.all_special_tokens)),
        "chat_template": getattr(tokenizer, "chat_template", None),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(source: str, split: str) -> str:
    path = Path(source)
    if path.is_file():
        return "file:" + file_sha256(path)
    return "hub:" + hashlib.sha256(f"{source}:{split}".encode()).hexdigest()


def responses_setting(recipe: Any, plugins: Any) -> str:
    """Whose responses a cache for ``recipe`` follows (:attr:`CacheSettings.responses`): ``"data"``, or for a
    sampler that writes with the teacher alone, ``"teacher:"`` and its name and options. Not the seed: students
    of any seed train from one capture (which drew its responses with its recipe's seed)."""
    cls = plugins.samplers.get(recipe.sampler.name)
    if not getattr(cls, "teacher_writes", False):
        return DATA_RESPONSES
    params = cls.from_options(recipe.sampler.options).params
    options = params.model_dump(mode="json") if hasattr(params, "model_dump") else {}
    body = {"sampler": recipe.sampler.name, "options": options}
    return "teacher:" + json.dumps(body, sort_keys=True)
