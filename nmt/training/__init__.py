"""Training: loss, learning-rate schedule, checkpoints, the training loop."""
