"""Labelled data: reading and writing frames, validation (Great Expectations), versioning (DVC), and
the prepare stage that turns ``data/`` into the training rows, the dev split and the test set.

The lowest domain room: it knows nothing of models.
"""
