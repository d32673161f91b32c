"""The minillm demo: the offline end-to-end comparison on a synthetic task with a known answer distribution.

A plugin package like any third party's: entry point ``demo`` (:mod:`minillm_demo.commands`) adds the
``minillm demo`` command group, entry point ``synthetic`` (:mod:`minillm_demo.synthetic`) the task's model
family and benchmark. The chain itself is :mod:`minillm_demo.pipeline`.
"""
