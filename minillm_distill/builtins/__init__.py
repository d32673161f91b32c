"""Built-in plugins of minillm: always installed with it, and registered through the ``minillm`` entry-point
group exactly like a third party's (``minillm plugins`` lists them as built-in). They import only
:mod:`minillm_distill.api`."""
