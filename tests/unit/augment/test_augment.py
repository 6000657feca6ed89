"""Unit tests of the augmentation stage: each augmenter, the lexicon file, the label guard, the core
``augment`` (weighting, provenance, dedupe, evaluation overlap, bad input) and ``run``."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import yaml

from finsent.augment import (
    BACKTRANSLATION,
    COLUMNS,
    ORIGINAL,
    EvalOverlapIndex,
    LexiconError,
    augment,
    augment_frame,
    load_lexicon,
    overlap_key,
    read_augmented,
    run,
)
from finsent.augment.eda import random_deletion, random_swap
from finsent.augment.finance import broker_swap, company_swap, number_rewrite, reorder_to_from, ticker_swap
from finsent.augment.lexicon import packaged_lexicon_path, parse_lexicon
from finsent.augment.overlap import jaccard, word_set
from finsent.augment.stage import keep_variant, preserves_direction
from finsent.augment.synonyms import synonym_replace
from finsent.config import AUGMENTERS, AugmentParams, ConfigError, from_dict
from finsent.data.frames import DataError
from finsent.data.validate import normalise_text

BEARISH, BULLISH, NEUTRAL = 0, 1, 2
SEEDS = range(60)

# An oracle for the lexicon test, written independently of the lexicon file.
BULLISH_MARKERS = {
    "rise",
    "rises",
    "rose",
    "rising",
    "gain",
    "gains",
    "gained",
    "surge",
    "surges",
    "soar",
    "soars",
    "jump",
    "jumps",
    "rally",
    "rallies",
    "beat",
    "beats",
    "upgrade",
    "upgrades",
    "upgraded",
    "bullish",
    "strong",
    "record high",
    "outperform",
    "overweight",
    "optimism",
    "rebound",
    "rebounds",
    "higher",
    "up",
    "buy",
}
BEARISH_MARKERS = {
    "fall",
    "falls",
    "fell",
    "falling",
    "drop",
    "drops",
    "dropped",
    "decline",
    "declines",
    "plunge",
    "plunges",
    "tumble",
    "tumbles",
    "slump",
    "slumps",
    "miss",
    "misses",
    "downgrade",
    "downgrades",
    "downgraded",
    "bearish",
    "weak",
    "underperform",
    "underweight",
    "recession",
    "selloff",
    "sell-off",
    "lower",
    "down",
    "sell",
    "loss",
    "cut",
    "cuts",
    "warns",
    "crash",
}


@pytest.fixture(scope="module")
def lexicon():
    return load_lexicon()


def frame(rows: list[tuple[str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["text", "label"])


def to_and_from(text: str) -> tuple[float, float]:
    """The new and the old amount of "to $X from $Y" or "from $Y to $X"."""
    amount = r"\$([\d,]+(?:\.\d+)?)\S*"
    m = re.search(rf"to {amount} from {amount}", text)
    if m:
        return float(m.group(1).replace(",", "")), float(m.group(2).replace(",", ""))
    m = re.search(rf"from {amount} to {amount}", text)
    assert m, f"no 'to/from' amounts left in {text!r}"
    return float(m.group(2).replace(",", "")), float(m.group(1).replace(",", ""))


# --- the lexicon file -----------------------------------------------------------------------------


def test_lexicon_groups_never_mix_directions():
    raw = yaml.safe_load(packaged_lexicon_path().read_text(encoding="utf-8"))
    groups = raw["synonyms"]
    for polarity, opposite in (("bullish", BEARISH_MARKERS), ("bearish", BULLISH_MARKERS)):
        for group in groups[polarity]:
            assert not {w.lower() for w in group} & opposite, f"{polarity} group {group} holds an opposite word"
    for group in groups["neutral"]:
        assert not {w.lower() for w in group} & (BULLISH_MARKERS | BEARISH_MARKERS), f"neutral group {group} has a direction"
    words = [w.lower() for polarity in groups.values() for group in polarity for w in group]
    assert len(words) == len(set(words)), "a word is in two synonym groups"
    assert not {w.lower() for w in raw["cues"]["bullish"]} & {w.lower() for w in raw["cues"]["bearish"]}


def test_lexicon_entities_are_unique_and_not_cue_words(lexicon):
    tickers = [c.ticker for c in lexicon.companies]
    assert len(tickers) == len(set(tickers))
    names = [n for c in lexicon.companies for n in c.names] + [n for b in lexicon.brokers for n in b]
    assert len(names) == len(set(names))
    cue_words = set(lexicon.cue_words("bullish")) | set(lexicon.cue_words("bearish"))
    assert not {n.lower() for n in names} & cue_words


def test_lexicon_that_could_flip_a_label_is_rejected():
    raw = yaml.safe_load(packaged_lexicon_path().read_text(encoding="utf-8"))
    raw["synonyms"]["bullish"].append(["soars", "falls"])  # "falls" is a bearish synonym already
    with pytest.raises(LexiconError, match="two groups"):
        parse_lexicon(raw)
    raw = yaml.safe_load(packaged_lexicon_path().read_text(encoding="utf-8"))
    raw["cues"]["bullish"].append("plunges")
    with pytest.raises(LexiconError, match="bearish synonym"):
        parse_lexicon(raw)
    with pytest.raises(LexiconError, match="missing section"):
        parse_lexicon({"companies": []})
    with pytest.raises(LexiconError, match="not found"):
        load_lexicon("/nonexistent/lexicon.yaml")


# --- number rewrites ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, rises",
    [
        ("Acme stock price target raised to $50 from $40 at Needham", True),
        ("Acme price target cut to $20 from $30", False),
        ("Acme raises dividend to $0.30/share from $0.28/share", True),
        ("Acme lowered to $1,150 from $1,200 at Baird", False),
    ],
)
def test_number_rewrite_keeps_the_direction_of_a_change(text, rises, lexicon):
    changed = 0
    for seed in SEEDS:
        out = number_rewrite(text, np.random.default_rng(seed), lexicon)
        assert out is not None and out != text
        new, old = to_and_from(out)
        assert (new > old) if rises else (new < old), out
        changed += to_and_from(text) != (new, old)
    assert changed > len(SEEDS) // 2  # the amounts really are rewritten, not only reordered


def test_number_rewrite_keeps_signs_formats_and_bounds(lexicon):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        out = number_rewrite("Kellogg -6% and Acme +2.5% after results; Beta down 81%", rng, lexicon)
        minus, plus, down = re.fullmatch(r"Kellogg -(\d+)% and Acme \+(\d+\.\d)% after results; Beta down (\d+)%", out).groups()
        assert int(minus) > 0 and float(plus) > 0 and 0 < int(down) < 100
        out = number_rewrite("Dow up 120.52 points, deal worth $1,200 billion", rng, lexicon)
        assert re.fullmatch(r"Dow up \d+\.\d\d points, deal worth \$[\d,]+ billion", out), out


def test_number_rewrite_leaves_links_years_and_plain_numbers_alone(lexicon):
    rng = np.random.default_rng(0)
    assert number_rewrite("Q3 2020 results of the 737 Max https://t.co/a%20b5", rng, lexicon) is None
    out = number_rewrite("Shares up 5% https://t.co/x5%20y", rng, lexicon)
    assert out.endswith("https://t.co/x5%20y") and not out.startswith("Shares up 5%")


def test_reorder_to_from_tells_the_same_change():
    assert reorder_to_from("target raised to $41.50 from $39.50 at B. Riley") == "target raised from $39.50 to $41.50 at B. Riley"
    assert reorder_to_from("no amounts here") is None


# --- entity swaps ---------------------------------------------------------------------------------


def test_ticker_swap_changes_each_ticker_consistently(lexicon):
    text = "$AAPL rises as Apple (AAPL) beats; $TSLA flat, NASDAQ:AAPL https://t.co/$AAPL"
    for seed in SEEDS:
        out = ticker_swap(text, np.random.default_rng(seed), lexicon)
        m = re.fullmatch(r"\$(\S+) rises as (.+) \((\S+)\) beats; \$(\S+) flat, NASDAQ:(\S+) https://t.co/\$AAPL", out)
        assert m, out
        first, name, bare, second, exchange = m.groups()
        assert first == bare == exchange != "AAPL"
        assert second not in {"TSLA", first}
        assert name == lexicon.companies[lexicon.company_by_ticker[first]].names[0]


def test_ticker_swap_needs_a_ticker(lexicon):
    assert ticker_swap("Stocks rise on trade hopes", np.random.default_rng(0), lexicon) is None


def test_company_and_broker_swaps_are_consistent(lexicon):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        out = company_swap("Apple beats; $AAPL up as Apple guides higher", rng, lexicon)
        m = re.fullmatch(r"(.+) beats; \$(\S+) up as (.+) guides higher", out)
        assert m and m.group(1) == m.group(3) != "Apple"
        assert lexicon.companies[lexicon.company_by_ticker[m.group(2)]].names[0] == m.group(1)
        out = broker_swap("BofA upgrades Acme; Bank of America sees upside at Goldman Sachs", rng, lexicon)
        m = re.fullmatch(r"(.+) upgrades Acme; (.+) sees upside at (.+)", out)
        assert m and m.group(1) == m.group(2) not in {"BofA", "Bank of America"}
        assert m.group(3) not in {m.group(1), "Goldman Sachs"}


# --- synonyms and EDA ----------------------------------------------------------------------------


def test_synonyms_stay_in_their_group_and_case(lexicon):
    bullish = "Stocks Rise as Acme climbs and rallies to record high"
    for seed in SEEDS:
        out = synonym_replace(bullish, np.random.default_rng(seed), lexicon)
        assert out != bullish
        assert not set(re.findall(r"[\w-]+", out.lower())) & BEARISH_MARKERS, out
        assert out.split()[1][0].isupper()  # "Rise" -> "Climb", not "climb"
    assert synonym_replace("Nothing to see here", np.random.default_rng(0), lexicon) is None


def test_eda_never_moves_or_drops_direction_words_tickers_or_numbers(lexicon):
    text = "Acme shares not down 5% to $20 from $30 says $ACME chief in a long interview today"
    kept = {"not", "down", "5%", "to", "$20", "from", "$30", "$ACME"}
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        for out in (random_deletion(text, rng, lexicon, prob=0.5), random_swap(text, rng, lexicon, swaps=3)):
            tokens = out.split()
            assert kept <= set(tokens), out
            assert tokens.index("to") < tokens.index("from")
            assert tokens.index("$20") < tokens.index("$30")
    assert random_swap("cut to $20 from $30", np.random.default_rng(0), lexicon) is None
    assert random_deletion("Stocks rise", np.random.default_rng(0), lexicon) is None


# --- the label guard ------------------------------------------------------------------------------


def test_label_guard_rejects_flips_and_lost_negations(lexicon):
    source = "Acme shares rise after strong results"
    assert preserves_direction(source, "Acme shares climb after robust results", BULLISH, lexicon)
    assert not preserves_direction(source, "Acme shares fall after strong results", BULLISH, lexicon)
    assert not preserves_direction(source, "Acme shares after results", BULLISH, lexicon)  # lost its cues
    assert not preserves_direction("Acme will not cut jobs", "Acme will cut jobs", NEUTRAL, lexicon)
    assert not preserves_direction("Acme names a new CEO", "Acme names a new CEO as shares plunge", NEUTRAL, lexicon)
    p = AugmentParams()
    assert not keep_variant(source, "", BULLISH, lexicon, p)
    assert not keep_variant(source, "  ACME shares rise after strong results ", BULLISH, lexicon, p)
    assert not keep_variant(source, None, BULLISH, lexicon, p)


# --- the core ------------------------------------------------------------------------------------

TRAIN = frame(
    [
        ("$AAPL - Apple price target raised to $210 from $190 at Goldman Sachs", BULLISH),
        ("Stocks rise to record high as trade hopes lift investors", BULLISH),
        ("Acme beats by $0.07, beats on revenue; shares up 4% premarket", BULLISH),
        ("Netflix stock climbs after Needham upgrade on strong subscriber growth", BULLISH),
        ("$XYZ - Acme cut to Sell at Morgan Stanley on weak demand outlook", BEARISH),
        ("Tesla price target cut to $300 from $350 at Barclays", BEARISH),
        ("Oil prices fall as recession worries weigh on stocks", BEARISH),
        ("Boeing shares drop 5% after new delays in deliveries", BEARISH),
        ("Acme to present at the JPMorgan healthcare conference next week", NEUTRAL),
        ("Walmart announces quarterly dividend of $0.54 per share", NEUTRAL),
        ("Fed minutes due on Wednesday afternoon as investors watch rates", NEUTRAL),
        ("Microsoft names new head of cloud business unit in Europe", NEUTRAL),
    ]
)


def test_augment_returns_originals_then_labelled_variants_with_provenance():
    out = augment(TRAIN, AugmentParams(), np.random.default_rng(0))
    assert list(out.columns) == list(COLUMNS)
    originals = out[out["augmenter"] == ORIGINAL]
    pd.testing.assert_frame_equal(originals[["text", "label"]].reset_index(drop=True), TRAIN)
    assert (originals["source_row"].to_numpy() == np.arange(len(TRAIN))).all()
    new = out[out["augmenter"] != ORIGINAL]
    assert len(new) > 0 and set(new["augmenter"]) <= set(AUGMENTERS)
    for row in new.itertuples():
        source = TRAIN.loc[row.source_row]
        assert row.label == source.label and row.text.strip() and row.text != source.text
    keys = out["text"].map(normalise_text)
    assert not keys.duplicated().any()


def test_minority_classes_get_the_variants():
    out = augment(TRAIN, AugmentParams(), np.random.default_rng(0))
    added = out.loc[out["augmenter"] != ORIGINAL, "label"].value_counts()
    assert added.get(NEUTRAL, 0) == 0 and added.get(BEARISH, 0) > 0 and added.get(BULLISH, 0) > 0
    p = AugmentParams(variants_per_row={"bearish": 3.0, "bullish": 1.0, "neutral": 0.0})
    out = augment(TRAIN, p, np.random.default_rng(0))
    added = out.loc[out["augmenter"] != ORIGINAL, "label"].value_counts()
    assert added[BEARISH] > added[BULLISH]


def test_augment_is_deterministic_under_a_seed():
    p = AugmentParams(variants_per_row={"bearish": 2.0, "bullish": 2.0, "neutral": 1.0})
    first = augment(TRAIN, p, np.random.default_rng(7))
    pd.testing.assert_frame_equal(first, augment(TRAIN, p, np.random.default_rng(7)))
    assert not first.equals(augment(TRAIN, p, np.random.default_rng(8)))


def test_disabled_stage_passes_the_training_rows_through():
    out = augment(TRAIN, AugmentParams(enabled=False), np.random.default_rng(0), eval_texts=TRAIN["text"].tolist())
    assert len(out) == len(TRAIN) and (out["augmenter"] == ORIGINAL).all()


def test_exact_and_near_duplicates_of_evaluation_rows_are_removed():
    train = frame(
        [
            ("Acme stock rises 5% after upbeat outlook https://t.co/abc", BULLISH),
            ("Zeta shares drop 3% after weak guidance from the company's new chief", BEARISH),
        ]
    )
    # Equal to a number rewrite of row 0 up to case, link and digits; one word off a variant of row 1.
    eval_texts = [
        "ACME stock rises 9% after upbeat outlook http://t.co/zzz",
        "Zeta shares drop 7% after weak guidance from the firm's new chief",
    ]
    p = AugmentParams(
        variants_per_row={"bearish": 4.0, "bullish": 4.0, "neutral": 0.0},
        augmenters={"number_rewrite": 1.0, "synonym": 1.0},
        drop_eval_overlap_originals=False,
    )
    eval_keys = {overlap_key(t) for t in eval_texts}
    eval_sets = [word_set(t) for t in eval_texts]

    def near(text: str) -> bool:
        return any(jaccard(word_set(text), e) >= p.near_duplicate_threshold for e in eval_sets)

    unfiltered = augment(train, p, np.random.default_rng(0))
    unfiltered_new = unfiltered[unfiltered["augmenter"] != ORIGINAL]
    exact = unfiltered_new["text"].map(overlap_key).isin(eval_keys)
    assert exact.any() and (unfiltered_new["text"].map(near) & ~exact).any()  # both cases really arise

    result = augment_frame(train, p, np.random.default_rng(0), eval_texts=eval_texts)
    new = result.frame[result.frame["augmenter"] != ORIGINAL]
    assert result.eval_duplicates_removed > 0
    assert not new["text"].map(overlap_key).isin(eval_keys).any()
    assert not new["text"].map(near).any()
    assert len(result.frame[result.frame["augmenter"] == ORIGINAL]) == len(train)

    dropped = augment_frame(train, AugmentParams(), np.random.default_rng(0), eval_texts=eval_texts)
    assert dropped.eval_duplicates_removed_originals == 2
    assert not dropped.frame["text"].map(overlap_key).isin(eval_keys).any()


def test_overlap_index_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    vocab = [f"w{chr(97 + i)}" for i in range(12)]

    def sentence() -> str:
        return " ".join(rng.choice(vocab, size=int(rng.integers(1, 7))))

    eval_texts = [sentence() for _ in range(300)]
    probes = [sentence() for _ in range(300)]
    for threshold in (0.5, 0.8, 1.0):
        index = EvalOverlapIndex(eval_texts, threshold)
        eval_sets = [word_set(t) for t in eval_texts]
        for probe in probes:
            expected = any(jaccard(word_set(probe), e) >= threshold for e in eval_sets)
            assert index.matches(probe) == expected, (probe, threshold)
    with pytest.raises(ValueError):
        EvalOverlapIndex(eval_texts, 0.0)


def test_bad_input_neither_crashes_nor_yields_empty_or_flipped_rows():
    bad = frame(
        [
            ("", BULLISH),
            ("   ", BEARISH),
            ("$AAPL $TSLA", BULLISH),
            ("苹果股价大涨，投资者欢呼", BULLISH),
            ("Акции Apple выросли на 5% после отчета", BEARISH),
            ("Stocks rise as trade hopes lift investors. " * 117, BULLISH),  # about 5,000 characters
            ("Acme shares rise after strong results", BULLISH),
        ]
    )
    p = AugmentParams(variants_per_row={"bearish": 3.0, "bullish": 3.0, "neutral": 3.0})
    for max_chars in (1000, 10_000):
        out = augment(bad, dataclasses.replace(p, max_text_chars=max_chars), np.random.default_rng(0))
        new = out[out["augmenter"] != ORIGINAL]
        assert new["text"].str.strip().str.len().gt(0).all()
        assert (new["label"].to_numpy() == bad["label"].to_numpy()[new["source_row"].to_numpy()]).all()
        assert set(new["source_row"]) <= ({5, 6} if max_chars > 5000 else {6})
        assert len(out[out["augmenter"] == ORIGINAL]) == len(bad)


def test_bad_frames_get_clear_errors():
    with pytest.raises(DataError, match="missing column"):
        augment(pd.DataFrame({"text": ["a"]}), AugmentParams(), np.random.default_rng(0))
    with pytest.raises(DataError, match="integer class ids"):
        augment(frame([("Stocks rise", "bullish")]), AugmentParams(), np.random.default_rng(0))


def test_params_are_checked():
    assert from_dict(AugmentParams, {"augmenters": {"synonym": 1}}).augmenters == {"synonym": 1}
    for raw, message in [
        ({"augmenters": {"thesaurus": 1.0}}, "unknown"),
        ({"variants_per_row": {"positive": 1.0}}, "unknown label"),
        ({"variants_per_row": {"bearish": -1}}, ">= 0"),
        ({"near_duplicate_threshold": 1.5}, r"\(0, 1\]"),
        ({"backtranslation_model": "/models/en-de"}, "both"),
    ]:
        with pytest.raises(ConfigError, match=message):
            from_dict(AugmentParams, raw)


# --- back-translation ------------------------------------------------------------------------------


class ScriptedTranslator:
    """A stand-in with fixed answers, to test how the stage uses a translator's outputs."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def translate_round_trip(self, texts):
        self.calls.append(list(texts))
        return [self.answers.get(t, "") for t in texts]


