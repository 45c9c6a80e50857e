"""Atomic outputs: temporary names keep the format suffix and stay short when nested."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite.io.atomic import atomic_path


def test_nested_atomic_writes_of_a_long_name_fit_the_name_limit(tmp_path: Path) -> None:
    target = tmp_path / ("S2A_MSIL2A_20171221T112501_N0400_R037_T29RKH_" * 4 + "10m.tif")
    assert len(target.name) < 255
    with atomic_path(target) as outer, atomic_path(outer) as inner:
        assert len(inner.name) < 255 and inner.name.endswith(".tif")
        inner.write_text("x")
    assert target.read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize(("name", "suffix"), [
    ("scan.nii.gz", ".nii.gz"), ("SCAN.NII.GZ", ".NII.GZ"), ("out.tif", ".tif"), ("series", "")])
def test_temporary_name_ends_with_the_format_suffix(tmp_path: Path, name: str, suffix: str) -> None:
    with atomic_path(tmp_path / name) as tmp:
        assert tmp.name.endswith(".partial" + suffix) and tmp.parent == tmp_path
        tmp.mkdir() if not suffix else tmp.write_text("x")
    assert (tmp_path / name).exists()


def test_a_failure_leaves_neither_target_nor_temporary(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.tif") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
