"""The finance lexicon: companies with their tickers, brokers, direction-safe synonym groups and cues.

``load_lexicon`` reads and checks the YAML (packaged ``finsent/resources/finance_lexicon.yaml`` unless a
path is given); the compiled patterns are built once per lexicon, so augmenters stay cheap per row.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

import yaml

from finsent.augment.text import prose
from finsent.errors import FinsentError

POLARITIES = ("bullish", "bearish", "neutral")
DIRECTIONAL = ("bullish", "bearish")
_SECTIONS = ("version", "companies", "brokers", "synonyms", "cues", "negations", "keep")


class LexiconError(FinsentError, ValueError):
    """The lexicon file is missing, malformed, or would let a swap change a headline's direction."""


@dataclass(frozen=True)
class Company:
    ticker: str
    names: tuple[str, ...]  # names[0] is written; all are recognised


@dataclass(frozen=True)
class SynonymGroup:
    polarity: str
    words: tuple[str, ...]


def _phrase_pattern(phrases: list[str], flags: int = 0) -> re.Pattern[str]:
    """Whole-phrase alternation, longest first; a hyphen counts as part of a word ("after-hours")."""
    ordered = sorted(set(phrases), key=len, reverse=True)
    body = "|".join(re.escape(p) for p in ordered)
    return re.compile(rf"(?<![\w$-])(?:{body})(?![\w-])", flags)


@dataclass(frozen=True, eq=False)
class Lexicon:
    companies: tuple[Company, ...]
    brokers: tuple[tuple[str, ...], ...]
    synonyms: tuple[SynonymGroup, ...]
    cues: dict[str, tuple[str, ...]]  # bullish/bearish -> extra cue words (not swapped)
    negations: tuple[str, ...]
    keep: tuple[str, ...] = ()  # never moved or deleted by EDA

    @cached_property
    def company_by_ticker(self) -> dict[str, int]:
        return {c.ticker.upper(): i for i, c in enumerate(self.companies)}

    @cached_property
    def company_by_name(self) -> dict[str, int]:
        return {name: i for i, c in enumerate(self.companies) for name in c.names}

    @cached_property
    def company_pattern(self) -> re.Pattern[str]:
        return _phrase_pattern(list(self.company_by_name))

    @cached_property
    def broker_by_name(self) -> dict[str, int]:
        return {name: i for i, names in enumerate(self.brokers) for name in names}

    @cached_property
    def broker_pattern(self) -> re.Pattern[str]:
        return _phrase_pattern(list(self.broker_by_name))

    @cached_property
    def synonym_group_of(self) -> dict[str, int]:
        return {w.lower(): i for i, g in enumerate(self.synonyms) for w in g.words}

    @cached_property
    def synonym_pattern(self) -> re.Pattern[str]:
        return _phrase_pattern(list(self.synonym_group_of), re.IGNORECASE)

    def cue_words(self, polarity: str) -> tuple[str, ...]:
        grouped = [w for g in self.synonyms if g.polarity == polarity for w in g.words]
        return tuple(sorted({w.lower() for w in [*grouped, *self.cues.get(polarity, ())]}))

    @cached_property
    def cue_patterns(self) -> dict[str, re.Pattern[str]]:
        return {p: _phrase_pattern(list(self.cue_words(p)), re.IGNORECASE) for p in DIRECTIONAL}

    @cached_property
    def negation_pattern(self) -> re.Pattern[str]:
        words = [n for n in self.negations if n != "n't"]
        return re.compile(rf"\b(?:{'|'.join(map(re.escape, words))})\b|n't", re.IGNORECASE)

    @cached_property
    def protected_tokens(self) -> frozenset[str]:
        """Single words that EDA must never delete or move: cue words, negations and ``keep`` words."""
        words = {part for p in DIRECTIONAL for cue in self.cue_words(p) for part in cue.split()}
        return frozenset(words | {w.lower() for w in (*self.negations, *self.keep)})

    def cue_counts(self, text: str) -> Counter[str]:
        """How many bullish cues, bearish cues and negations ``text`` holds (tickers and links ignored)."""
        body = prose(text)
        counts: Counter[str] = Counter({p: len(self.cue_patterns[p].findall(body)) for p in DIRECTIONAL})
        counts["negation"] = len(self.negation_pattern.findall(body))
        return counts


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise LexiconError(f"{where}: expected a non-empty list of words, got {value!r}")
    return tuple(v.strip() for v in value)


