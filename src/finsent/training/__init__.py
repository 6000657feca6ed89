"""Fine-tuning: tokenised features, the [CLS]-only forward, the model loader, the scorer, the recipe,
the training loop (one process or DDP under torchrun) and the Optuna search over it.

Above ``data``; knows nothing of evaluation, the registry or monitoring.
"""
