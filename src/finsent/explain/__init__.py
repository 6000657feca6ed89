"""Why the model said what it said: per-word attributions for one prediction, and their HTML view.

Below the monitoring room (alerts and the analysts' page show the top words of their headlines) and beside
``evaluation``; it needs only a loaded scorer from ``training``.
"""
