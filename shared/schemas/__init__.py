"""Every payload of every service, by domain (one module each); import them from here:
`from shared.schemas import RunRecord`."""

from __future__ import annotations

from .common import (  # noqa: F401
    MAX_GRID_COMBINATIONS,
    RUN_ID_RE,
    SEED_MAX,
    SEQUENCE_RE,
    STAGES,
    ParameterKey,
    Progress,
    RunId,
    Schema,
    SequenceName,
    StageRecord,
    StageState,
    ValItem,
    check_grid,
    utcnow,
)
from .detect import DetDbInfo, Detection, DetectOptions, DetectRequest, Roi  # noqa: F401
from .eval import DoctorReport, Finding, MetricsReport, Severity, TaskResult  # noqa: F401
from .jobs import JobRecord  # noqa: F401
from .label import LabelPull, LabelPush  # noqa: F401
from .runs import MAX_NAME_CHARS, MAX_NOTE_CHARS, MAX_TAG_CHARS, MAX_TAGS, ArtifactInfo, RunPatch, RunRecord  # noqa: F401
from .sweeps import SWEEP_TRACK_FIELDS, SweepChild, SweepRecord, SweepRequest, SweepSearch  # noqa: F401
from .track import (  # noqa: F401
    BYTETRACK_DEFAULTS,
    MOTRV2_DEFAULTS,
    MOTRV2_SCORE_THRESHOLD,
    TRACKER_DEFAULTS,
    TRACKER_KNOBS,
    ByteTrackKnobs,
    MOTRv2Knobs,
    TrackOptions,
    TrackRequest,
    TrackRow,
    score_threshold_of,
    tracker_knobs,
)
from .train import TRAIN_STRATEGIES, DFineTrainOptions, DFineTrainRequest, EpochRecord, TrainOptions, TrainRequest  # noqa: F401
