"""Tiny plugin modules that tests/unit/test_plugins.py loads through fake ``minillm`` entry points.

Each module is one way a third-party plugin can be good or broken. They are imported by top-level name
(``fx_good_a`` ...): the test puts this folder on ``sys.path``.
"""
