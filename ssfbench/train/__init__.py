"""Training: the window stream and pretraining loop, optimisation steps, fine-tuning, curves and
BatchNorm statistics."""
