"""The [CLS]-only inference forward gives HF's logits, for any batch shape and padding."""

import numpy as np
import pytest
import torch

from finsent.training import cls_forward
from finsent.training.features import encode_texts, pad_batch
from finsent.training.score import predict_proba_encoded
from testkit.tiny_bert import NO_DROPOUT, tiny_bert

TEXTS = [
    "$AAPL beats estimates",
    "Stocks slump as yields jump after the Fed minutes show more hikes ahead",
    "ok",
    "Acme cut to sell at Foo Securities; PT lowered to $12 from $18",
]


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_cls_logits_match_the_hf_forward(tokenizer, layers):
    model = tiny_bert(tokenizer, seed=layers, hidden_size=48, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=96).eval()
    assert cls_forward.supports(model)
    encoded = encode_texts(tokenizer, TEXTS, 128)
    input_ids, mask = pad_batch(encoded, np.arange(len(TEXTS)), pad_to_multiple_of=8)  # real padding in every row
    with torch.inference_mode():
        expected = model(input_ids=input_ids, attention_mask=mask).logits
        got = cls_forward.cls_logits(model, input_ids, mask)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_scoring_uses_it_and_gives_the_hf_probabilities(tokenizer, make_tiny_bert):
    model = make_tiny_bert().eval()
    encoded = encode_texts(tokenizer, TEXTS * 10, 128)
    probs = predict_proba_encoded(model, encoded, batch_size=7)
    input_ids, mask = pad_batch(encoded, np.arange(len(encoded)))
    with torch.inference_mode():
        expected = torch.softmax(model(input_ids=input_ids, attention_mask=mask).logits, -1).numpy()
    assert np.allclose(probs, expected, atol=1e-5)


def test_other_architectures_keep_the_hf_forward(tokenizer):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, n_layers=1, n_heads=2, hidden_dim=64, num_labels=3)
    )
    assert not cls_forward.supports(model)
    probs = predict_proba_encoded(model.eval(), encode_texts(tokenizer, TEXTS, 128))
    assert probs.shape == (len(TEXTS), 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)


