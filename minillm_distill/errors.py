"""One error tree for every user-facing failure, each with its exit code.

Exit codes (documented in the README):
0 ok, 1 runtime failure, 2 usage, 3 invalid recipe, 4 plugin error, 5 resource (OOM, missing files),
130 interrupted.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    RUNTIME = 1
    USAGE = 2
    RECIPE = 3
    PLUGIN = 4
    RESOURCE = 5
    INTERRUPTED = 130


class MinillmError(Exception):
    """Base of every error the CLI renders as a panel: what happened, why, what to do."""

    exit_code: ExitCode = ExitCode.RUNTIME
    title: str = "Error"

    def __init__(
        self,
        message: str,
        *,
        why: str | None = None,
        hint: str | None = None,
        details: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.why = why
        self.hint = hint
        self.details = list(details or [])

    def __str__(self) -> str:
        parts = [self.message, *self.details]
        if self.why:
            parts.append(f"why: {self.why}")
        if self.hint:
            parts.append(f"what to do: {self.hint}")
        return "\n".join(parts)


class UsageError(MinillmError):
    exit_code = ExitCode.USAGE
    title = "Usage error"


class RecipeError(MinillmError):
    exit_code = ExitCode.RECIPE
    title = "Invalid recipe"


class PluginError(MinillmError):
    exit_code = ExitCode.PLUGIN
    title = "Plugin error"


class ResourceError(MinillmError):
    exit_code = ExitCode.RESOURCE
    title = "Resource error"


class RuntimeFailure(MinillmError):
    exit_code = ExitCode.RUNTIME
    title = "Run failed"


class PeerLost(RuntimeFailure):
    """A collective failed because another worker process is gone: the ``--nproc`` launcher, which knows which
    rank died and how, renders the one panel; under an external launcher the worker renders this one."""


class InterruptedRun(MinillmError):
    exit_code = ExitCode.INTERRUPTED
    title = "Interrupted"
