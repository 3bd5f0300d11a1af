"""MOTRv2 written by us with the official parameter names, so official and fine-tuned checkpoints
load with `strict=True`. This package holds the model structure and the checkpoint loader; the
forward pass, runtime tracker and parity tests are the next step (see the issue notes)."""
