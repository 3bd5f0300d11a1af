"""`motpipe worker --gpu-slots K` refuses, in one line, slots that do not fit in the device's free memory."""

from __future__ import annotations

import pytest

from services.gateway.cli import main
from services.gateway.slots import GIB, DeviceMemory, check_slots, device_memory
from shared.errors import InputError


def test_slots_that_fit_are_summed_up_and_those_that_do_not_are_refused_with_what_would_fit():
    memory = DeviceMemory("cuda:0", free=int(30.5 * GIB), total=141 * GIB)
    assert check_slots(4, memory, 6.0) == "4 slot(s) x 6 GiB on cuda:0: 30.5 GiB free of 141.0 GiB"
    with pytest.raises(InputError, match=r"6 do not fit \(5 would\).*MOTPIPE_GPU_SLOT_GIB") as caught:
        check_slots(6, memory, 6.0)
    assert caught.value.field == "gpu_slots"
    with pytest.raises(InputError, match="1 or more"):
        check_slots(0, memory, 6.0)


def test_the_host_is_the_device_of_a_cpu_worker():
    memory = device_memory("cpu")
    assert memory.device == "cpu" and 0 < memory.free <= memory.total


def test_the_worker_refuses_before_it_starts(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MOTPIPE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MOTPIPE_DEVICE", "cpu")
    monkeypatch.setenv("MOTPIPE_GPU_SLOT_GIB", "1000000")
    from shared.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["worker", "--gpu-slots", "2"]) == 2
        assert main(["worker", "--gpu-slots", "2", "--concurrency", "2"]) == 2
    finally:
        get_settings.cache_clear()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "2 do not fit (0 would)" in lines[0] and "not both" in lines[1]
    assert not (tmp_path / "data").exists()  # nothing started, nothing made
