"""The four switches for learning from unlabelled news, each through the loop on the tiny BERT: FGM
(adversarial steps on the embeddings), LoRA (adapters merged before saving), TAPT (masked-LM steps
before fine-tuning) and self-training (a calibrated first pass labels the news for a second)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from finsent.config import TrainParams
from finsent.data.validate import normalise_text
from finsent.training.features import encode_texts
from finsent.training.model import ModelError, fully_loaded, load_classifier
from finsent.training.score import Scorer, predict_proba_encoded
from finsent.training.self_training import pseudo_label, with_pseudo_rows
from finsent.training.tapt import copy_encoder, masked_lm, pretrain
from finsent.training.train import fingerprint_of, fit, fit_frames, run
from testkit.tiny_bert import TINY_RECIPE, save_tiny_bert
from testkit.torchrun import two_process_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The sentiment word decides the label (as in test_train.py).
WORDS = {0: ["down", "lower", "weak"], 1: ["up", "higher", "strong"], 2: ["today", "monday", "report"]}


def toy_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    return pd.DataFrame({"text": [f"$XYZ shares {rng.choice(WORDS[int(y)])} today" for y in labels], "label": labels})


def toy_news(n: int, seed: int = 2) -> list[str]:
    """Distinct unlabelled texts of the same task, none a copy of a toy_frame row."""
    rng = np.random.default_rng(seed)
    return [f"$ABC stock {rng.choice(WORDS[int(y)])} {i}" for i, y in enumerate(rng.integers(0, 3, size=n))]


def params(**kw) -> TrainParams:
    """The plain fine-tune on the tiny model (FGM off unless a test turns it on)."""
    base = dict(epochs=3.0, batch_size=16, learning_rate=1e-2, warmup_fraction=0.0, progress=False, checkpoint_every_minutes=0.0)
    base |= TINY_RECIPE
    return TrainParams(**{**base, **kw})


def accuracy(model, encoded, labels) -> float:
    return float((predict_proba_encoded(model, encoded).argmax(1) == labels).mean())


def quiet(_: str) -> None:
    pass


# --- FGM -------------------------------------------------------------------------------------------


def test_fgm_changes_the_training_and_the_model_still_learns(tokenizer, make_tiny_bert):
    df = toy_frame(480)
    encoded, labels = encode_texts(tokenizer, df["text"].tolist(), 32), df["label"].to_numpy()
    p = params(epochs=5.0, learning_rate=3e-3, warmup_fraction=0.1, seed=0)
    plain = make_tiny_bert(0)  # each model made right before its fit: the same dropout masks follow
    plain_stats = fit(plain, encoded, labels, p, log=quiet)
    adversarial = make_tiny_bert(0)
    # The tiny model's embeddings are small (std 0.02, 32 wide): a step of norm 0.1 is already a strong one.
    fgm_stats = fit(adversarial, encoded, labels, dataclasses.replace(p, fgm_epsilon=0.1), log=quiet)
    assert fgm_stats["final_loss"] != pytest.approx(plain_stats["final_loss"], rel=1e-4)
    assert not torch.equal(plain.get_input_embeddings().weight, adversarial.get_input_embeddings().weight)
    assert accuracy(adversarial, encoded, labels) > 0.9


# --- LoRA ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("lora")
    base = save_tiny_bert(root / "base", tokenizer)
    toy_frame(240).to_csv(root / "train.csv", index=False)
    toy_frame(60, seed=1).to_csv(root / "dev.csv", index=False)
    # The frozen encoder is random here: the adapters and the head need a high rate to learn the toy task.
    # (Some seeds leave the tiny model on one class with any rate: seed 0 learns it.)
    p = params(base_model=str(base), lora_rank=4, lora_alpha=8, learning_rate=5e-2, epochs=8.0, seed=0)
    summary = run(p, root / "train.csv", root / "out", log=quiet, dev_path=root / "dev.csv")
    return root, base, summary


def test_lora_saves_a_plain_classifier_that_serves_as_any_other(lora_run):
    root, _, summary = lora_run
    model_dir = root / "out" / "model"
    assert not (model_dir / "adapter_config.json").exists() and not (model_dir / "adapter_model.safetensors").exists()
    assert "peft" not in (model_dir / "config.json").read_text()
    _, saved = load_classifier(str(model_dir), for_training=False)
    assert type(saved).__name__ == "BertForSequenceClassification"
    assert not any("lora" in k or "base_layer" in k or "modules_to_save" in k for k in saved.state_dict())
    scorer = Scorer.from_dir(model_dir)
    probs = scorer.predict_proba(["$XYZ shares up 5", "$XYZ shares down 7"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert summary.calibration["kind"] in {"temperature", "vector", "none"}  # calibration ran on the merged model
    assert summary.dev_macro_f1 is not None and summary.dev_macro_f1 > 0.9  # it learned the task


def test_lora_changes_only_the_adapted_layers_and_the_head(lora_run):
    _, base, summary = lora_run
    before = load_classifier(str(base), for_training=False)[1].state_dict()
    after = load_classifier(summary.model_dir, for_training=False)[1].state_dict()
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    adapted = ("attention.self.query.weight", "attention.self.value.weight", "bert.pooler.", "classifier.")
    assert changed and all(any(part in k for part in adapted) for k in changed), sorted(changed)
    assert any(".query.weight" in k for k in changed) and any("classifier." in k for k in changed)


def test_an_interrupted_lora_run_resumes_to_the_same_model(tokenizer, make_tiny_bert, tmp_path):
    df = toy_frame(96)
    encoded, labels = encode_texts(tokenizer, df["text"].tolist(), 32), df["label"].to_numpy()
    p = params(epochs=2.0, lora_rank=4, checkpoint_every_minutes=1e-9)  # a checkpoint after every step
    fingerprint = fingerprint_of(p, (df["text"].tolist(), labels))
    reference = make_tiny_bert(0)
    fit(reference, encoded, labels, p, log=quiet)

    def interrupt(step, loss):
        if step == 5:
            raise KeyboardInterrupt

    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(make_tiny_bert(0), encoded, labels, p, checkpoint_path=checkpoint, fingerprint=fingerprint, on_step=interrupt, log=quiet)
    resumed = make_tiny_bert(0)
    stats = fit(resumed, encoded, labels, p, checkpoint_path=checkpoint, fingerprint=fingerprint, log=quiet)
    assert stats["resumed_from_step"] == 5
    for (name, x), (_, y) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-6), name


# --- TAPT ------------------------------------------------------------------------------------------


def test_masked_lm_loss_falls_on_the_tiny_model(tiny_model_dir, tokenizer):
    masked = masked_lm(str(tiny_model_dir))  # the tiny classifier's folder: the MLM head starts random
    texts = toy_frame(300)["text"].tolist()
    torch.manual_seed(0)
    stats = pretrain(masked, tokenizer, texts, params(tapt_steps=40, tapt_batch_size=16, tapt_learning_rate=2e-3), log=quiet)
    assert stats["steps"] == 40 and stats["texts"] == 300 and len(stats["loss_curve"]) == 10
    assert stats["first_loss"] > np.log(tokenizer.vocab_size) - 1.0  # a random head: close to uniform over the vocabulary
    assert stats["last_loss"] < stats["first_loss"] - 0.5


def test_tapt_batches_texts_of_similar_lengths_and_each_text_once_a_pass(tiny_model_dir, tokenizer, monkeypatch):
    """Random batches of TFNS pad to twice the mean length; TAPT's batches are length-bucketed as
    fine-tuning's are (0.95 s a MiniLM step on this CPU, against 1.41 for random batches)."""
    import finsent.training.tapt as tapt

    short, long = [f"up {i}" for i in range(32)], [" ".join(["shares rose after the results"] * 6) + f" {i}" for i in range(32)]
    seen: list[torch.Tensor] = []
    loss = tapt.mlm_loss

    def recording(model, input_ids, attention_mask, labels):
        seen.append(attention_mask.sum(1))  # each row's length
        return loss(model, input_ids, attention_mask, labels)

    monkeypatch.setattr(tapt, "mlm_loss", recording)
    pretrain(masked_lm(str(tiny_model_dir)), tokenizer, short + long, params(tapt_steps=16, tapt_batch_size=4), log=quiet)
    assert len(seen) == 16 and sum(len(rows) for rows in seen) == 64  # one pass: every text once
    mixed = [rows for rows in seen if rows.max() > 2 * rows.min()]
    assert len(mixed) <= 1  # only where the sorted bucket turns from short to long texts


