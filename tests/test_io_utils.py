"""Atomic writes: nothing half-written, nothing lost, the usual file mode."""
import os

import pytest

from caduceus_lrp.io_utils import atomic_path


def test_atomic_path_replaces_on_success_with_umask_mode(tmp_path):
    target = tmp_path / "sub" / "out.png"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == target.parent
        tmp.write_text("new")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_text() == "new"
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)
    assert os.listdir(target.parent) == ["out.png"]


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
