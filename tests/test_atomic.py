"""Atomic writes: the target is either the old file or the whole new one, never half."""

import pytest

from extract.atomic import atomic_path


def test_success_replaces_and_keeps_suffix(tmp_path):
    target = tmp_path / "sub" / "report.md"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".md" and tmp.name.startswith(".") and tmp.parent == target.parent
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]


def test_failure_leaves_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