def test_training_gradients_match_the_hf_forward(tokenizer):
    """With dropout off, the loss through the [CLS]-only path has HF's gradients, parameter by parameter."""
    model = tiny_bert(tokenizer, **NO_DROPOUT).train()
    input_ids, mask = pad_batch(encode_texts(tokenizer, TEXTS, 128), np.arange(len(TEXTS)))
    targets = torch.tensor([1, 0, 2, 0])
    grads = []
    for module in (cls_forward.FullForward(model), cls_forward.ClsOnly(model)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(module(input_ids, mask), targets).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    hf, ours = grads
    assert set(ours) <= set(hf)
    for name, grad in hf.items():
        assert torch.allclose(ours.get(name, torch.zeros_like(grad)), grad, atol=1e-6), name


def test_dropout_is_on_in_training_mode_only(make_tiny_bert, tokenizer):
    model = make_tiny_bert()
    input_ids, mask = pad_batch(encode_texts(tokenizer, TEXTS, 128), np.arange(len(TEXTS)))
    module = cls_forward.logits_module(model)
    model.train()
    assert not torch.equal(module(input_ids, mask), module(input_ids, mask))
    model.eval()
    with torch.no_grad():
        assert torch.equal(module(input_ids, mask), module(input_ids, mask))


def mean_pooled_reference(model, input_ids, mask):
    """The mean-pooled head from HF's own encoder output: the reference the fast path must match."""
    hidden = model.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
    kept = mask.unsqueeze(-1).float()
    sentence = (hidden * kept).sum(1) / kept.sum(1)
    return model.classifier(model.dropout(model.bert.pooler.activation(model.bert.pooler.dense(sentence))))


@pytest.mark.parametrize("layers", [1, 3])
def test_mean_pooling_reads_the_mean_of_the_unpadded_tokens(tokenizer, layers):
    model = tiny_bert(tokenizer, seed=layers, hidden_size=48, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=96).eval()
    cls_forward.set_pooling(model, "mean")
    input_ids, mask = pad_batch(encode_texts(tokenizer, TEXTS, 128), np.arange(len(TEXTS)), pad_to_multiple_of=8)
    with torch.inference_mode():
        expected = mean_pooled_reference(model, input_ids, mask)
        got = cls_forward.logits_module(model)(input_ids, mask)
        cls = model(input_ids=input_ids, attention_mask=mask).logits
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert not torch.allclose(got, cls, atol=1e-3)  # it is not the [CLS] head
    # Padding does not move a row's logits: the mean skips padded positions.
    alone_ids, alone_mask = pad_batch(encode_texts(tokenizer, TEXTS[2:3], 128), np.arange(1))
    with torch.inference_mode():
        alone = cls_forward.logits_module(model)(alone_ids, alone_mask)
    assert torch.allclose(alone[0], got[2], atol=1e-5)


def test_mean_pooling_trains_every_parameter_with_the_reference_gradients(tokenizer):
    model = tiny_bert(tokenizer, **NO_DROPOUT).train()
    cls_forward.set_pooling(model, "mean")
    input_ids, mask = pad_batch(encode_texts(tokenizer, TEXTS, 128), np.arange(len(TEXTS)))
    targets = torch.tensor([1, 0, 2, 0])
    grads = []
    for forward in (lambda: mean_pooled_reference(model, input_ids, mask), lambda: cls_forward.logits_module(model)(input_ids, mask)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(forward(), targets).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    reference, ours = grads
    assert set(ours) == set(reference)
    # The last layer's query, attention output and feed-forward train on every token, not on [CLS] alone.
    assert ours["bert.encoder.layer.1.output.dense.weight"].abs().sum() > 0
    for name, grad in reference.items():
        assert torch.allclose(ours[name], grad, atol=1e-6), name


def test_the_pooling_is_saved_with_the_model_and_scored_from_it(tokenizer, tmp_path):
    from finsent.training.score import Scorer

    model = tiny_bert(tokenizer).eval()
    cls_forward.set_pooling(model, "mean")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    input_ids, mask = pad_batch(encode_texts(tokenizer, TEXTS, 128), np.arange(len(TEXTS)))
    with torch.inference_mode():
        expected = torch.softmax(mean_pooled_reference(model, input_ids, mask), -1).numpy()
    scorer = Scorer.from_dir(tmp_path, device="cpu", precision="fp32")
    assert cls_forward.pooling_of(scorer.model) == "mean"
    assert np.allclose(scorer.predict_proba(TEXTS), expected, atol=1e-5)


def test_mean_pooling_is_refused_where_it_is_not_implemented(tokenizer):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from finsent.training.model import ModelError

    model = DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, n_layers=1, n_heads=2, hidden_dim=64, num_labels=3)
    )
    with pytest.raises(ModelError, match="needs a BERT classifier"):
        cls_forward.set_pooling(model, "mean")
    model.config.finsent_pooling = "mean"  # a saved config that says so: HF's forward would read another vector
    with pytest.raises(ModelError, match="only BERT classifiers implement"):
        cls_forward.logits_module(model)
    with pytest.raises(ModelError, match="only BERT classifiers implement"):
        cls_forward.head_logits(model, torch.zeros(1, 3, 32), torch.ones(1, 3))  # the drift stage's head
    with pytest.raises(ModelError, match="pooling must be one of cls, mean, not 'max'"):
        cls_forward.set_pooling(tiny_bert(tokenizer), "max")
    edited = tiny_bert(tokenizer)
    edited.config.finsent_pooling = "max"  # a hand-edited config.json: refused, not read as [CLS]
    with pytest.raises(ModelError, match="finsent_pooling='max'; finsent reads one of cls, mean"):
        cls_forward.logits_module(edited)


def test_a_saved_head_finsent_cannot_read_fails_when_the_model_loads(tokenizer, tmp_path):
    """Not at every request: the live service then keeps serving its last good champion."""
    from finsent.training.model import ModelError
    from finsent.training.score import Scorer

    model = tiny_bert(tokenizer)
    model.config.finsent_pooling = "max"
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="finsent_pooling='max'"):
        Scorer.from_dir(tmp_path, device="cpu")
