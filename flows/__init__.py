"""Prefect orchestration for finsent: thin flows over the library's stage functions."""
