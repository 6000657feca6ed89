"""Judging a model: metrics, calibration and slices (``evaluate``), the finance behaviour suite
(``behaviour``) and the promotion gate's pure decision (``gate``).

Above ``training`` (it scores with its ``Scorer``); below the registry, which acts on the gate.
"""