def _check_synonyms(groups: list[SynonymGroup], cues: dict[str, tuple[str, ...]]) -> None:
    seen: dict[str, str] = {}
    for g in groups:
        if len(g.words) < 2:
            raise LexiconError(f"synonyms.{g.polarity}: group {list(g.words)} needs at least two words")
        for w in g.words:
            key = w.lower()
            if key in seen:
                raise LexiconError(f"synonyms: {w!r} is in two groups ({seen[key]} and {g.polarity})")
            seen[key] = g.polarity
    for polarity, words in cues.items():
        other = "bearish" if polarity == "bullish" else "bullish"
        for w in words:
            if seen.get(w.lower()) in (other, "neutral"):
                raise LexiconError(f"cues.{polarity}: {w!r} is also a {seen[w.lower()]} synonym")
    clash = set(w.lower() for w in cues.get("bullish", ())) & set(w.lower() for w in cues.get("bearish", ()))
    if clash:
        raise LexiconError(f"cues: {sorted(clash)} are listed as both bullish and bearish")


def parse_lexicon(raw: object, source: str = "lexicon") -> Lexicon:
    """Build a ``Lexicon`` from the parsed YAML mapping, with errors that name the bad entry."""
    if not isinstance(raw, dict):
        raise LexiconError(f"{source}: expected a mapping at the top level")
    missing = [k for k in ("companies", "brokers", "synonyms", "cues", "negations") if k not in raw]
    if missing:
        raise LexiconError(f"{source}: missing section(s) {missing}")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise LexiconError(f"{source}: unknown section(s) {unknown}; allowed: {list(_SECTIONS)}")
    companies = []
    for i, entry in enumerate(raw["companies"] or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("ticker"), str):
            raise LexiconError(f"{source}: companies[{i}] needs a ticker and names, got {entry!r}")
        companies.append(Company(entry["ticker"].strip().upper(), _strings(entry.get("names"), f"companies[{i}].names")))
    brokers = tuple(_strings(b, f"brokers[{i}]") for i, b in enumerate(raw["brokers"] or []))
    if len(companies) < 2 or len(brokers) < 2:
        raise LexiconError(f"{source}: at least two companies and two brokers are needed to swap")
    synonyms_raw = raw["synonyms"] or {}
    if not isinstance(synonyms_raw, dict) or set(synonyms_raw) - set(POLARITIES):
        raise LexiconError(f"{source}: synonyms must be a mapping with keys among {POLARITIES}")
    groups = [
        SynonymGroup(polarity, _strings(words, f"synonyms.{polarity}[{i}]"))
        for polarity in POLARITIES
        for i, words in enumerate(synonyms_raw.get(polarity) or [])
    ]
    cues_raw = raw["cues"] or {}
    if not isinstance(cues_raw, dict) or set(cues_raw) - set(DIRECTIONAL):
        raise LexiconError(f"{source}: cues must be a mapping with keys among {DIRECTIONAL}")
    cues = {p: _strings(cues_raw[p], f"cues.{p}") for p in DIRECTIONAL if cues_raw.get(p)}
    _check_synonyms(groups, cues)
    return Lexicon(
        companies=tuple(companies),
        brokers=brokers,
        synonyms=tuple(groups),
        cues=cues,
        negations=_strings(raw["negations"], "negations"),
        keep=_strings(raw["keep"], "keep") if raw.get("keep") is not None else (),
    )


def packaged_lexicon_path() -> Path:
    return Path(str(resources.files("finsent") / "resources" / "finance_lexicon.yaml"))


@lru_cache(maxsize=8)
def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """Read a lexicon file; ``None`` means the one that ships with finsent."""
    path = Path(path) if path is not None else packaged_lexicon_path()
    if not path.is_file():
        raise LexiconError(f"lexicon file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LexiconError(f"{path} is not valid YAML: {exc}") from exc
    return parse_lexicon(raw, str(path))
