"""Settings from the environment, prefix `MOTPIPE_` (e.g. `MOTPIPE_DATA_ROOT=/data`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import InputError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTPIPE_", env_file=".env", extra="ignore")

    data_root: Path = Field(default=Path("./motpipe-data"), description="runs, uploads and the file broker live here")
    # Unset: Celery uses a broker and result store made of files under the data root (no server needed).
    broker_url: str | None = None
    result_backend: str | None = None
    api_token: str | None = Field(
        default=None, description="when set, every request needs 'Authorization: Bearer <token>'"
    )
    # "off": serving without a token on a non-loopback address is wanted (otherwise refused at start)
    auth_switch: Literal["on", "off"] = Field("on", validation_alias=AliasChoices("MOTPIPE_AUTH", "auth_switch"))
    bind_host: str | None = Field(None, description="the address the API listens on (compose: 0.0.0.0)")
    # the run index: unset, SQLite at <data root>/index.sqlite; compose: postgresql+psycopg://…
    database_url: str | None = Field(None, description="SQLAlchemy URL of the run index")
    upload_limit_mb: float = 4096.0
    device: str = Field(default="auto", description="'auto' picks cuda when available, else cpu")
    # `motpipe worker --gpu-slots K` starts only when K x this fits in the device's free memory. 4 GiB is an
    # allowance, not yet a GPU measurement (a 1080p MOTRv2 track peaks at 1.8 GiB of host memory on a CPU);
    # `benchmarks/track_speed.py --slots` measures the memory of a slot on the device at hand.
    gpu_slot_gib: float = Field(4.0, gt=0, description="device memory one GPU slot is allowed (GiB)")
    # D-FINE on a GPU reads a video through NVDEC when NVIDIA's PyNvVideoCodec is installed and its frames
    # equal the CPU decoder's (`shared/nvdec.py`); "off" keeps PyAV on the CPU
    nvdec: Literal["auto", "off"] = "auto"
    # Seconds a task may run before Celery kills it, and after which an unacknowledged task
    # is handed to another worker (Redis); the second must exceed the first.
    task_time_limit_s: int = 6 * 3600
    visibility_timeout_s: int = 7 * 3600
    # A running stage's worker refreshes its heartbeat every `heartbeat_s`; a stage whose heartbeat is older
    # than `stage_stale_s` lost its worker: a live worker's reaper queues it again (at most `stage_retries`).
    heartbeat_s: float = 10.0
    stage_stale_s: float = 60.0
    stage_retries: int = 2
    # the group's Label Studio (`motpipe label push|pull`): its address and an API token (a legacy key or a
    # personal access token)
    label_studio_url: str | None = None
    label_studio_token: str | None = None

    @field_validator("api_token")
    @classmethod
    def _trimmed(cls, value: str | None) -> str | None:
        return None if value is None else value.strip()

    @property
    def auth(self) -> str:
        """What /healthz says about authentication (an empty token disables it: say so loudly)."""
        if self.api_token and self.api_token.strip():
            return "on"
        if self.api_token is not None:
            return "OFF: MOTPIPE_API_TOKEN is set but empty, so every request is accepted"
        return "off"

    @property
    def upload_limit_bytes(self) -> int:
        return int(self.upload_limit_mb * 1024 * 1024)

    @property
    def runs_dir(self) -> Path:
        return self.data_root / "runs"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def pick_device(requested: str = "auto") -> str:
    """The torch device to use: `requested` unless 'auto', then cuda when present. A CUDA device this machine
    does not have is refused in one line (a CPU node of a cluster given `--device cuda`), not by torch's
    driver error at the first tensor moved there."""
    if requested != "auto" and not requested.startswith("cuda"):
        return requested
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = requested.partition(":")[2]
    if not count:
        raise InputError(f"{requested}: this machine has no CUDA device; use cpu or auto", field="device")
    if index and (not index.isdigit() or int(index) >= count):
        raise InputError(f"{requested}: this machine has CUDA devices 0-{count - 1}", field="device")
    return requested
