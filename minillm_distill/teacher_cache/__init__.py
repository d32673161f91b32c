"""The teacher out of training memory: its top-k log-probabilities over a recipe's training data, captured once
(``minillm teacher capture``) into a folder of safetensors shards.

* the format and its manifest: :mod:`minillm_distill.teacher_cache.cache_format`;
* writing and reading shards: :mod:`minillm_distill.teacher_cache.store` (:class:`TeacherCache`);
* running the teacher: :mod:`minillm_distill.teacher_cache.capture`;
* fingerprints of teacher, tokenizer and data: :mod:`minillm_distill.teacher_cache.fingerprints`;
* from a recipe: :mod:`minillm_distill.teacher_cache.from_recipe`.
"""
