"""The real packaged MiniLM encoder, fine-tuned on a small TFNS sample (about a minute on 2 cores)."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from finsent.config import TrainParams
from finsent.data.frames import stratified_sample
from finsent.training.features import encode_texts
from finsent.training.model import load_classifier
from finsent.training.score import predict_proba_encoded
from finsent.training.train import fit, set_seed


@pytest.mark.slow
def test_fine_tuned_minilm_beats_the_majority_class(tfns_train, tfns_valid):
    p = TrainParams(epochs=3.0, batch_size=32, learning_rate=1e-4, progress=False, checkpoint_every_minutes=0.0)
    train = stratified_sample(tfns_train, 1200, seed=0)
    valid = stratified_sample(tfns_valid, 400, seed=0)
    set_seed(p.seed)
    tokenizer, model = load_classifier(p.base_model)
    fit(model, encode_texts(tokenizer, train["text"].tolist(), p.max_length), train["label"].to_numpy(), p)
    pred = predict_proba_encoded(model, encode_texts(tokenizer, valid["text"].tolist(), p.max_length)).argmax(1)
    y = valid["label"].to_numpy()
    majority = np.full_like(y, np.bincount(train["label"]).argmax())
    accuracy, majority_accuracy = (pred == y).mean(), (majority == y).mean()
    macro_f1, majority_f1 = f1_score(y, pred, average="macro"), f1_score(y, majority, average="macro")
    assert accuracy > majority_accuracy + 0.03, (accuracy, majority_accuracy)
    assert macro_f1 > majority_f1 + 0.15, (macro_f1, majority_f1)
