"""minillm's own tests run with the plugin test kit, like any plugin's: offline, and the ``cli`` fixture
(:mod:`minillm_distill.testing`). Shared paths and the subprocess runner are in ``helpers.py``."""

pytest_plugins = ["minillm_distill.testing"]
