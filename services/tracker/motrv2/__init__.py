"""MOTRv2 written by us with the official parameter names: official and fine-tuned checkpoints load with
strict=True and track as the official inference script does (model, runtime loop, QIMv2)."""
