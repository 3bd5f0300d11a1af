"""`motpipe worker --gpu-slots K`: K tasks at once on one device, each in its own process with its own
model copy, after checking that K of them fit in the device's free memory.

MOTRv2 tracks one frame at a time: at batch 1 it leaves most of a large GPU idle, so a sweep over nine
checkpoints runs faster as several tracking tasks side by side (`benchmarks/track_speed.py --slots`). The
check reads the device's memory without initialising CUDA in this process: Celery's pool forks the slot
processes from it, and a forked child cannot use a CUDA context its parent made. On a CPU device "memory"
is the host's available memory (what tests and CPU-only hosts check).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shared.errors import InputError

GIB = 1 << 30


@dataclass(frozen=True)
class DeviceMemory:
    device: str  # "cuda:0" or "cpu"
    free: int  # bytes
    total: int


def _nvidia_memory(index: int) -> DeviceMemory | None:
    """Free and total memory of GPU `index` from `nvidia-smi`, or None without an NVIDIA driver/GPU."""
    if shutil.which("nvidia-smi") is None:
        return None
    query = ["nvidia-smi", f"--id={index}", "--query-gpu=memory.free,memory.total", "--format=csv,noheader,nounits"]
    try:
        answer = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
        free, total = (int(float(value)) << 20 for value in answer.strip().splitlines()[0].split(","))  # MiB
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return None
    return DeviceMemory(f"cuda:{index}", free, total)


def _host_memory() -> DeviceMemory:
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = int(value.split()[0]) * 1024  # kB
    return DeviceMemory("cpu", fields.get("MemAvailable", fields["MemFree"]), fields["MemTotal"])


def device_memory(device: str) -> DeviceMemory:
    """The memory of the device tasks will use (`auto`: the first GPU when there is one, else the host's)."""
    if device == "cpu":
        return _host_memory()
    index = int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0
    memory = _nvidia_memory(index)
    if memory is not None:
        return memory
    if device == "auto":
        return _host_memory()
    raise InputError(f"{device} asked for (MOTPIPE_DEVICE), but nvidia-smi reports no such GPU", field="device")


def check_slots(slots: int, memory: DeviceMemory, slot_gib: float) -> str:
    """One line saying the `slots` fit in `memory` at `slot_gib` each; refuses (InputError) when they do not."""
    if slots < 1:
        raise InputError(f"--gpu-slots must be 1 or more, got {slots}", field="gpu_slots")
    need = slots * slot_gib * GIB
    summary = (f"{slots} slot(s) x {slot_gib:g} GiB on {memory.device}: {memory.free / GIB:.1f} GiB free of "
               f"{memory.total / GIB:.1f} GiB")  # fmt: skip
    if need > memory.free:
        fit = int(memory.free // (slot_gib * GIB))
        raise InputError(f"{summary}; {slots} do not fit ({fit} would). Use fewer slots, free the device, or set "
                         "MOTPIPE_GPU_SLOT_GIB to what one task takes (benchmarks/track_speed.py --slots measures "
                         "it)", field="gpu_slots")  # fmt: skip
    return summary
