"""The live service (``finsent api``): scoring over HTTP with dynamic batching, news ingest into the
predictions store with the sentiment index and alerts, and a model that follows the registry's champion.

``batcher`` merges concurrent requests into one forward pass; ``follower`` keeps the champion loaded and
swaps a new one in; ``metrics`` is the Prometheus side; ``ingest`` turns posted items into stored rows;
``app`` puts them behind FastAPI routes; ``server`` runs it on uvicorn.
"""
