"""The recipe's pieces on their own: layer-wise learning rates, schedules, the loss, model selection."""

import numpy as np
import pytest
import torch

from finsent.config import ConfigError, TrainParams
from finsent.training.recipe import (
    DevSelection,
    average_states,
    class_weights,
    eval_steps,
    layer_depth,
    make_scheduler,
    param_groups,
    summed_loss,
)


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
    [{"schedule": "step"}, {"class_weighting": "inverse"}, {"layer_lr_decay": 0.0}, {"label_smoothing": 1.0},
     {"rdrop_alpha": -1.0}, {"average_checkpoints": 0}, {"eval_every_epochs": 0.0}, {"distill_alpha": 1.5}],
)
def test_bad_recipe_settings_are_rejected(bad):
    with pytest.raises(ConfigError):
        TrainParams(**bad)
