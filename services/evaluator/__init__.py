"""Evaluation: ground truth in, metrics and plots out (metrics land with the evaluator issue)."""
