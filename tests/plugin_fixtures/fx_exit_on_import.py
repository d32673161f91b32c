"""A plugin that calls sys.exit() while being imported (it must not end the CLI)."""

import sys

sys.exit("fixture plugin called sys.exit on import")
