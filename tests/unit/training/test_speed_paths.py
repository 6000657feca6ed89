"""The fast paths give the same answers as the plain ones: tokenising through the Rust backend,
batches gathered on the device, padding to a multiple, one autocast region when scoring, the GPU
settings of ``train.on_cuda``. Nothing here is timed; the speed itself is measured by bench/."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from finsent.config import ConfigError, TrainParams, load_params
from finsent.training.features import encode_texts, gather_batch, pad_batch, padded_width, to_device
from finsent.training.model import autocast_dtype, cpu_multiplies_bf16, serving_precision
from finsent.training.score import CPU_BF16_MIN_TEXTS, Scorer, predict_proba_encoded
from finsent.training.train import fit, params_for_device
from testkit.bench_modules import bench_module
from testkit.tiny_bert import NO_DROPOUT, tiny_bert

REPO = Path(__file__).resolve().parents[3]


def no_dropout_bert(tokenizer, seed: int = 0, **shape):
    return tiny_bert(tokenizer, seed, **NO_DROPOUT, **shape).eval()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine spinning OpenMP threads
    waiting for a descheduled peer make them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def valid_texts(tfns_valid) -> list[str]:
    return tfns_valid["text"].tolist()


def test_backend_tokenising_gives_the_tokenizers_ids(tokenizer, valid_texts):
    for max_length in (128, 12):
        encoded = encode_texts(tokenizer, valid_texts, max_length)
        reference = tokenizer(valid_texts, truncation=True, max_length=max_length)["input_ids"]
        assert encoded.lengths.tolist() == [len(r) for r in reference]
        assert encoded.ids.tolist() == [t for r in reference for t in r]


def test_tokenising_rejects_non_text_and_accepts_nothing(tokenizer):
    with pytest.raises(TypeError, match="text 1 is float"):
        encode_texts(tokenizer, ["fine", float("nan")], 32)
    empty = encode_texts(tokenizer, [], 32)
    assert len(empty) == 0 and empty.ids.size == 0


def test_padded_width_rounds_up_to_the_multiple():
    assert padded_width(np.array([3, 17, 9])) == 17
    assert padded_width(np.array([3, 17, 9]), 8) == 24
    assert padded_width(np.array([16]), 8) == 16


def test_gather_on_the_device_equals_padding_on_the_host(tokenizer, valid_texts):
    encoded = encode_texts(tokenizer, valid_texts[:300], 128)
    tokens = to_device(encoded, "cpu")
    rng = np.random.default_rng(0)
    for multiple in (1, 8):
        for _ in range(5):
            rows = rng.choice(len(encoded), size=int(rng.integers(1, 40)), replace=False)
            ids, mask = pad_batch(encoded, rows, multiple)
            width = padded_width(encoded.lengths[rows], multiple)
            ids_dev, mask_dev = gather_batch(tokens, torch.from_numpy(rows), width)
            assert torch.equal(ids, ids_dev) and torch.equal(mask, mask_dev)
            assert ids.shape[1] % multiple == 0


def test_batched_scoring_equals_one_text_at_a_time_in_input_order(tokenizer, valid_texts):
    model = no_dropout_bert(tokenizer)
    texts = valid_texts[:40]
    encoded = encode_texts(tokenizer, texts, 128)
    with torch.inference_mode():
        one_by_one = np.concatenate([torch.softmax(model(**tokenizer([t], return_tensors="pt")).logits, -1).numpy() for t in texts])
    for batch_size in (1, 7, 256):
        probs = predict_proba_encoded(model, encoded, batch_size=batch_size)
        np.testing.assert_allclose(probs, one_by_one, atol=1e-5)
    scorer = Scorer(tokenizer, model, device="cpu")
    np.testing.assert_allclose(scorer.predict_proba(texts), one_by_one, atol=1e-5)
    assert scorer.predict_proba([]).shape == (0, 3)


def test_bf16_scoring_stays_close_to_fp32(tokenizer, valid_texts):
    model = no_dropout_bert(tokenizer)
    encoded = encode_texts(tokenizer, valid_texts[:64], 128)
    fp32 = predict_proba_encoded(model, encoded, precision="fp32")
    bf16 = predict_proba_encoded(model, encoded, precision="bf16")
    assert np.abs(fp32 - bf16).max() < 0.02


def test_a_lone_text_on_cpu_scores_in_fp32_where_bf16_is_slower(tokenizer, valid_texts):
    model = no_dropout_bert(tokenizer)
    one, two = (encode_texts(tokenizer, valid_texts[:n], 128) for n in (1, 2))
    assert CPU_BF16_MIN_TEXTS == 2
    np.testing.assert_array_equal(predict_proba_encoded(model, one, precision="bf16"), predict_proba_encoded(model, one, precision="fp32"))
    assert not np.array_equal(predict_proba_encoded(model, two, precision="bf16"), predict_proba_encoded(model, two, precision="fp32"))


def test_only_the_service_scores_in_bf16_on_a_cpu_and_only_one_that_multiplies_it():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert serving_precision("auto", cpu, cpu_bf16=True) == "bf16"
    assert serving_precision("auto", cpu, cpu_bf16=False) == "fp32"  # emulated bf16 is slower than fp32
    assert serving_precision("auto", cuda, cpu_bf16=False) == "bf16"
    assert serving_precision("fp32", cuda, cpu_bf16=True) == "fp32"  # asked for: as asked
    assert serving_precision("bf16", cpu, cpu_bf16=False) == "bf16"
    # training and batch scoring: fp32 on any CPU, so their results do not depend on which CPU ran them
    assert autocast_dtype(cpu, "auto") is None and autocast_dtype(cuda, "auto") == torch.bfloat16
    assert isinstance(cpu_multiplies_bf16(), bool)


def test_on_cuda_overrides_apply_only_on_a_gpu():
    p = TrainParams(batch_size=32, learning_rate=1e-4, on_cuda={"batch_size": 256, "learning_rate": 4e-4, "pad_to_multiple_of": 8})
    assert params_for_device(p, torch.device("cpu")) is p
    gpu = params_for_device(p, torch.device("cuda", 0))
    assert (gpu.batch_size, gpu.learning_rate, gpu.pad_to_multiple_of, gpu.on_cuda) == (256, 4e-4, 8, {})
    assert gpu.epochs == p.epochs  # not overridden: kept
    assert params_for_device(dataclasses.replace(p, on_cuda={}), torch.device("cuda")).batch_size == 32


def test_on_cuda_rejects_unknown_or_invalid_settings():
    with pytest.raises(ConfigError, match="on_cuda"):
        TrainParams(on_cuda={"batch_sise": 256})
    with pytest.raises(ConfigError, match="on_cuda"):
        TrainParams(on_cuda={"device": "cpu"})
    with pytest.raises(ConfigError):
        params_for_device(TrainParams(on_cuda={"batch_size": 0}), torch.device("cuda"))
    with pytest.raises(ConfigError):
        params_for_device(TrainParams(on_cuda={"batch_size": "large"}), torch.device("cuda"))


def test_params_yaml_gpu_settings_load():
    p = load_params(REPO / "params.yaml").train
    gpu = params_for_device(p, torch.device("cuda"))
    assert gpu.batch_size >= p.batch_size and gpu.pad_to_multiple_of % 8 == 0


def _toy(tokenizer, n: int = 90, longest_tail: int = 3):
    rng = np.random.default_rng(0)
    words = {0: "plunge", 1: "surge", 2: "meeting"}
    labels = rng.integers(0, 3, size=n)
    texts = [f"$XYZ shares {words[int(y)]} today" + " after results" * int(rng.integers(0, longest_tail + 1)) for y in labels]
    return encode_texts(tokenizer, texts, 64), labels


def _fit(tokenizer, toy: dict | None = None, shape: dict | None = None, **settings):
    encoded, labels = _toy(tokenizer, **(toy or {}))
    model = no_dropout_bert(tokenizer, **(shape or {}))
    base = dict(
        epochs=2.0, batch_size=16, learning_rate=1e-3, warmup_fraction=0.0, device="cpu", progress=False, checkpoint_every_minutes=0.0
    )
    stats = fit(model, encoded, labels, TrainParams(**{**base, **settings}), log=lambda _: None)
    return model, stats


def test_padding_to_a_multiple_changes_no_result(tokenizer):
    plain, _ = _fit(tokenizer)
    padded, _ = _fit(tokenizer, pad_to_multiple_of=8)
    for (name, a), (_, b) in zip(plain.state_dict().items(), padded.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


def test_bf16_autocast_training_runs_and_learns_like_fp32(tokenizer):
    fp32, _ = _fit(tokenizer)
    bf16, stats = _fit(tokenizer, precision="bf16")
    assert stats["steps"] == 2 * 6 and np.isfinite(stats["final_loss"])
    encoded, labels = _toy(tokenizer)
    agree = predict_proba_encoded(fp32, encoded).argmax(1) == predict_proba_encoded(bf16, encoded).argmax(1)
    assert agree.mean() > 0.9


def test_fit_reports_the_settings_in_effect(tokenizer):
    _, stats = _fit(tokenizer, batch_size=8)
    assert (stats["batch_size"], stats["learning_rate"], stats["epochs"], stats["steps"]) == (8, 1e-3, 2.0, 2 * 12)


@pytest.mark.slow
def test_compiled_training_matches_eager(tokenizer):
    # Full batches of one padded width: one graph to compile. Each further shape is another inductor
    # compile: with the toy's three widths and its short last batch this test took 116 CPU-s with a
    # cold inductor cache (as in CI), 61 with one shape. One encoder layer is a smaller graph: 57 -> 33
    # CPU-s cold (alone, on this 2-core machine), and still every op of a layer, forward and backward.
    one_shape = {"n": 96, "longest_tail": 0}
    one_layer = {"num_hidden_layers": 1}
    eager, _ = _fit(tokenizer, one_shape, one_layer, pad_to_multiple_of=8)
    compiled, _ = _fit(tokenizer, one_shape, one_layer, pad_to_multiple_of=8, compile=True)
    for (name, a), (_, b) in zip(eager.state_dict().items(), compiled.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.slow
def test_speed_bench_runs_end_to_end_on_a_tiny_model(tiny_model_dir, tmp_path):
    bench_speed = bench_module("bench_speed")
    out = tmp_path / "bench.json"
    results = bench_speed.main(
        [
            "--device",
            "cpu",
            "--encoder",
            str(tiny_model_dir),
            "--max-train-rows",
            "96",
            "--epochs",
            "1",
            "--sweep",
            "48:1e-3:1",
            "--score-texts",
            "200",
            "--bert-steps",
            "2",
            "--bert-layers",
            "1",
            "--bert-hidden",
            "64",
            "--out",
            str(out),
        ]
    )
    sections = results["sections"]
    assert not [k for k, v in sections.items() if "error" in v]
    assert {"minilm_trainer", "minilm_finsent", "sweep_48_0.001_1.0", "scoring", "bertbase_trainer", "bertbase_finsent"} <= set(sections)
    assert sections["scoring"]["label_agreement"] > 0.99
    assert out.is_file() and results["summary"]["minilm_train_speedup"] > 0


def test_precision_bench_runs_end_to_end_on_a_tiny_model(tiny_model_dir, tmp_path):
    bench_precision = bench_module("bench_precision")
    out = tmp_path / "precision.json"
    assert bench_precision.main(["--model", str(tiny_model_dir), "--seconds", "0.05", "--rounds", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [q["pass_size"] for q in result["quality"]] == [16, 256] and result["test_rows"] == 2388
    assert all(0.0 <= q["label_agreement"] <= 1.0 and q["max_probability_change"] < 0.05 for q in result["quality"])
    assert set(result["texts_per_s"]["bf16_over_fp32"]) == {str(n) for n in bench_precision.PASS_SIZES}
    assert isinstance(result["machine"]["cpu_multiplies_bf16"], bool)
