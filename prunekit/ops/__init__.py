"""Shared tensor operations used by several strategies (similarity, DPP, apportionment, merging)."""
