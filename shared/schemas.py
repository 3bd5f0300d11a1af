"""Every payload that crosses a boundary (HTTP, Celery task arguments, run.json) is a model here."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

RUN_ID_RE = re.compile(r"^[0-9a-f]{16}$")
SEQUENCE_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
STAGES = ("detect", "track", "eval")
# A grid (training jobs, sweeps) is counted from its lists' lengths before any combination is built.
MAX_GRID_COMBINATIONS = 10_000
SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit


def utcnow() -> datetime:
    return datetime.now(UTC)


class Schema(BaseModel):
    """Every contract model. `defer_build`: a model's validator is built when first used, not at import
    (importing this module: 125 -> 76 ms here; a command uses few of its models)."""

    model_config = ConfigDict(defer_build=True)


class StageState(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class Progress(Schema):
    done: int = 0
    total: int | None = None


class StageRecord(Schema):
    state: StageState = StageState.pending
    progress: Progress = Field(default_factory=Progress)
    error: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    heartbeat: datetime | None = None  # refreshed by the worker while the stage runs
    queued: datetime | None = None  # when its task was (last) sent to the broker
    task: dict[str, Any] | None = None  # {"name", "args"} as queued: the reaper can queue it again
    notes: list[str] = Field(default_factory=list)  # what the stage found worth saying (e.g. thresholds)


def check_grid(grid: dict[str, list], factor: int = 1) -> dict[str, list]:
    """Every key has values and the combinations (times `factor`, e.g. a sweep's weights) stay countable."""
    for key, values in grid.items():
        if not values:
            raise ValueError(f"grid key {key!r} has no values")
    count = math.prod(len(v) for v in grid.values()) * factor
    if count > MAX_GRID_COMBINATIONS:
        raise ValueError(f"the grid has {count:,} combinations; at most {MAX_GRID_COMBINATIONS:,}")
    return grid


def _no_parent(value: str) -> str:
    if ".." in value.split("/"):
        raise ValueError("a sequence name cannot hold '..'")
    return value


SequenceName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=SEQUENCE_RE.pattern), AfterValidator(_no_parent)
]
# a parameter-name prefix of the model (`--trainable`): letters, digits, '_' and '.'
ParameterKey = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.]+$")]
# D-FINE `--val`: a sequence, a frame range A-B, or SEQ:A-B
ValItem = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^([A-Za-z0-9_./-]+|([A-Za-z0-9_./-]+:)?\d{1,9}-\d{1,9})$")
]


class ArtifactInfo(Schema):
    bytes: int
    url: str | None = None


class RunRecord(Schema):
    """What `run.json` holds and `GET /runs/{run}` answers."""

    run: str
    created: datetime = Field(default_factory=utcnow)
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    artifacts: dict[str, ArtifactInfo] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)
    name: str = ""  # the uploaded file's or the path's name; a child: its parent's plus what changed
    tags: list[str] = Field(default_factory=list)
    note: str = ""
    parent: str | None = None  # the run this one tracks or detects again (its det_db / video, ground truth)
    children: list[str] = Field(default_factory=list)


MAX_TAGS, MAX_TAG_CHARS, MAX_NAME_CHARS, MAX_NOTE_CHARS = 32, 64, 200, 10_000


