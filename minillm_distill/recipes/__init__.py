"""Recipes shipped with minillm; see `minillm recipes list`."""
