"""The one seed derivation: every random stream minillm or a plugin draws from is seeded by
:func:`derive_seed` over integers that name it (the recipe seed, the step or phase, the rank, the micro-batch,
and a constant that says which stream it is), so that streams are reproducible, independent of each other and
unaffected by resuming. Exported in :mod:`minillm_distill.api` for plugins."""

from __future__ import annotations

_FNV_OFFSET = 1469598103934665603
_FNV_PRIME = 1099511628211


def derive_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (FNV-1a over each part's low 48 bits). Order matters:
    ``derive_seed(1, 2) != derive_seed(2, 1)``. Give each stream its own constant part (e.g. a sampler's
    ``derive_seed(ctx.seed, ctx.step, 0x6D6978)``) so that two streams never share a seed. Seeds feed
    ``torch.Generator.manual_seed`` (a Mersenne twister), whose streams for distinct seeds are unrelated."""
    h = _FNV_OFFSET
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFF)) * _FNV_PRIME) % (1 << 63)
    return h
