"""Finance-aware augmenters: swap tickers, companies and brokers; rewrite amounts without changing
which way they point.

Every augmenter has the shape ``(text, rng, lexicon) -> str | None`` and returns None when it finds
nothing to change. Swaps never touch words that carry direction, and number rewrites scale all
amounts of a headline by one positive factor, so "raised to $50 from $40" keeps the first amount above
the second, "+3%" stays positive and "down 81%" stays below 100%.
"""

from __future__ import annotations

import re

import numpy as np

from finsent.augment.lexicon import Company, Lexicon
from finsent.augment.text import find_outside_urls, outside_urls
from finsent.vocabulary import CASHTAG

_EXCHANGE_TICKER = re.compile(
    r"(?<![\w])(?P<exchange>NYSE|NASDAQ|Nasdaq|NasdaqGS|NasdaqGM|NasdaqCM|AMEX|NYSEAMERICAN|NYSEArca)"
    r"(?P<sep>\s?:\s?)(?P<symbol>[A-Z]{1,5}(?:\.[A-Z])?)\b"
)
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_AMOUNT_PATTERNS = {
    "money": re.compile(rf"(?<![\w.,])(?P<prefix>[$€£])(?P<num>{_NUMBER})(?![\d])"),
    "percent": re.compile(rf"(?<![\w.,$€£])(?P<prefix>)(?P<num>{_NUMBER})(?=\s?(?:%|percent\b|pct\b))"),
    "points": re.compile(rf"(?<![\w.,$€£])(?P<prefix>)(?P<num>{_NUMBER})(?=\s(?i:points|pts|basis points|bps)\b)"),
}
_MONEY_TOKEN = r"[$€£]\d[\d,]*(?:\.\d+)?(?:\s?(?:/share|per share|a share|billion|million|bn|[BMK]\b))?"
_TO_FROM = re.compile(rf"\bto (?P<new>{_MONEY_TOKEN}) from (?P<old>{_MONEY_TOKEN})")
_SCALE_RANGE = (0.5, 2.0)  # factors drawn log-uniformly from here ...
_MIN_CHANGE = 1.1  # ... but never closer to 1 than this, so that the rewrite is visible
_SCALE_TRIES = 6


# --- entity swaps -------------------------------------------------------------------------------


def _tickers_in(text: str) -> list[str]:
    """Distinct ticker symbols (upper case) written as cashtags or EXCHANGE:SYMBOL, in order."""
    found = [m.group(1).upper() for m in find_outside_urls(CASHTAG, text)]
    found += [m.group("symbol") for m in find_outside_urls(_EXCHANGE_TICKER, text)]
    return list(dict.fromkeys(found))


def _companies_named_in(text: str, lexicon: Lexicon) -> list[int]:
    found = [lexicon.company_by_name[m.group(0)] for m in find_outside_urls(lexicon.company_pattern, text)]
    return list(dict.fromkeys(found))


def _draw_companies(lexicon: Lexicon, n: int, exclude: set[int], rng: np.random.Generator) -> list[Company] | None:
    candidates = [i for i in range(len(lexicon.companies)) if i not in exclude]
    if len(candidates) < n:
        return None
    return [lexicon.companies[i] for i in rng.choice(candidates, size=n, replace=False)]


def _write_symbol(new: str, like: str) -> str:
    return new.lower() if like.islower() else new


def _swap_companies(text: str, lexicon: Lexicon, by_ticker: dict[str, Company], by_name: dict[int, Company]) -> str:
    """Rewrite cashtags, EXCHANGE:SYMBOL, "(SYMBOL)" and company names in one consistent mapping.
    New tickers are never among the old ones, so the passes cannot rewrite each other's output."""

    def cashtag(m: re.Match[str]) -> str:
        new = by_ticker.get(m.group(1).upper())
        return f"${_write_symbol(new.ticker, m.group(1))}" if new else m.group(0)

    def exchange(m: re.Match[str]) -> str:
        new = by_ticker.get(m.group("symbol"))
        return f"{m.group('exchange')}{m.group('sep')}{new.ticker}" if new else m.group(0)

    def name(m: re.Match[str]) -> str:
        new = by_name.get(lexicon.company_by_name[m.group(0)])
        return new.names[0] if new else m.group(0)

    def rewrite(segment: str) -> str:
        segment = CASHTAG.sub(cashtag, segment)
        segment = _EXCHANGE_TICKER.sub(exchange, segment)
        for old, new in by_ticker.items():
            segment = segment.replace(f"({old})", f"({new.ticker})")
        return lexicon.company_pattern.sub(name, segment)

    return outside_urls(text, rewrite)


def ticker_swap(text: str, rng: np.random.Generator, lexicon: Lexicon) -> str | None:
    """Replace each ticker by another company's ticker, the same one at every mention; a ticker the
    lexicon knows takes its company name along ("$AAPL ... Apple" -> "$MSFT ... Microsoft")."""
    symbols = _tickers_in(text)
    if not symbols:
        return None
    present = {lexicon.company_by_ticker[s] for s in symbols if s in lexicon.company_by_ticker}
    present |= set(_companies_named_in(text, lexicon))
    new = _draw_companies(lexicon, len(symbols), present, rng)
    if new is None:
        return None
    by_ticker = dict(zip(symbols, new))
    by_name = {lexicon.company_by_ticker[s]: c for s, c in by_ticker.items() if s in lexicon.company_by_ticker}
    return _swap_companies(text, lexicon, by_ticker, by_name)


