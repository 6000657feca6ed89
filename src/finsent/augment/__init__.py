"""Augmentation stage: label-preserving variants of the training split (see ``stage``).

Modules: ``finance`` (ticker, company and broker swaps; direction-keeping number rewrites),
``synonyms`` (finance lexicon synonyms), ``eda`` (random swap and deletion), ``backtranslate``
(round trips through local MarianMT-style models; imported only when used), ``overlap`` (exact and
near duplicates of evaluation rows), ``lexicon`` (the finance lexicon file).
"""

from finsent.augment.lexicon import Lexicon, LexiconError, load_lexicon
from finsent.augment.overlap import EvalOverlapIndex, overlap_key
from finsent.augment.stage import (
    BACKTRANSLATION,
    COLUMNS,
    ORIGINAL,
    AugmentResult,
    AugmentSummary,
    augment,
    augment_frame,
    build_augmenters,
    load_backtranslator,
    read_augmented,
    run,
)

__all__ = [
    "BACKTRANSLATION",
    "COLUMNS",
    "ORIGINAL",
    "AugmentResult",
    "AugmentSummary",
    "EvalOverlapIndex",
    "Lexicon",
    "LexiconError",
    "augment",
    "augment_frame",
    "build_augmenters",
    "load_backtranslator",
    "load_lexicon",
    "overlap_key",
    "read_augmented",
    "run",
]
