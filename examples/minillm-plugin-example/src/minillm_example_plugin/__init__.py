"""An example third-party minillm plugin.

The entry point ``example = "minillm_example_plugin"`` (group ``minillm``, see pyproject.toml) names this
module; minillm imports it and calls the hooks below, which are marked with ``hookimpl``.
"""

from __future__ import annotations

from minillm_distill.api import hookimpl
from minillm_example_plugin.geometric import GeometricMixedParams, GeometricMixedSampler, geometric_mixture
from minillm_example_plugin.hellinger import Hellinger, HellingerParams
from minillm_example_plugin.reinforce import ReinforceParams, ReinforceRKL

__all__ = [
    "GeometricMixedParams",
    "GeometricMixedSampler",
    "Hellinger",
    "HellingerParams",
    "ReinforceParams",
    "ReinforceRKL",
    "geometric_mixture",
    "register_commands",
    "register_divergences",
    "register_samplers",
]

EXAMPLE_P = (0.7, 0.2, 0.1)
EXAMPLE_Q = (0.4, 0.4, 0.2)


@hookimpl
def register_divergences(register) -> None:
    """Called once at start-up: hand minillm every divergence class this plugin provides."""
    register(Hellinger)  # token-level
    register(ReinforceRKL)  # sequence-level


@hookimpl
def register_samplers(register) -> None:
    """Called once at start-up: hand minillm every sampler class this plugin provides."""
    register(GeometricMixedSampler)


def _parse_distribution(text: str) -> list[float]:
    import typer

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of numbers") from None
    if any(v < 0 for v in values) or sum(values) <= 0:
        raise typer.BadParameter(f"{text!r} must be non-negative with a positive sum")
    total = sum(values)
    return [v / total for v in values]


@hookimpl
def register_commands(app) -> None:
    """Add ``minillm hello-plugin`` to the CLI."""
    import typer

    @app.command("hello-plugin")
    def hello_plugin(
        p: str = typer.Option(",".join(map(str, EXAMPLE_P)), "--p", help="Teacher distribution, e.g. 0.7,0.2,0.1."),
        q: str = typer.Option(",".join(map(str, EXAMPLE_Q)), "--q", help="Student distribution (same length)."),
    ) -> None:
        """Say hello from minillm-plugin-example: the squared Hellinger distance H^2(p, q) of two distributions."""
        import torch

        p_values, q_values = _parse_distribution(p), _parse_distribution(q)
        if len(p_values) != len(q_values):
            raise typer.BadParameter(f"--p has {len(p_values)} entries but --q has {len(q_values)}")
        teacher = torch.tensor([p_values]).log()  # log-probabilities are valid logits
        student = torch.tensor([q_values]).log()
        value = Hellinger().per_token(student, teacher, torch.zeros(1, dtype=torch.long)).item()
        fmt = ", ".join
        typer.echo(
            f"hello from minillm-plugin-example: hellinger(p=[{fmt(f'{v:g}' for v in p_values)}], "
            f"q=[{fmt(f'{v:g}' for v in q_values)}]) = {value:.6f}"
        )
