"""Architecture of each released D-FINE size (N/S/M/L/X) for COCO (80 classes), Objects365 (366) and
CrowdHuman (1): the values of the official YAML configs, as builder settings."""

from __future__ import annotations

NUM_CLASSES = {"coco": 80, "obj365": 366, "crowdhuman": 1}

# backbone, return_idx, frozen norms | encoder in_channels, strides, hidden, ffn, expansion, depth
# | decoder feat_channels, strides, hidden, levels, layers, points, ffn, reg_scale
_SIZES = {
    "n": ("B0", [2, 3], False, [512, 1024], [16, 32], 128, 512, 0.34, 0.5, [128, 128], 128, 2, 3, [6, 6], 512, 4),
    "s": ("B0", [1, 2, 3], False, [256, 512, 1024], [8, 16, 32], 256, 1024, 0.5, 0.34, [256] * 3, 256, 3, 3,
          [3, 6, 3], 512, 4),
    "m": ("B2", [1, 2, 3], False, [384, 768, 1536], [8, 16, 32], 256, 1024, 1.0, 0.67, [256] * 3, 256, 3, 4,
          [3, 6, 3], 512, 4),
    "l": ("B4", [1, 2, 3], True, [512, 1024, 2048], [8, 16, 32], 256, 1024, 1.0, 1, [256] * 3, 256, 3, 6,
          [3, 6, 3], 512, 4),
    "x": ("B5", [1, 2, 3], True, [512, 1024, 2048], [8, 16, 32], 384, 2048, 1.0, 1, [384] * 3, 256, 3, 6,
          [3, 6, 3], 512, 8),
}  # fmt: skip


def dfine_config(size: str, dataset: str) -> dict:
    if size not in _SIZES or dataset not in NUM_CLASSES:
        raise ValueError(
            f"unknown D-FINE model {size}/{dataset}: sizes {sorted(_SIZES)}, datasets {sorted(NUM_CLASSES)}"
        )
    (name, ret, frozen, enc_in, strides, enc_dim, enc_ffn, expansion, depth, dec_in, dec_dim, levels, layers, points,
     dec_ffn, reg_scale) = _SIZES[size]  # fmt: skip
    return {
        "num_classes": NUM_CLASSES[dataset],
        "eval_spatial_size": [640, 640],
        "backbone": {"name": name, "return_idx": ret, "use_lab": True, "freeze_norm": frozen},
        "encoder": {"in_channels": enc_in, "feat_strides": strides, "hidden_dim": enc_dim,
                    "use_encoder_idx": [len(ret) - 1], "num_encoder_layers": 1, "nhead": 8,
                    "dim_feedforward": enc_ffn, "expansion": expansion, "depth_mult": depth},
        "decoder": {"feat_channels": dec_in, "feat_strides": strides, "hidden_dim": dec_dim, "num_levels": levels,
                    "num_layers": layers, "num_points": points, "dim_feedforward": dec_ffn, "reg_max": 32,
                    "reg_scale": reg_scale, "num_queries": 300},
    }  # fmt: skip
