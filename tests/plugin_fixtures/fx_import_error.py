"""A plugin that raises while being imported."""

raise RuntimeError("fixture plugin exploded on import [/] [bold]")