def test_tapt_moves_the_encoder_and_leaves_the_head_alone(tiny_model_dir, tokenizer):
    _, classifier = load_classifier(str(tiny_model_dir))
    _, base = load_classifier(str(tiny_model_dir))
    masked = masked_lm(str(tiny_model_dir))
    pretrain(
        masked, tokenizer, toy_frame(100)["text"].tolist(), params(tapt_steps=5, tapt_batch_size=8, tapt_learning_rate=1e-3), log=quiet
    )
    copy_encoder(masked, classifier)
    adapted, original = classifier.state_dict(), base.state_dict()
    encoder = [k for k in adapted if k.startswith(("bert.encoder.", "bert.embeddings."))]
    assert all(torch.equal(adapted[k], masked.state_dict()[k]) for k in encoder)
    assert any(not torch.equal(adapted[k], original[k]) for k in encoder)
    assert all(torch.equal(adapted[k], original[k]) for k in adapted if k.startswith(("bert.pooler.", "classifier.")))


def test_tapt_refuses_an_encoder_of_another_shape(tiny_model_dir, tokenizer, tmp_path):
    deeper = save_tiny_bert(tmp_path / "deeper", tokenizer, num_hidden_layers=3)
    _, classifier = load_classifier(str(tiny_model_dir))
    with pytest.raises(ModelError, match="TAPT"):
        copy_encoder(masked_lm(str(deeper)), classifier)


