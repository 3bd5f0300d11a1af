"""MOTRv2 training core (pure PyTorch): data, criterion, optimiser set-up and the epoch loop."""
