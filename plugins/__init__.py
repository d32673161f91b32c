"""Built-in plugins of minillm, installed as the ``minillm_plugins`` package and registered through the
``minillm`` entry-point group exactly like a third party's."""