def test_a_weight_left_unloaded_is_named_at_the_load(make_tiny_bert):
    """transformers 5 leaves a weight it failed to load on the meta device (model.fully_loaded): the
    load says so, instead of the first `.to()` failing on "Cannot copy out of meta tensor"."""
    model = make_tiny_bert()
    assert fully_loaded(model, "tiny") is model
    embeddings = model.get_input_embeddings()
    embeddings.weight = torch.nn.Parameter(torch.empty(embeddings.weight.shape, device="meta"))
    with pytest.raises(ModelError, match=r"loading 'tiny' left bert\.embeddings\.word_embeddings\.weight without weights"):
        fully_loaded(model, "tiny")


def test_loads_in_several_threads_leave_weight_tying_on(tiny_model_dir, monkeypatch):
    """transformers 5 turns tying off class-wide during a load (model.from_pretrained): without finsent's
    lock, 4 threads of 5 loads left it off in 3 runs of 3, and every later masked-LM load failed."""
    import threading

    from transformers import AutoModelForSequenceClassification, PreTrainedModel

    from finsent.training.model import from_pretrained

    tie_weights = PreTrainedModel.tie_weights
    monkeypatch.setattr(PreTrainedModel, "tie_weights", tie_weights)  # put back even if this fails: the worker's later loads

    def load_five():
        for _ in range(5):
            from_pretrained(AutoModelForSequenceClassification, tiny_model_dir)

    threads = [threading.Thread(target=load_five) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert PreTrainedModel.tie_weights is tie_weights
    assert fully_loaded(masked_lm(str(tiny_model_dir)), "tiny")


def test_the_packaged_minilm_has_no_masked_lm_head():
    """tapt.py's docstring says the packaged MiniLM's MLM head starts random: its weights hold none."""
    from safetensors import safe_open

    from finsent.training.model import packaged_encoder_path

    with safe_open(str(packaged_encoder_path() / "model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
    assert any(k.startswith("encoder.layer.") for k in keys) and not any("predictions" in k or k.startswith("cls.") for k in keys)


def test_run_pretrains_on_the_training_texts_and_the_news_before_fine_tuning(tiny_model_dir, tmp_path):
    toy_frame(120).to_csv(tmp_path / "train.csv", index=False)
    toy_frame(30, seed=1).to_csv(tmp_path / "dev.csv", index=False)
    pd.DataFrame({"text": toy_news(80)}).to_csv(tmp_path / "news.csv", index=False)
    p = params(base_model=str(tiny_model_dir), epochs=1.0, tapt_steps=10, tapt_batch_size=8, tapt_learning_rate=1e-3)
    summary = run(
        p, tmp_path / "train.csv", tmp_path / "out", log=quiet, dev_path=tmp_path / "dev.csv", unlabelled_path=tmp_path / "news.csv"
    )
    assert summary.unlabelled_texts == 80 and summary.tapt["steps"] == 10
    assert summary.tapt["texts"] == 80 + len(set(toy_frame(120)["text"]))  # the news + the distinct training texts (labels unused)
    saved = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert saved["tapt"]["loss_curve"] and saved["self_training"] == {}
    off = run(
        dataclasses.replace(p, tapt_steps=0), tmp_path / "train.csv", tmp_path / "off", log=quiet, unlabelled_path=tmp_path / "news.csv"
    )
    assert off.tapt == {} and off.unlabelled_texts == 0  # the news is read only when a switch needs it


def test_a_resumed_run_skips_tapt_its_checkpoint_already_holds(tiny_model_dir, tmp_path):
    p = params(
        base_model=str(tiny_model_dir), epochs=2.0, eval_every_epochs=0.5, checkpoint_every_minutes=1e-9, tapt_steps=4, tapt_batch_size=8
    )
    train, dev, news = toy_frame(64), toy_frame(40, seed=1), toy_news(20)
    checkpoint = tmp_path / "checkpoint.pt"

    def stop_at_the_first_evaluation(message: str) -> None:
        if message.startswith("step "):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # after TAPT and a few checkpointed fine-tuning steps
        fit_frames(p, train, dev, unlabelled=news, checkpoint_path=checkpoint, log=stop_at_the_first_evaluation)
    _, _, resumed = fit_frames(p, train, dev, unlabelled=news, checkpoint_path=checkpoint, log=quiet)
    assert resumed["resumed_from_step"] > 0 and "tapt" not in resumed
    _, _, other = fit_frames(dataclasses.replace(p, tapt_steps=5), train, dev, unlabelled=news, checkpoint_path=checkpoint, log=quiet)
    assert other["resumed_from_step"] == 0 and other["tapt"]["steps"] == 5  # other settings: TAPT runs, the checkpoint is not theirs


# --- self-training ---------------------------------------------------------------------------------


def test_pseudo_labels_keep_only_the_confident_texts():
    texts = ["a", "b", "c", "d"]
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    pseudo = pseudo_label(texts, probs, 0.75)
    assert pseudo.texts == ["a", "c"] and pseudo.labels.tolist() == [0, 2] and pseudo.candidates == 4
    assert (pseudo.confidence >= 0.75).all()
    assert pseudo.summary()["by_class"] == {"bearish": 1, "bullish": 0, "neutral": 1}
    rows, weights = with_pseudo_rows(pd.DataFrame({"text": ["x"], "label": [1]}), pseudo, 0.3)
    assert rows["text"].tolist() == ["x", "a", "c"] and rows["label"].tolist() == [1, 0, 2]
    assert weights.tolist() == pytest.approx([1.0, 0.3, 0.3])
    with pytest.raises(ValueError, match="probabilities"):
        pseudo_label(texts, probs[:3], 0.75)


def test_self_training_adds_confident_news_rows_and_never_a_dev_text(tiny_model_dir, tmp_path):
    train, dev = toy_frame(240), toy_frame(60, seed=1)
    fresh = toy_news(120)
    dev_copies = [f"  {t.upper()} " for t in dev["text"][:20]]  # copies of dev rows, case and spacing changed
    news = fresh + dev_copies
    p = params(base_model=str(tiny_model_dir), epochs=4.0, learning_rate=3e-3, self_training_threshold=0.6, self_training_weight=0.5)
    checkpoint = tmp_path / "checkpoint.pt"
    messages: list[str] = []
    _, _, stats = fit_frames(p, train, dev, unlabelled=news, checkpoint_path=checkpoint, log=messages.append)

    st = stats["self_training"]
    assert stats["unlabelled_texts"] == len(fresh) and st["candidates"] == len(fresh)
    assert st["first_pass_steps"] > 0 and st["teacher_calibration"] in {"temperature", "vector"}
    assert 0 < st["pseudo_labelled"] <= len(fresh) and st["mean_confidence"] >= 0.6
    cached = json.loads((tmp_path / "pseudo-labels.json").read_text())  # what the second pass trained on
    assert min(cached["confidence"]) >= 0.6 and set(cached["texts"]) <= set(fresh)
    dev_keys = {normalise_text(t) for t in dev["text"]}
    assert not {normalise_text(t) for t in cached["texts"]} & dev_keys
    assert any("20 copies of dev rows" in m for m in messages)
    assert stats["steps"] > st["first_pass_steps"]  # the second pass has more rows
    # A rerun (a resumed flow) takes the first pass's labels from the file instead of training it again.
    _, _, again = fit_frames(p, train, dev, unlabelled=news, checkpoint_path=checkpoint, log=quiet)
    assert "first_pass_steps" not in again["self_training"] and again["self_training"]["pseudo_labelled"] == st["pseudo_labelled"]


def test_self_training_keeps_the_first_pass_when_no_text_is_confident_enough(tiny_model_dir):
    """A threshold no calibrated probability of a barely trained model reaches: no second pass."""
    p = params(base_model=str(tiny_model_dir), epochs=1.0, learning_rate=1e-4, self_training_threshold=0.99)
    messages: list[str] = []
    _, _, stats = fit_frames(p, toy_frame(64), toy_frame(45, seed=1), unlabelled=toy_news(30), log=messages.append)
    assert stats["self_training"]["pseudo_labelled"] == 0 and stats["steps"] == stats["self_training"]["first_pass_steps"]
    assert any("the first pass is the model" in m for m in messages)


def test_self_training_without_news_is_one_pass(tiny_model_dir):
    messages: list[str] = []
    _, _, stats = fit_frames(
        params(base_model=str(tiny_model_dir), epochs=1.0, self_training_threshold=0.9), toy_frame(64), None, log=messages.append
    )
    assert "self_training" not in stats and any("no unlabelled texts" in m for m in messages)


# --- under torchrun ----------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "switches",
    [
        {"lora_rank": 4, "lora_alpha": 8, "lora_dropout": 0.0, "fgm_epsilon": 0.0},
        {"fgm_epsilon": 0.1, "tapt_steps": 4, "tapt_batch_size": 8, "self_training_threshold": 0.5},
    ],
    ids=["lora", "fgm+tapt+self_training"],
)
def test_two_gloo_processes_train_the_switches_as_one_process(tmp_path, tokenizer, switches):
    """DDP with the switches on gives one process's model: LoRA's frozen weights and FGM's second
    backward pass go through DDP, TAPT runs alike on each process, self-training's rows are rank 0's."""
    import os
    import subprocess
    from pathlib import Path

    import yaml

    from testkit.tiny_bert import NO_DROPOUT

    src = Path(__file__).resolve().parents[3] / "src"
    base = save_tiny_bert(tmp_path / "base", tokenizer, **NO_DROPOUT)  # dropout masks differ between processes
    toy_frame(240).to_csv(tmp_path / "train.csv", index=False)
    toy_frame(60, seed=1).to_csv(tmp_path / "dev.csv", index=False)  # 40 rows or more: the teacher is calibrated
    pd.DataFrame({"text": toy_news(40)}).to_csv(tmp_path / "news.csv", index=False)
    settings = dict(
        base_model=str(base),
        batch_size=48,
        epochs=4.0,
        learning_rate=1e-2,
        warmup_fraction=0.0,
        device="cpu",
        progress=False,
        checkpoint_every_minutes=0.0,
        max_length=32,
        seed=0,
        **switches,
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": settings}))
    p = TrainParams(**settings)
    single = run(
        p, tmp_path / "train.csv", tmp_path / "single", log=quiet, dev_path=tmp_path / "dev.csv", unlabelled_path=tmp_path / "news.csv"
    )

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    cmd = two_process_training(tmp_path, unlabelled="news.csv")
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    summary = json.loads((tmp_path / "ddp" / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == single.steps
    assert summary["tapt"].get("steps") == single.tapt.get("steps")
    confidence = summary["self_training"].pop("mean_confidence", None), single.self_training.pop("mean_confidence", None)
    assert summary["self_training"] == single.self_training and confidence[0] == pytest.approx(confidence[1], abs=1e-5)
    if "self_training_threshold" in switches:  # the pseudo-labelled rows were there to agree on
        assert single.self_training["pseudo_labelled"] > 0
    _, one = load_classifier(single.model_dir, for_training=False)
    _, two = load_classifier(str(tmp_path / "ddp" / "model"), for_training=False)
    assert not any("lora" in k for k in two.state_dict())
    differ = max(float((one.state_dict()[k] - two.state_dict()[k]).abs().max()) for k in one.state_dict())
    assert differ < 1e-4, f"DDP and single-process weights differ by {differ}"
