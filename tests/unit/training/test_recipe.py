"""The recipe's pieces on their own: layer-wise learning rates, schedules, the loss, FGM, LoRA, model
selection, and the settings' checks."""

from pathlib import Path

import numpy as np
import pytest
import torch

from finsent.config import PLAIN_FINE_TUNE, ConfigError, TrainParams, load_params
from finsent.training.model import ModelError
from finsent.training.recipe import (
    DevSelection,
    attach_lora,
    average_states,
    class_weights,
    eval_steps,
    fgm_backward,
    layer_depth,
    make_scheduler,
    merge_lora,
    param_groups,
    summed_loss,
)
from testkit.tiny_bert import NO_DROPOUT, tiny_bert


def test_layer_depth_counts_down_from_the_head():
    assert layer_depth("classifier.weight", 6) == 0
    assert layer_depth("bert.pooler.dense.weight", 6) == 0
    assert layer_depth("bert.encoder.layer.5.output.dense.weight", 6) == 1
    assert layer_depth("bert.encoder.layer.0.attention.self.query.weight", 6) == 6
    assert layer_depth("bert.embeddings.word_embeddings.weight", 6) == 7
    assert layer_depth("distilbert.transformer.layer.2.ffn.lin1.weight", 6) == 4


def test_layer_wise_decay_gives_lower_layers_smaller_rates_and_covers_every_parameter_once(make_tiny_bert):
    model = make_tiny_bert()  # 2 layers
    groups = param_groups(model, TrainParams(learning_rate=1e-3, layer_lr_decay=0.5, weight_decay=0.01))
    ids = [id(t) for g in groups for t in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    lr_of = {id(t): g["lr"] for g in groups for t in g["params"]}
    wd_of = {id(t): g["weight_decay"] for g in groups for t in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["classifier.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(named["bert.encoder.layer.1.output.dense.weight"])] == pytest.approx(5e-4)
    assert lr_of[id(named["bert.encoder.layer.0.output.dense.weight"])] == pytest.approx(2.5e-4)
    assert lr_of[id(named["bert.embeddings.word_embeddings.weight"])] == pytest.approx(1.25e-4)
    assert wd_of[id(named["bert.encoder.layer.0.output.dense.bias"])] == 0.0
    assert wd_of[id(named["bert.encoder.layer.0.output.LayerNorm.weight"])] == 0.0
    assert wd_of[id(named["classifier.weight"])] == 0.01
    # Off (1.0): one learning rate everywhere.
    assert {g["lr"] for g in param_groups(model, TrainParams(learning_rate=1e-3))} == {1e-3}


@pytest.mark.parametrize("schedule, midpoint", [("linear", 0.5), ("cosine", 0.5), ("constant", 1.0)])
def test_schedules_after_warm_up(schedule, midpoint):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, TrainParams(schedule=schedule, warmup_fraction=0.0), total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(1.0)
    assert rates[50] == pytest.approx(midpoint, abs=0.02)
    if schedule == "cosine":  # slower than linear early, faster late
        assert rates[25] > 0.75 and rates[75] < 0.25


def test_balanced_class_weights_give_each_class_the_same_total():
    labels = np.array([0] * 10 + [1] * 30 + [2] * 60)
    weights = class_weights(labels, 3, "balanced").numpy()
    totals = weights * np.bincount(labels)
    assert np.allclose(totals, totals[0])
    assert class_weights(labels, 3, "none") is None


def test_loss_variants():
    torch.manual_seed(0)
    logits, targets = torch.randn(8, 3), torch.randint(0, 3, (8,))
    plain = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    assert summed_loss(logits, targets) == pytest.approx(plain.item())
    # R-Drop: two identical passes have no divergence; different passes add a positive KL term.
    same = summed_loss(torch.cat([logits, logits]), targets, rdrop_alpha=1.0)
    assert same == pytest.approx(plain.item(), rel=1e-5)
    other = torch.cat([logits, logits + torch.randn(8, 3)])
    mean_ce = sum(torch.nn.functional.cross_entropy(half, targets, reduction="sum") for half in other.chunk(2)) / 2
    assert summed_loss(other, targets, rdrop_alpha=1.0) > mean_ce.item() + 1e-3
    assert summed_loss(other, targets, rdrop_alpha=2.0) > summed_loss(other, targets, rdrop_alpha=1.0)
    # Label smoothing costs a confident right answer something.
    confident = torch.tensor([[10.0, -10.0, -10.0]])
    assert summed_loss(confident, torch.tensor([0]), label_smoothing=0.1) > summed_loss(confident, torch.tensor([0]))


def test_distillation_mixes_label_and_teacher_cross_entropy():
    torch.manual_seed(1)
    logits, targets = torch.randn(6, 3), torch.randint(0, 3, (6,))
    teacher = torch.softmax(torch.randn(6, 3), -1)
    hard = summed_loss(logits, targets)
    soft = torch.nn.functional.cross_entropy(logits, teacher, reduction="sum")
    assert summed_loss(logits, targets, soft_targets=teacher, distill_alpha=0.0) == pytest.approx(hard.item())
    assert summed_loss(logits, targets, soft_targets=teacher, distill_alpha=1.0) == pytest.approx(soft.item())
    mixed = summed_loss(logits, targets, soft_targets=teacher, distill_alpha=0.25)
    assert mixed == pytest.approx(0.75 * hard.item() + 0.25 * soft.item())
    one_hot = torch.nn.functional.one_hot(targets, 3).float()  # a teacher that agrees with the labels
    assert summed_loss(logits, targets, soft_targets=one_hot, distill_alpha=0.6) == pytest.approx(hard.item(), rel=1e-5)


def test_dev_selection_keeps_the_best_states_and_counts_evaluations_without_gain():
    model = torch.nn.Linear(2, 1)
    selection = DevSelection(keep=2, patience=2)
    for step, f1 in [(10, 0.5), (20, 0.7), (30, 0.6), (40, 0.65)]:
        with torch.no_grad():
            model.weight.fill_(step)
        selection.record(step, step / 10, {"macro_f1": f1, "accuracy": f1, "loss": 1.0}, model)
    assert selection.best_step == 20
    assert [s for _, s, _ in selection.best] == [20, 40]
    assert float(selection.best[0][2]["weight"][0, 0]) == 20.0  # a copy, not the live weights
    assert selection.evaluations_without_gain == 2 and selection.should_stop
    assert not DevSelection(keep=1, patience=0, evaluations_without_gain=5).should_stop


def test_average_states_is_the_mean():
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(7)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)}
    averaged = average_states([a, b])
    assert torch.equal(averaged["w"], torch.tensor([2.0, 4.0])) and int(averaged["n"]) == 7


def test_dev_evaluations_every_half_epoch_and_at_the_end():
    assert eval_steps(25, 10, 0.5) == {5, 10, 15, 20, 25}
    assert eval_steps(25, 10, 1.0) == {10, 20, 25}


@pytest.mark.parametrize(
    "bad",
    [
        {"schedule": "step"},
        {"class_weighting": "inverse"},
        {"pooling": "max"},
        {"layer_lr_decay": 0.0},
        {"label_smoothing": 1.0},
        {"rdrop_alpha": -1.0},
        {"average_checkpoints": 0},
        {"eval_every_epochs": 0.0},
        {"distill_alpha": 1.5},
    ],
)
def test_bad_recipe_settings_are_rejected(bad):
    with pytest.raises(ConfigError):
        TrainParams(**bad)


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"fgm_epsilon": -0.1}, "train.fgm_epsilon"),
        ({"lora_rank": -1}, "train.lora_rank"),
        ({"lora_alpha": 0}, "train.lora_alpha"),
        ({"lora_dropout": 1.0}, "train.lora_dropout"),
        ({"lora_target_modules": []}, "train.lora_target_modules"),
        ({"lora_modules_to_save": [""]}, "train.lora_modules_to_save"),
        ({"fgm_epsilon": 1.0, "lora_rank": 8}, "train.fgm_epsilon"),
        ({"tapt_steps": -5}, "train.tapt_steps"),
        ({"tapt_batch_size": 0}, "train.tapt_batch_size"),
        ({"tapt_learning_rate": 0.0}, "train.tapt_learning_rate"),
        ({"tapt_mlm_probability": 1.0}, "train.tapt_mlm_probability"),
        ({"self_training_threshold": 0.3}, "train.self_training_threshold"),
        ({"self_training_threshold": 1.0}, "train.self_training_threshold"),
        ({"self_training_weight": 0.0}, "train.self_training_weight"),
        ({"unlabelled_max_texts": 0}, "train.unlabelled_max_texts"),
    ],
)
def test_bad_unlabelled_recipe_settings_name_their_key(bad, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        TrainParams(**bad)


def test_fgm_alone_is_on_by_default_and_only_tapt_and_self_training_read_news():
    p = TrainParams()
    assert (p.fgm_epsilon, p.lora_rank, p.tapt_steps, p.self_training_threshold) == (1.0, 0, 0, 0.0)
    assert load_params(Path(__file__).resolve().parents[3] / "params.yaml").train == p  # params.yaml's recipe is the dataclass's
    assert TrainParams(**PLAIN_FINE_TUNE).fgm_epsilon == 0.0
    assert not p.reads_unlabelled_texts
    assert TrainParams(tapt_steps=10).reads_unlabelled_texts and TrainParams(self_training_threshold=0.9).reads_unlabelled_texts
    assert not TrainParams(fgm_epsilon=1.0).reads_unlabelled_texts and not TrainParams(lora_rank=8, fgm_epsilon=0.0).reads_unlabelled_texts


def test_row_weights_scale_each_rows_cross_entropy():
    torch.manual_seed(2)
    logits, targets = torch.randn(5, 3), torch.randint(0, 3, (5,))
    weights = torch.tensor([1.0, 0.5, 0.0, 2.0, 1.0])
    per_row = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    assert summed_loss(logits, targets, row_weights=weights) == pytest.approx((per_row * weights).sum().item(), rel=1e-6)
    assert summed_loss(logits, targets, row_weights=torch.ones(5)) == pytest.approx(summed_loss(logits, targets).item(), rel=1e-6)
    class_weight = torch.tensor([2.0, 1.0, 0.5])
    weighted = torch.nn.functional.cross_entropy(logits, targets, weight=class_weight, reduction="none")
    got = summed_loss(logits, targets, weight=class_weight, row_weights=weights)
    assert got == pytest.approx((weighted * weights).sum().item(), rel=1e-6)


def _loss_of(model, ids, mask, targets):
    return summed_loss(model(input_ids=ids, attention_mask=mask).logits, targets)


def test_fgm_adds_the_loss_at_perturbed_embeddings_and_puts_the_weights_back(tokenizer):
    """The adversarial loss is higher than the clean one (a step up the gradient), its gradient is
    added to the clean one, and the embedding matrix is bit for bit what it was."""
    model = tiny_bert(tokenizer, **NO_DROPOUT)
    batch = tokenizer(["shares fall after results", "profit up strongly", "meeting on monday"], return_tensors="pt", padding=True)
    ids, mask, targets = batch["input_ids"], batch["attention_mask"], torch.tensor([0, 1, 2])
    embeddings = model.get_input_embeddings().weight
    before = embeddings.detach().clone()

    clean = _loss_of(model, ids, mask, targets)
    clean.backward()
    clean_grads = {n: t.grad.clone() for n, t in model.named_parameters() if t.grad is not None}
    epsilon = 0.5
    adversarial = fgm_backward(embeddings, epsilon, lambda: _loss_of(model, ids, mask, targets))

    assert torch.equal(embeddings.detach(), before)  # restored exactly
    assert adversarial.item() > clean.item() + 1e-4

    # The gradient added is the one at w + epsilon * g / ||g||, computed here on a copy.
    shifted = tiny_bert(tokenizer, **NO_DROPOUT)
    with torch.no_grad():
        g = clean_grads["bert.embeddings.word_embeddings.weight"]
        shifted.get_input_embeddings().weight.add_(epsilon * g / g.norm())
    expected_loss = _loss_of(shifted, ids, mask, targets)
    expected_loss.backward()
    assert adversarial.item() == pytest.approx(expected_loss.item(), rel=1e-5)
    for name, tensor in model.named_parameters():
        expected = clean_grads[name] + dict(shifted.named_parameters())[name].grad
        torch.testing.assert_close(tensor.grad, expected, rtol=1e-4, atol=1e-6)


def test_fgm_needs_a_gradient_on_the_embeddings(tokenizer):
    model = tiny_bert(tokenizer)
    with pytest.raises(ModelError, match="FGM"):
        fgm_backward(model.get_input_embeddings().weight, 1.0, lambda: torch.tensor(0.0))


def test_lora_trains_adapters_and_the_head_only_and_merges_into_a_plain_classifier(tokenizer):
    model = tiny_bert(tokenizer, **NO_DROPOUT)
    batch = tokenizer(["shares fall after results", "profit up strongly"], return_tensors="pt", padding=True)
    wrapped = attach_lora(model, TrainParams(lora_rank=4, fgm_epsilon=0.0))
    trainable = {n for n, t in model.named_parameters() if t.requires_grad}
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any(".query.lora_A" in n for n in trainable) and any(".value.lora_B" in n for n in trainable)
    assert not any(".key." in n or "embeddings" in n or "intermediate" in n for n in trainable)
    assert {n.split(".modules_to_save")[0] for n in trainable if "modules_to_save" in n} == {"classifier", "bert.pooler"}
    # The optimiser sees the trainable tensors only.
    assert sum(len(g["params"]) for g in param_groups(model, TrainParams(lora_rank=4, fgm_epsilon=0.0))) == len(trainable)
    with torch.no_grad():  # as if trained: non-zero adapters, a changed head
        for tensor in model.parameters():
            if tensor.requires_grad:
                tensor.add_(0.05 * torch.randn_like(tensor))
    model.eval()
    unmerged = model(**batch).logits.detach()
    merged = merge_lora(wrapped)
    assert merged is model
    assert not any("lora" in n or "modules_to_save" in n or "base_layer" in n for n in merged.state_dict())
    assert type(merged.bert.encoder.layer[0].attention.self.query) is torch.nn.Linear
    torch.testing.assert_close(merged(**batch).logits, unmerged, rtol=1e-5, atol=1e-6)


def test_lora_names_a_missing_target_module(tokenizer):
    with pytest.raises(ModelError, match="train.lora_target_modules"):
        attach_lora(tiny_bert(tokenizer), TrainParams(lora_rank=4, fgm_epsilon=0.0, lora_target_modules=["q_proj"]))
