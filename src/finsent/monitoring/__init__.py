"""Watching the champion in production: scoring news into the predictions store, drift (Evidently),
the per-ticker sentiment index and alerts, the retrain policy, and one monitoring window end to end
(``run``).

The top domain room: it uses the registry's champion and the training room's features.
"""