class RunPatch(Schema):
    """`PATCH /runs/{run}`: what a person may change of a run (anything left out stays)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=MAX_NAME_CHARS)
    tags: list[Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS)]] | None = Field(None, max_length=MAX_TAGS)
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS)

    @field_validator("tags")
    @classmethod
    def _distinct(cls, tags: list[str] | None) -> list[str] | None:
        return None if tags is None else list(dict.fromkeys(t.strip() for t in tags if t.strip()))


def _finite(value: float | None, name: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return value


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Roi(Schema):
    """Region of interest: a detection is kept when its box centre lies inside."""

    polygon: list[tuple[float, float]] = Field(min_length=3)

    @classmethod
    def parse(cls, value: str | list | dict | Roi | None) -> Roi | None:
        """Accept `x1,y1,x2,y2`, a JSON list of 4 numbers (rectangle) or of [x, y] points."""
        import json

        if value is None or isinstance(value, Roi):
            return value
        if isinstance(value, dict):
            return cls.model_validate(value)
        shape = "roi must be 'x1,y1,x2,y2', a list of 4 numbers or a list of [x, y] points"
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            try:
                value = json.loads(text) if text.startswith("[") else [float(v) for v in text.split(",")]
            except ValueError:
                raise ValueError(f"{shape}, got {text[:80]!r}") from None
        if not isinstance(value, list | tuple):
            raise ValueError(f"{shape}, got {value!r}")
        if len(value) == 4 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            x1, y1, x2, y2 = value
            if not all(math.isfinite(v) for v in value):
                raise ValueError("roi values must be finite numbers")
            if x2 <= x1 or y2 <= y1:
                raise ValueError("rectangle ROI needs x1 < x2 and y1 < y2")
            value = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        points = []
        for point in value:
            if not isinstance(point, list | tuple) or len(point) != 2 or not all(map(_finite_number, point)):
                raise ValueError(f"{shape}, got {value!r}"[:200])
            points.append((float(point[0]), float(point[1])))
        return cls(polygon=points)


class DetectOptions(Schema):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    detector: str = "motion"
    weights: str | None = None
    size: Literal["n", "s", "m", "l", "x"] | None = None
    dataset: Literal["coco", "obj365", "crowdhuman"] | None = None
    score_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    classes: list[int | str] | None = None
    roi: Roi | None = None
    min_area: float = Field(default=0.0, ge=0.0)
    sequence: str = "video"
    batch_size: int | None = Field(default=None, ge=1, le=256)  # dfine: frames per forward (default by device)

    @field_validator("sequence")
    @classmethod
    def _sequence_name(cls, value: str) -> str:
        if not SEQUENCE_RE.match(value) or ".." in value.split("/"):
            raise ValueError("sequence must be letters, digits, '_', '-', '.' and '/' (no '..')")
        return value

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            return [int(p) if p.lstrip("-").isdigit() else p for p in parts] or None
        return value

    @field_validator("roi", mode="before")
    @classmethod
    def _roi(cls, value: Any) -> Any:
        return Roi.parse(value)


class DetectRequest(DetectOptions):
    """`POST /detect` with a JSON body: a file or glob under the data root instead of an upload."""

    path: str = Field(min_length=1, max_length=4096)

    @field_validator("path")
    @classmethod
    def _plain_path(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("path contains a NUL byte")
        return value


# Each tracker's knobs with their defaults: the one place the API checks them, the CLI's help and the
# dashboard's forms read them, and the trackers take their defaults from.
BYTETRACK_DEFAULTS = {"score_threshold": 0.5, "high_score_threshold": 0.5, "lost_track_buffer": 30,
                      "minimum_iou": 0.1, "minimum_consecutive_frames": 1, "frame_rate": 30.0}  # fmt: skip
MOTRV2_DEFAULTS = {"update_score_threshold": 0.5, "miss_tolerance": 20, "area_threshold": 100.0, "autocast": False}
MOTRV2_SCORE_THRESHOLD = 0.5  # the official inference script's `--score_threshold`


class ByteTrackKnobs(Schema):
    """`bytetrack`'s own knobs (the `options` of /track), checked at the request."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    score_threshold: float | None = Field(None, ge=0.0, le=1.0, description="score a detection needs to start a track")
    high_score_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="score of the first association's detections (follows a lower score_threshold)",
    )
    lost_track_buffer: int | None = Field(None, ge=0, le=100_000, description="frames a lost track is kept")
    minimum_iou: float | None = Field(None, ge=0.0, le=1.0, description="IoU a match needs")
    minimum_consecutive_frames: int | None = Field(
        None, ge=1, le=100_000, description="frames a track must be seen before it gets an id"
    )
    frame_rate: float | None = Field(None, gt=0.0, le=10_000, description="frames per second (scales the buffer)")


class MOTRv2Knobs(Schema):
    """`motrv2`'s own knobs (the official inference script's), checked at the request."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    update_score_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="score a track needs for its query to be updated (QIM)"
    )
    miss_tolerance: int | None = Field(None, ge=0, le=100_000, description="frames a track may be missed")
    area_threshold: float | None = Field(None, ge=0.0, description="smallest box area written, in pixels")
    autocast: bool | None = Field(None, description="bfloat16 on a GPU")


TRACKER_KNOBS: dict[str, type[BaseModel]] = {"bytetrack": ByteTrackKnobs, "motrv2": MOTRv2Knobs}
TRACKER_DEFAULTS = {"bytetrack": BYTETRACK_DEFAULTS, "motrv2": MOTRV2_DEFAULTS}


def tracker_knobs(tracker: str) -> list[tuple[str, Any, str]]:
    """(knob, default, description) of a tracker, in the schema's order."""
    fields = TRACKER_KNOBS[tracker].model_fields
    return [(name, TRACKER_DEFAULTS[tracker][name], field.description or "") for name, field in fields.items()]


