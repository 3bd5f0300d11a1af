"""The compiled deformable sampling (CPU inference) against the PyTorch path it replaces."""

import pytest
import torch

import services.tracker.motrv2.layers as layers


def test_compiled_sampling_is_built():
    assert layers._msda is not None, "services/tracker/motrv2/_msda.c did not build (C compiler missing?)"


@pytest.mark.parametrize("seed", range(4))
def test_compiled_sampling_equals_the_pytorch_path(seed):
    torch.manual_seed(seed)
    shapes = [(12, 20), (6, 10), (3, 5), (2, 3)]
    n, q = sum(h * w for h, w in shapes), 37
    value = torch.randn(2, n, 8, 32)
    locations = torch.rand(2, q, 8, 4, 4, 2) * 1.4 - 0.2  # some samples fall outside the maps (zero padding)
    weights = torch.softmax(torch.randn(2, q, 8, 16), -1).view(2, q, 8, 4, 4)
    with torch.inference_mode():
        compiled = layers._compiled_sampling(value, shapes, locations, weights)
    with torch.no_grad():
        kernel, layers._msda = layers._msda, None
        try:
            reference = layers._deformable_sampling(value, shapes, locations, weights)
        finally:
            layers._msda = kernel
    torch.testing.assert_close(compiled, reference, rtol=1e-5, atol=1e-5)


def test_training_keeps_the_differentiable_path():
    value = torch.randn(1, 6, 8, 32, requires_grad=True)
    locations = torch.rand(1, 3, 8, 1, 4, 2)
    weights = torch.full((1, 3, 8, 1, 4), 0.25)
    out = layers._deformable_sampling(value, [(2, 3)], locations, weights)
    out.sum().backward()
    assert value.grad is not None and value.grad.abs().sum() > 0
