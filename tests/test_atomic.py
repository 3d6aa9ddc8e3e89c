"""Atomic outputs: the mode a new file gets, names at the file-system limit, errors naming the output."""

import os
import stat

import pytest

from gencompress.atomic import write_bytes_atomic


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_mode_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_bytes_atomic(tmp_path / "out.gcz", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.gcz").stat().st_mode) == mode


def test_a_name_at_the_file_system_limit_is_written(tmp_path):
    name = "é" * 120 + ".gcz"  # 244 bytes in UTF-8: a temporary name that added to it would not fit
    write_bytes_atomic(tmp_path / name, b"data")
    assert (tmp_path / name).read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_errors_name_the_output_not_the_temporary_file(tmp_path):
    target = tmp_path / "missing" / "out.gcz"
    with pytest.raises(FileNotFoundError) as info:
        write_bytes_atomic(target, b"x")
    assert info.value.filename == str(target)


def test_a_failed_write_names_the_output_and_leaves_nothing(tmp_path):
    from gencompress.atomic import write_atomic

    def fail(tmp):
        raise OSError(28, "No space left on device", str(tmp))

    with pytest.raises(OSError) as info:
        write_atomic(tmp_path / "out.gcz", fail)
    assert info.value.filename == str(tmp_path / "out.gcz")
    assert list(tmp_path.iterdir()) == []


def test_never_overwrites_without_permission(tmp_path):
    (tmp_path / "out.gcz").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_bytes_atomic(tmp_path / "out.gcz", b"new")
    assert (tmp_path / "out.gcz").read_bytes() == b"old"
    write_bytes_atomic(tmp_path / "out.gcz", b"new", overwrite=True)
    assert (tmp_path / "out.gcz").read_bytes() == b"new"
