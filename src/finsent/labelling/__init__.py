"""The labelling loop: choose which stored news to label, hand it to Label Studio, and take the labels back
through ``data add``'s path.

Beside ``service`` and ``dashboard``: it reads the predictions store and the champion (``monitoring``) and
writes labelled batches through ``data.intake``.
"""
