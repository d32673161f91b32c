"""A plain-text pretraining corpus packed into fixed-length blocks (documents joined with EOS)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from minillm_distill.errors import ResourceError

if TYPE_CHECKING:  # the recipe section this module reads (the recipe layer sits above this one)
    from minillm_distill.recipe.schema import PretrainSpec


def load_texts(spec: PretrainSpec) -> list[str]:
    """``.txt``: documents separated by blank lines; ``.json``/``.jsonl``/hub ids: the ``text_field`` column."""
    path = Path(spec.path)
    if path.suffix == ".txt":
        if not path.exists():
            raise ResourceError(f"pretraining corpus not found: {spec.path}", hint="check data.pretrain.path")
        docs = [d.strip() for d in path.read_text(encoding="utf-8").split("\n\n")]
        return [d for d in docs if d]
    import datasets

    datasets.disable_progress_bars()
    try:
        if path.suffix in (".json", ".jsonl"):
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        else:
            ds = datasets.load_dataset(spec.path, split=spec.split)
    except Exception as exc:
        raise ResourceError(
            f"cannot read the pretraining corpus {spec.path!r}", why=str(exc).splitlines()[0] if str(exc) else None
        ) from exc
    if spec.text_field not in ds.column_names:
        raise ResourceError(
            f"pretraining corpus {spec.path!r} has no field {spec.text_field!r} (fields: {ds.column_names})",
            hint="set data.pretrain.text_field",
        )
    return [str(t) for t in ds[spec.text_field] if t]


def pack_blocks(texts: list[str], tokenizer: Any, block_size: int) -> torch.Tensor:
    """``[n_blocks, block_size]`` token ids; the remainder shorter than a block is dropped."""
    from minillm_distill.data.encode import BATCH, token_ids

    ids: list[int] = []
    for start in range(0, len(texts), BATCH):
        for doc in token_ids(tokenizer, texts[start : start + BATCH], add_special_tokens=False):
            ids.extend(doc)
            ids.append(tokenizer.eos_token_id)
    n = len(ids) // block_size
    if n == 0:
        raise ResourceError(
            f"the pretraining corpus has {len(ids)} tokens, fewer than one block of {block_size}",
            hint="lower data.pretrain.block_size or give a bigger corpus",
        )
    return torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)
