"""finsent: a workflow-orchestrated MLOps system for financial-news sentiment (bearish, bullish, neutral)."""

__version__ = "0.1.0"
