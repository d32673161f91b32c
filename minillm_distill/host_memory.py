"""Host (CPU) memory for vocabulary-sized tensors: transparent huge pages, so a fresh tensor faults in 2 MiB
pages instead of 4 KiB ones.

Every out-of-place op of the loss walk (log-softmax, exp, the KL's product, their gradients) makes a fresh
vocabulary-sized tensor: float32 ``[512, 50257]`` is 103 MB. glibc serves such a block with a fresh ``mmap``
and returns it on free, so the kernel faults in and zeroes every 4 KiB page of it again, op after op; on this
project's 2-core CPU that was most of the op's time (an ``exp`` of that tensor: median 113 ms, 56 ms with huge
pages, ``benchmarks/host_memory.py``). With ``THP_MEM_ALLOC_ENABLE=1`` PyTorch asks the kernel for transparent
huge pages (``madvise(MADV_HUGEPAGE)``) on CPU blocks of 2 MiB and more; memory is still returned on free, so
the peak resident size is not higher (unlike keeping freed blocks in the heap with ``mallopt``, which this
project measured at 2.9x the loss path's peak at a 152k vocabulary).

PyTorch reads the switch once, at its first CPU allocation, so :func:`use_huge_pages` must run before any tensor
exists: the ``minillm`` command and the ``python -m minillm_distill...`` entry points call it first thing, and the
processes they start (``--nproc`` workers, the demo's stages) inherit it. It sets nothing when the variable is
already set (``THP_MEM_ALLOC_ENABLE=0`` turns it off) or when ``MINILLM_HOST_MEMORY=system``. Where the kernel
has transparent huge pages off (``/sys/kernel/mm/transparent_hugepage/enabled`` = never) it has no effect.
"""

from __future__ import annotations

import os

TORCH_ENV = "THP_MEM_ALLOC_ENABLE"
OPT_OUT_ENV = "MINILLM_HOST_MEMORY"


def use_huge_pages() -> bool:
    """Ask PyTorch for transparent huge pages on large CPU blocks, unless the user chose otherwise. Call before
    the process's first tensor. Returns whether the switch is on for this process and its children."""
    if os.environ.get(OPT_OUT_ENV, "").strip().lower() == "system":
        return os.environ.get(TORCH_ENV) == "1"
    os.environ.setdefault(TORCH_ENV, "1")
    return os.environ[TORCH_ENV] == "1"
