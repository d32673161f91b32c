"""``minillm demo``: the offline end-to-end comparison on the synthetic task (see :mod:`.pipeline`)."""
