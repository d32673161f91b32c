"""``minillm reproduce``: the paper's pipeline (Table 1 in miniature) on a real teacher and Dolly."""
