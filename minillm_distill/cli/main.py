"""``minillm``: the top-level Typer app, and ``main()`` which renders every MinillmError.

Start-up is kept short (``--help``, ``--version``, ``recipes list|show`` and ``plugins`` import neither torch nor
transformers; ``benchmarks/startup.py`` measures it): this module imports nothing at module level, so that a
Ctrl-C while the rest is imported lands in ``main()``'s handler (exit 130, no traceback); the command modules
import their heavy dependencies inside the commands.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

INTERRUPTED = 130  # ExitCode.INTERRUPTED, before anything is imported


def _version(value: bool) -> None:
    import typer

    from minillm_distill import __version__

    if value:
        typer.echo(f"minillm {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    import typer

    from minillm_distill.cli import (
        distill,
        eval_cmd,
        export_cmd,
        generate,
        models_cmd,
        plugins_cmd,
        recipes_cmd,
        reproduce_cmd,
        teacher_cmd,
    )
    from minillm_distill.cli.plugin_commands import RootGroup
    from minillm_distill.cli.state import state

    app = typer.Typer(
        name="minillm",
        cls=RootGroup,  # adds the plugins' commands when listed (--help) or asked for, not for --version
        help="Knowledge distillation of generative language models (MiniLLM and friends).",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode="rich",
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
        debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks for errors."),
    ) -> None:
        """Distill a large teacher LM into a small student from a YAML recipe."""
        if debug:
            state.debug = True

    distill.register(app)
    eval_cmd.register(app)
    generate.register(app)
    export_cmd.register(app)
    plugins_cmd.register(app)
    models_cmd.register(app)
    reproduce_cmd.register(app)
    teacher_cmd.register(app)
    app.add_typer(recipes_cmd.app, name="recipes")
    return app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        from minillm_distill.host_memory import use_huge_pages

        use_huge_pages()  # before torch makes its first tensor (minillm_distill/host_memory.py)
        from minillm_distill.cli.render import render_error
        from minillm_distill.cli.state import state
        from minillm_distill.errors import ExitCode, MinillmError, PeerLost
    except KeyboardInterrupt:  # Ctrl-C while Python imports the CLI: no traceback
        sys.stderr.write("interrupted\n")
        _exit(INTERRUPTED)
    _PROCESS["own"] = argv is None  # the command owns this process (not called from a test or a program)
    args = _strip_local_rank(list(sys.argv[1:] if argv is None else argv))
    state.argv = args
    if "--debug" in args:  # before the app exists, so errors while building it show tracebacks too
        state.debug = True
    if not sys.stderr.isatty():  # a log file or a pipe: the libraries' progress bars ("Loading weights") are noise
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # before any import reads it
    from minillm_distill.train.deepspeed_import import quiet_deepspeed

    quiet_deepspeed()  # no "Setting accelerator to CPU" in every command's output on a machine without a GPU
    _quiet_library_deprecations()
    try:
        try:
            app = build_app()
            app(args=args, prog_name="minillm")
        except (MinillmError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # raised inside a plugin's code: its panel (exit 4); else minillm's own bug
            blamed = _blame_plugin(exc)
            if blamed is None:
                raise
            raise blamed from exc
    except MinillmError as err:
        rendered = False
        if isinstance(err, PeerLost) and _under_launcher():
            pass  # the --nproc launcher names the rank that died, in one panel
        elif _worker_rank() == 0:
            render_error(err, debug=state.debug)
            rendered = True
        else:  # the same error on every rank: one panel (rank 0's, or the launcher's if only this rank saw it)
            sys.stderr.write(f"[rank {_worker_rank()}] {err.message}\n")
        if _under_launcher():
            from minillm_distill.train.launch import record_error

            record_error(err, rendered=rendered)
        _exit(int(err.exit_code))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        _exit(int(ExitCode.INTERRUPTED))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        _exit(code)
    _exit(0)


def _quiet_library_deprecations() -> None:
    """Deprecation notices that libraries raise about each other (DeepSpeed's ZeRO-3 calling torch's renamed
    collectives: two lines per call, every step of every rank) are for their maintainers, not the user: hidden,
    unless the user chose warning filters themselves (``-W`` / ``PYTHONWARNINGS``)."""
    import warnings

    if sys.warnoptions:
        return
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated", category=FutureWarning)


def _blame_plugin(exc: Exception) -> Any:
    """The PluginError naming the plugin whose code raised ``exc``, or None."""
    from minillm_distill.plugin_blame import blame_plugin
    from minillm_distill.plugins import get_plugins

    try:
        plugins = get_plugins()
    except Exception:  # loading plugins is what failed: nothing to blame it on
        return None
    return blame_plugin(exc, plugins)


def _strip_local_rank(args: list[str]) -> list[str]:
    """The ``deepspeed`` launcher passes ``--local_rank=N`` before the command; it is also in LOCAL_RANK."""
    import os

    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("--local_rank=") or a.startswith("--local-rank="):
            os.environ.setdefault("LOCAL_RANK", a.split("=", 1)[1])
        elif a in ("--local_rank", "--local-rank") and i + 1 < len(args):
            os.environ.setdefault("LOCAL_RANK", args[i + 1])
            i += 1
        else:
            out.append(a)
        i += 1
    return out


def _under_launcher() -> bool:
    """Whether this process is a worker of ``minillm ... --nproc N`` (which reports failures itself)."""
    import os

    return "MINILLM_EXIT_DIR" in os.environ


def _worker_rank() -> int:
    import os

    return int(os.environ.get("RANK", "0")) if _under_launcher() else 0


_PROCESS: dict[str, bool] = {"own": False}


def _exit(code: int) -> None:
    """Exit, telling a ``--nproc`` launcher (if any) which code this worker chose. A process that ran a process
    group (training) shuts it down, flushes its output and ends without the interpreter's teardown, where gloo's
    threads now and then abort a finished process (``terminate called without an active exception``, exit -6
    after a successful run)."""
    from minillm_distill.train.launch import record_exit_code

    record_exit_code(code)
    if _PROCESS["own"] and "torch.distributed" in sys.modules:
        import os

        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            from minillm_distill.train.distributed import shut_down

            shut_down()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
