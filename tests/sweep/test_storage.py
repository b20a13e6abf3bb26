"""The storage path is checked before any trial: writable, with room."""

from __future__ import annotations

import subprocess

import pytest

from sweep.config import load_sweep_config
from sweep.preflight import StorageUnavailable, check_storage


def config(tmp_path, storage):
    return load_sweep_config(
        {
            "name": "storage",
            "trial": {"dataset": "digits"},
            "storage_path": str(storage),
            "workdir": str(tmp_path / "work"),
        }
    )


@pytest.fixture
def full_disk(tmp_path):
    """A real 1 MiB filesystem, filled up (needs permission to mount a tmpfs)."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        with open(mount / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_full_filesystem_fails_before_any_trial(tmp_path, full_disk):
    with pytest.raises(StorageUnavailable, match=r"the disk is full.*storage_path"):
        check_storage(config(tmp_path, full_disk / "sweeps"))


def test_a_storage_path_under_a_file_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageUnavailable, match=r"file/storage"):
        check_storage(config(tmp_path, tmp_path / "file" / "storage"))


def test_too_little_room_names_the_free_space(tmp_path, monkeypatch):
    monkeypatch.setenv("MORPHSWEEP_MIN_FREE_MB", str(10**12))
    with pytest.raises(StorageUnavailable, match=r"MB free"):
        check_storage(config(tmp_path, tmp_path / "s"))


def test_a_good_path_passes_and_keeps_nothing(tmp_path):
    check_storage(config(tmp_path, tmp_path / "s"))
    # the probe went into the nearest folder that exists; none is made before the sweep starts
    assert not (tmp_path / "s").exists() and list(tmp_path.iterdir()) == []