def company_swap(text: str, rng: np.random.Generator, lexicon: Lexicon) -> str | None:
    """Replace each company the lexicon knows by another one, its ticker included."""
    named = _companies_named_in(text, lexicon)
    if not named:
        return None
    present = set(named) | {lexicon.company_by_ticker[s] for s in _tickers_in(text) if s in lexicon.company_by_ticker}
    new = _draw_companies(lexicon, len(named), present, rng)
    if new is None:
        return None
    by_name = dict(zip(named, new))
    by_ticker = {lexicon.companies[i].ticker: c for i, c in by_name.items()}
    return _swap_companies(text, lexicon, by_ticker, by_name)


def broker_swap(text: str, rng: np.random.Generator, lexicon: Lexicon) -> str | None:
    """Replace each bank or broker by another one, consistently across its aliases."""
    found = [lexicon.broker_by_name[m.group(0)] for m in find_outside_urls(lexicon.broker_pattern, text)]
    present = list(dict.fromkeys(found))
    if not present:
        return None
    candidates = [i for i in range(len(lexicon.brokers)) if i not in present]
    if len(candidates) < len(present):
        return None
    mapping = dict(zip(present, (int(i) for i in rng.choice(candidates, size=len(present), replace=False))))

    def name(m: re.Match[str]) -> str:
        return lexicon.brokers[mapping[lexicon.broker_by_name[m.group(0)]]][0]

    return outside_urls(text, lambda s: lexicon.broker_pattern.sub(name, s))


# --- number rewrites ------------------------------------------------------------------------------


def _parse(number: str) -> float:
    return float(number.replace(",", ""))


def _format_like(value: float, like: str) -> str:
    decimals = len(like.split(".")[1]) if "." in like else 0
    return f"{value:,.{decimals}f}" if "," in like else f"{value:.{decimals}f}"


def _amounts(text: str, kinds: tuple[str, ...] = tuple(_AMOUNT_PATTERNS)) -> list[tuple[str, re.Match[str]]]:
    """Money amounts, percentages and points, outside links."""
    return [(kind, m) for kind in kinds for m in find_outside_urls(_AMOUNT_PATTERNS[kind], text)]


def _same_order(old: list[float], new: list[float]) -> bool:
    """Every pair compares the same way before and after, and nothing positive became zero."""
    if any(o > 0 and n <= 0 for o, n in zip(old, new)):
        return False
    return all(np.sign(old[i] - old[j]) == np.sign(new[i] - new[j]) for i in range(len(old)) for j in range(i + 1, len(old)))


def _scale_amounts(text: str, factor: float) -> str | None:
    """Multiply every amount by ``factor`` keeping its format; None if rounding would break an order
    relation (within money, percent or points) or change nothing."""
    found = _amounts(text)
    if not found:
        return None
    replacements: list[tuple[int, int, str]] = []
    by_kind: dict[str, tuple[list[float], list[float]]] = {}
    for kind, m in found:
        written = _format_like(_parse(m.group("num")) * factor, m.group("num"))
        old_list, new_list = by_kind.setdefault(kind, ([], []))
        old_list.append(_parse(m.group("num")))
        new_list.append(_parse(written))
        replacements.append((m.start("num"), m.end("num"), written))
    if not all(_same_order(old, new) for old, new in by_kind.values()):
        return None
    out = text
    for start, end, written in sorted(replacements, reverse=True):
        out = out[:start] + written + out[end:]
    return out if out != text else None


def _draw_factor(rng: np.random.Generator, upper: float) -> float:
    low, high = _SCALE_RANGE
    high = min(high, upper)
    choices = [(low, 1 / _MIN_CHANGE)] + ([(_MIN_CHANGE, high)] if high > _MIN_CHANGE else [])
    lo, hi = choices[int(rng.integers(len(choices)))]
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _percent_ceiling(text: str) -> float:
    """A factor no larger than this keeps every percentage under 100 that was under 100."""
    percents = [_parse(m.group("num")) for _, m in _amounts(text, ("percent",))]
    below = [p for p in percents if 0 < p < 100]
    return min((99.0 / p for p in below), default=float("inf"))


def scale_numbers(text: str, rng: np.random.Generator) -> str | None:
    """Scale all money amounts, percentages and points by one random factor (order and sign kept)."""
    if not _amounts(text):
        return None
    upper = _percent_ceiling(text)
    for _ in range(_SCALE_TRIES):
        out = _scale_amounts(text, _draw_factor(rng, upper))
        if out is not None:
            return out
    return None


def reorder_to_from(text: str) -> str | None:
    """ "to $X from $Y" -> "from $Y to $X": the same change, told the other way round."""
    out = outside_urls(text, lambda s: _TO_FROM.sub(lambda m: f"from {m.group('old')} to {m.group('new')}", s))
    return out if out != text else None


def number_rewrite(text: str, rng: np.random.Generator, lexicon: Lexicon) -> str | None:
    """Rescale the amounts, and half of the time also reword "to $X from $Y" as "from $Y to $X"."""
    del lexicon  # same signature as the other augmenters
    reordered = reorder_to_from(text) if rng.random() < 0.5 else None
    return scale_numbers(reordered or text, rng) or reordered