def test_backtranslation_outputs_are_guarded_and_recorded():
    train = frame(
        [
            ("Stocks rise as trade hopes lift investors", BULLISH),
            ("Acme shares drop after weak results", BEARISH),
            ("Zeta shares drop after a lawsuit", BEARISH),
        ]
    )
    translator = ScriptedTranslator(
        {
            train.text[0]: "Shares climb as hopes for trade lift investors",
            train.text[1]: "Acme shares rise after results",  # flips the label: must be rejected
            train.text[2]: "",  # an empty translation: must be dropped
        }
    )
    p = AugmentParams(augmenters={"backtranslation": 1.0})
    out = augment(train, p, np.random.default_rng(0), backtranslator=translator)
    new = out[out["augmenter"] != ORIGINAL]
    assert new[["text", "source_row", "augmenter"]].values.tolist() == [
        ["Shares climb as hopes for trade lift investors", 0, BACKTRANSLATION]
    ]
    assert sorted(translator.calls[0]) == sorted(train.text)  # one batch, each source once
    without_translator = augment(train, p, np.random.default_rng(0))
    assert (without_translator["augmenter"] == ORIGINAL).all()


@pytest.fixture(scope="module")
def tiny_translation_model(tmp_path_factory):
    """A random-init MarianMT model with the packaged BERT tokenizer, saved like a user's model."""
    import torch
    from transformers import AutoTokenizer, MarianConfig, MarianMTModel

    from finsent.training.model import packaged_encoder_path

    tokenizer = AutoTokenizer.from_pretrained(packaged_encoder_path())
    torch.manual_seed(0)
    config = MarianConfig(
        vocab_size=tokenizer.vocab_size,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        decoder_start_token_id=tokenizer.cls_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-marian")
    MarianMTModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_backtranslator_round_trips_through_local_models(tiny_translation_model):
    from finsent.augment.backtranslate import BackTranslator

    translator = BackTranslator(tiny_translation_model, tiny_translation_model, max_length=8, batch_size=4, device="cpu")
    texts = ["Stocks rise after strong earnings", "", "Acme falls 3%", None, "Fed holds rates"]
    out = translator.translate_round_trip(texts)
    assert len(out) == len(texts) and all(isinstance(t, str) for t in out)
    assert out[1] == "" and out[3] == ""

    p = AugmentParams(
        augmenters={"backtranslation": 1.0},
        backtranslation_model=str(tiny_translation_model),
        backtranslation_reverse_model=str(tiny_translation_model),
        backtranslation_max_length=8,
        backtranslation_device="cpu",
    )
    out = augment(TRAIN, p, np.random.default_rng(0), backtranslator=translator)
    new = out[out["augmenter"] != ORIGINAL]
    assert set(new["augmenter"]) <= {BACKTRANSLATION}
    assert new["text"].str.strip().str.len().gt(0).all()
    assert (new["label"].to_numpy() == TRAIN["label"].to_numpy()[new["source_row"].to_numpy()]).all()


def test_backtranslator_needs_a_local_model(tmp_path):
    from finsent.augment.backtranslate import BackTranslator
    from finsent.training.model import ModelError

    with pytest.raises(ModelError, match="config.json"):
        BackTranslator(tmp_path / "missing", tmp_path / "missing")


# --- run ------------------------------------------------------------------------------------------


def test_run_writes_the_augmented_training_set_and_leaves_evaluation_alone(tmp_path):
    eval_df = frame([("Stocks rise to record high as trade hopes lift investors today", BULLISH), ("Fed holds rates", NEUTRAL)])
    TRAIN.to_csv(tmp_path / "train.csv", index=False)
    eval_df.to_csv(tmp_path / "eval.csv", index=False)
    eval_before = (tmp_path / "eval.csv").read_bytes()
    summary = run(AugmentParams(), tmp_path / "train.csv", [tmp_path / "eval.csv"], tmp_path / "augmented" / "train.csv")

    assert (tmp_path / "eval.csv").read_bytes() == eval_before
    written = read_augmented(summary.output)
    assert list(written.columns) == list(COLUMNS) and written["source_row"].dtype == "int64"
    assert summary.rows_out == len(written) and summary.rows_added == (written["augmenter"] != ORIGINAL).sum()
    assert sum(summary.added_by_class.values()) == summary.rows_added == sum(summary.added_by_augmenter.values())
    assert summary.eval_duplicates_removed_originals == 1  # the TRAIN row one word off an eval row
    assert summary.md5 == hashlib.md5((tmp_path / "augmented" / "train.csv").read_bytes()).hexdigest()
    assert not set(written["text"].map(overlap_key)) & set(eval_df["text"].map(overlap_key))
    assert [p.name for p in (tmp_path / "augmented").iterdir()] == ["train.csv"]  # no temporary left


def test_pairs_of_variants_of_one_row_differ():
    out = augment(TRAIN, AugmentParams(variants_per_row={"bearish": 4.0, "bullish": 4.0}), np.random.default_rng(1))
    for _, group in out.groupby("source_row"):
        for a, b in combinations(group["text"], 2):
            assert normalise_text(a) != normalise_text(b)