class TrackOptions(Schema):
    model_config = ConfigDict(extra="forbid")

    tracker: Literal["bytetrack", "motrv2"] = "bytetrack"
    weights: str | None = None
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    # tracker-specific knobs (bytetrack: lost_track_buffer, ...; motrv2: miss_tolerance, ...)
    options: dict[str, float | int | str | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _knobs(self) -> TrackOptions:
        """Unknown knobs and values out of range fail here (a 422 naming `options.<knob>`), never in a worker."""
        knobs = TRACKER_KNOBS.get(self.tracker)
        if knobs is not None:
            try:
                checked = knobs.model_validate(self.options)
            except ValueError as exc:
                errors = getattr(exc, "errors", lambda: [])()
                where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "?"
                message = errors[0]["msg"] if errors else str(exc)
                known = ", ".join(knobs.model_fields)
                raise ValueError(f"options.{where}: {message} (known {self.tracker} knobs: {known})") from None
            self.options = checked.model_dump(exclude_none=True)
        return self


def _run_id(value: str) -> str:
    if not RUN_ID_RE.match(value):
        raise ValueError("not a run id")
    return value


RunId = Annotated[str, AfterValidator(_run_id)]


class TrackRequest(TrackOptions):
    run: RunId


class Detection(Schema):
    left: float
    top: float
    width: float = Field(ge=0)
    height: float = Field(ge=0)
    score: float
    label: int | None = None

    @model_validator(mode="after")
    def _all_finite(self) -> Detection:
        for name in ("left", "top", "width", "height", "score"):
            _finite(getattr(self, name), name)
        return self


class TrackRow(Schema):
    frame: int = Field(ge=1)
    id: int
    left: float
    top: float
    width: float = Field(ge=0)
    height: float = Field(ge=0)
    score: float = 1.0
    label: int = -1


class DetDbInfo(Schema):
    """Where a det_db came from; stored with the run so a wrong-detector det_db is visible."""

    detector: str
    weights: str | None = None
    sequence: str
    frames: int
    frame_size: tuple[int, int]
    keys_with_detections: int
    detections: int
    options: DetectOptions
    notes: list[str] = Field(default_factory=list)  # why a result is empty or thin, when we know


class TaskResult(Schema):
    run: str
    stage: Literal["detect", "track", "eval"]
    state: StageState
    error: str | None = None


class MetricsReport(Schema):
    """The metrics JSON of ARCHITECTURE.md (filled by the evaluator)."""

    iou_threshold: float = 0.5
    classes: list[int] | None = None
    trackeval: dict[str, float | list[float]] = Field(default_factory=dict)
    framewise: dict[str, float] = Field(default_factory=dict)
    losses: dict[str, float] = Field(default_factory=dict)
    per_frame: list[dict[str, float]] = Field(default_factory=list)
    # ground truth with 2+ classes: {"player": {"trackeval", "framewise", "losses", "per_frame"}, "ball": {...}}
    per_class: dict[str, dict[str, Any]] | None = None
    frames: str | None = None  # "all" (TrackEval's default) or which frames were scored
    notes: list[str] = Field(default_factory=list)


class Severity(StrEnum):
    error = "error"
    warning = "warning"
    info = "info"


class Finding(Schema):
    """One problem the dataset doctor found: stable code, severity, evidence and a one-line fix."""

    code: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    fix: str


class DoctorReport(Schema):
    findings: list[Finding] = Field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(f.severity == Severity.error for f in self.findings)


# -- training jobs ------------------------------------------------------------------------------------------
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


class JobRecord(Schema):
    """What `job.json` holds and `GET /train/{job}` answers."""

    job: str
    model: Literal["motrv2", "dfine"] = "motrv2"
    created: datetime = Field(default_factory=utcnow)
    started: datetime | None = None
    finished: datetime | None = None
    state: StageState = StageState.pending
    error: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    strategy: str | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    notes: list[str] = Field(default_factory=list)
    accepted_findings: list[Finding] = Field(default_factory=list)
    planned_epochs: int = 0
    finished_epochs: int = 0
    planned_steps: int | None = None
    progress: Progress = Field(default_factory=Progress)  # steps done / planned
    epochs: list[EpochRecord] = Field(default_factory=list)
    checkpoints: list[str] = Field(default_factory=list)
    attempts: int = 0
    worker: dict[str, Any] = Field(default_factory=dict)  # host and pid of the process running it
    task: dict[str, Any] | None = None  # {"name", "args"} as queued: the reaper can queue it again
    queued: datetime | None = None  # when its task was (last) sent to the broker
    grid: list[dict[str, Any]] | None = None  # a grid's table: one row per combination
    name: str = ""
    tags: list[str] = Field(default_factory=list)
    note: str = ""


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
SWEEP_TRACK_FIELDS = ("score_threshold", "weights")  # grid keys that set a /track field; others are knobs


class SweepSearch(Schema):
    model_config = ConfigDict(extra="forbid")

    trials: int = Field(ge=1, le=1000)


class SweepRequest(Schema):
    """`POST /sweeps`: track a run's det_db once per combination of the grid and evaluate each."""

    model_config = ConfigDict(extra="forbid")

    run: RunId
    tracker: Literal["bytetrack", "motrv2"] = "bytetrack"
    weights: list[str] | None = None
    grid: dict[str, list[float | int | str | bool]] = Field(min_length=1)
    search: SweepSearch | None = None

    @model_validator(mode="after")
    def _countable(self) -> SweepRequest:
        check_grid(self.grid, len(self.weights or []) or 1)
        return self


class SweepChild(Schema):
    run: str
    params: dict[str, Any]


class SweepRecord(Schema):
    """`<data root>/sweeps/<id>/sweep.json`; the state and leaderboard are computed from the child runs."""

    sweep: str
    run: str
    tracker: str
    created: datetime = Field(default_factory=utcnow)
    grid: dict[str, list[Any]]
    search: SweepSearch | None = None
    children: list[SweepChild] = Field(default_factory=list)
    name: str = ""
    tags: list[str] = Field(default_factory=list)
    note: str = ""
