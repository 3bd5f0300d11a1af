"""Training: the options and requests of MOTRv2 and D-FINE fine-tuning, one epoch's record."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .common import SEED_MAX, ParameterKey, Schema, SequenceName, ValItem, _finite, check_grid

TRAIN_STRATEGIES = ("minimal", "moderate", "aggressive", "full")


class TrainOptions(Schema):
    """Options of a MOTRv2 training job (CLI flags, `POST /train` fields, `tracker.train` arguments).
    Defaults are the official configuration's, except random_drop / fp_ratio (0: dead code officially)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    strategy: Literal["minimal", "moderate", "aggressive", "full"] = "full"
    trainable: list[ParameterKey] | None = Field(None, max_length=200)
    epochs: int = Field(5, ge=1, le=10000)
    lr: float = Field(2e-4, gt=0, le=1)
    lr_backbone: float = Field(2e-5, ge=0, le=1)
    lr_drop: int = Field(4, ge=1, le=10000)
    lr_linear_proj_mult: float = Field(0.1, ge=0, le=1000)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    clip_max_norm: float = Field(0.1, ge=0, le=1e6)
    batch_size: Literal[1] = 1  # the official MOTRv2 trains one clip per step and GPU
    sampler_length: int = Field(5, ge=1, le=100)
    sample_interval: int = Field(10, ge=0, le=1000)
    query_denoise: float = Field(0.05, ge=0, le=1)
    random_drop: float = Field(0.0, ge=0, le=1)
    fp_ratio: float = Field(0.0, ge=0, le=1)
    num_classes: int | None = Field(None, ge=1, le=1000)
    val: list[SequenceName] = Field(default_factory=list, max_length=1000)
    val_short_side: int = Field(800, ge=32, le=4096)
    accept: list[Annotated[str, Field(pattern=r"^[A-Z0-9_]{1,64}$")]] = Field(default_factory=list, max_length=100)
    max_steps: int | None = Field(None, ge=1, le=10**9)
    augment: bool = True  # False: frames at their stored size, nothing random (--no-augment)
    flip: bool = True  # each official augmentation can be switched off on its own
    resize_crop: bool = True
    hsv: bool = True
    seed: int = Field(42, ge=0, le=SEED_MAX)
    save_period: int | None = Field(None, ge=1, le=10000)
    activation_checkpoint: bool = False
    autocast: bool = False

    @field_validator("lr", "lr_backbone", "lr_linear_proj_mult", "weight_decay", "clip_max_norm", "query_denoise")
    @classmethod
    def _finite_values(cls, value: float, info) -> float:
        return _finite(value, info.field_name)


class EpochRecord(Schema):
    epoch: int
    steps: int
    losses: dict[str, float] = Field(default_factory=dict)  # per-epoch means: loss, grad_norm, every term
    val: dict[str, float] | None = None  # HOTA, IDF1, MOTA, ... over the validation sequences
    checkpoints: list[str] = Field(default_factory=list)
    complete: bool = True

    @field_validator("losses", "val")
    @classmethod
    def _finite(cls, values: dict[str, float] | None) -> dict[str, float] | None:
        """No measurement is recorded as a missing key: JSON has no inf/NaN (they would be written as null
        and make job.json unreadable)."""
        return None if values is None else {k: v for k, v in values.items() if math.isfinite(v)}


class TrainRequest(TrainOptions):
    """`POST /train`: the data (motpipe runs, or a dataset root + det_db under the data root), initial
    weights under the data root, options, and an optional grid (one job per combination)."""

    model: Literal["motrv2"] = "motrv2"
    runs: list[str] | None = None
    data: str | None = None
    det_db: str | None = None
    weights: str
    grid: dict[str, list[Any]] | None = None

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list] | None) -> dict[str, list] | None:
        return None if grid is None else check_grid(grid)

    @model_validator(mode="after")
    def _one_source(self) -> TrainRequest:
        if bool(self.runs) == bool(self.data):
            raise ValueError("give either 'runs' (run ids) or 'data' (a dataset root under the data root)")
        if self.data and not self.det_db:
            raise ValueError("'data' needs 'det_db' (a det_db file under the data root)")
        return self

    def options(self) -> TrainOptions:
        return TrainOptions.model_validate(self.model_dump(include=set(TrainOptions.model_fields)))


class DFineTrainOptions(Schema):
    """Options of a D-FINE fine-tuning job (CLI flags, `POST /train` fields with model `dfine`, the
    `detector.train` task's arguments). `None` means the size's official value (lr, weight decay, the epochs
    trained without heavy augmentation, multi-scale batches)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    size: Literal["n", "s", "m", "l", "x"] | None = None  # None: read from the checkpoint
    dataset: Literal["coco", "obj365", "crowdhuman"] | None = None
    classes: str | None = None  # player=person,ball="sports ball": new classes from named source classes
    reinit_classes: bool = False  # new classes from scratch (the official -t behaviour) instead
    remap_mscoco: bool = False
    epochs: int = Field(12, ge=1, le=10000)
    lr: float | None = Field(None, gt=0, le=1)
    weight_decay: float | None = Field(None, ge=0, le=1)
    batch_size: int = Field(8, ge=1, le=256)
    img_size: int = Field(640, ge=64, le=2048)
    warmup_steps: int = Field(500, ge=0, le=10**7)
    ema_decay: float = Field(0.9999, gt=0, lt=1)
    clip_max_norm: float = Field(0.1, ge=0, le=1e6)
    denoising: bool = True
    augment: bool = True
    photometric: bool = True
    zoom_out: bool = True
    iou_crop: bool = True
    flip: bool = True
    no_aug_epochs: int | None = Field(None, ge=0)
    multiscale: bool | None = None
    val: list[ValItem] = Field(default_factory=list, max_length=1000)
    val_score: float = Field(0.3, ge=0, le=1)
    empty_frames: str | None = Field(None, max_length=100_000)  # frames annotated as empty, e.g. 1-40,97
    max_steps: int | None = Field(None, ge=1, le=10**9)
    seed: int = Field(0, ge=0, le=SEED_MAX)
    save_period: int = Field(12, ge=1, le=10000)
    autocast: bool = False
    dtype: Literal["float32", "float64"] = "float32"
    workers: int | None = Field(None, ge=0, le=64)  # loader processes; None: 0 on a CPU, 4 on a GPU

    @model_validator(mode="after")
    def _image_size(self) -> DFineTrainOptions:
        if self.img_size % 32:
            raise ValueError(f"img_size {self.img_size} is not a multiple of 32 (the encoder's coarsest stride)")
        return self


class DFineTrainRequest(DFineTrainOptions):
    """`POST /train` with model `dfine`: motpipe runs with ground truth (their frames and gt), initial
    weights under the data root."""

    model: Literal["dfine"]
    runs: list[str] = Field(min_length=1)
    weights: str

    def options(self) -> DFineTrainOptions:
        return DFineTrainOptions.model_validate(self.model_dump(include=set(DFineTrainOptions.model_fields)))


# -- sweeps ---------------------------------------------------------------------------------------------------
