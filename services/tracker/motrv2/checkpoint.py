"""Loading official and fine-tuned MOTRv2 checkpoints safely and strictly.

`torch.load(weights_only=True)` with `argparse.Namespace` allow-listed (official checkpoints carry
their training `args` as a Namespace); nothing else is unpickled. The class count and number of
queries are read from the state dict, so the group's player+ball (2) and volleyball (8) models load
unchanged. A mismatch is reported with the first differing keys, never silently ignored.
"""

from __future__ import annotations

import argparse
import os

import torch

from shared.errors import InputError

from .config import MOTRv2Config
from .model import MOTRv2


def load_checkpoint_dict(path: str | os.PathLike) -> dict:
    """The checkpoint file as a dict, unpickling nothing but tensors and allow-listed types."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError("checkpoint not found", source=str(path)) from None
    except Exception as exc:  # weights_only refuses anything but tensors and allow-listed types
        raise InputError(f"not a loadable MOTRv2 checkpoint ({type(exc).__name__}: {exc})", source=str(path)) from None
    if not isinstance(checkpoint, dict):
        raise InputError("expected a dict with a 'model' state dict", source=str(path))
    return checkpoint


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], argparse.Namespace | None]:
    checkpoint = load_checkpoint_dict(path)
    if isinstance(checkpoint.get("model"), dict):
        return checkpoint["model"], checkpoint.get("args")
    raise InputError("expected a dict with a 'model' state dict", source=str(path))


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    """Number of numbered children `prefix<i>.` present in the state dict."""
    return len({key[len(prefix) :].split(".", 1)[0] for key in state if key.startswith(prefix)})


def config_from_state_dict(state: dict[str, torch.Tensor]) -> MOTRv2Config:
    """The architecture a state dict describes: class count, queries, and (for small test models) layer
    counts and feed-forward width; everything else is the official configuration."""
    try:
        return MOTRv2Config(
            num_classes=int(state["class_embed.0.weight"].shape[0]),
            num_queries=int(state["query_embed.weight"].shape[0]),
            enc_layers=_count(state, "transformer.encoder.layers."),
            dec_layers=_count(state, "transformer.decoder.layers."),
            dim_feedforward=int(state["transformer.decoder.layers.0.linear1.weight"].shape[0]),
        )
    except KeyError as exc:
        raise InputError(f"not a MOTRv2 state dict: no {exc.args[0]!r}") from None


def load_model(path: str | os.PathLike) -> MOTRv2:
    """Build the model the checkpoint describes and load it with strict=True."""
    state, _ = read_checkpoint(path)
    model = MOTRv2(config_from_state_dict(state))
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]  # fmt: skip
    if missing or unexpected or wrong:
        raise InputError(
            f"checkpoint does not match MOTRv2: missing {missing[:3]}, unexpected {unexpected[:3]}, shape {wrong[:3]}",
            source=str(path),
        )
    model.load_state_dict(state, strict=True)
    return model.eval()
