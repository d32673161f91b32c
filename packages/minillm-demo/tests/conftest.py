"""The demo package's tests use minillm's plugin test kit, like any plugin's: offline, and the ``cli`` fixture."""

pytest_plugins = ["minillm_distill.testing"]
