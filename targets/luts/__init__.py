"""Measured per-block latency tables (`qanas lut build`), one JSON file per space × target ×
input size × class count, each with its validation report (`*.validation.json`).

Found by exact match with `qanas.cost.lut.committed.find_lut`; rebuilt with the command
recorded in each table's ``protocol.command``.
"""
