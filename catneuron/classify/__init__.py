"""Supervised use of the learned features: classifiers on the top layer, then fine-tuning."""
