"""Data loading with many small files: start-up work grows linearly, and the slow phases report progress.

The costs are counted, not timed (these 2-core machines are shared): element-wise passes over the
class targets, and file-system metadata calls while an archive is extracted. The 100,000-file
timings are in ``benchmarks/data_scale.py``.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ghnctl.training import data as D
from ghnctl.training import sources as S
from ghnctl.training.archive import COMPLETE_MARKER, extract_archive


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _write_tree(root: Path, classes: int, per_class: int) -> Path:
    """``root/train/<class>/<i>.png``: the same tiny PNG everywhere (only the number of files matters)."""
    payload = _png()
    for c in range(classes):
        folder = root / "train" / f"c{c:05d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"{i}.png").write_bytes(payload)
    return root


def _write_archive(path: Path, files: list[tuple[str, bytes]], folders: tuple[str, ...] = ()) -> Path:
    mode = "w:gz" if path.name.endswith(".gz") else "w"
    with tarfile.open(path, mode) as tar:
        for name in folders:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, payload in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(payload), 0o644
            tar.addfile(info, io.BytesIO(payload))
    return path


class _CountingTargets(np.ndarray):
    """Class targets that count the elements every ufunc (``==``, ``any``, ...) runs over."""

    elements = 0

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        plain = [np.asarray(x) if isinstance(x, _CountingTargets) else x for x in inputs]
        _CountingTargets.elements += sum(x.size for x in plain if isinstance(x, np.ndarray))
        return getattr(ufunc, method)(*plain, **kwargs)


@pytest.fixture
def counted_targets(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the reads of ``ImageSet.targets`` (each gathers all targets) and the element-wise
    work done on what they return."""
    counts = {"reads": 0}

    def targets(self: S.ImageSet) -> np.ndarray:
        counts["reads"] += 1
        return self._targets[self._indices].view(_CountingTargets)

    monkeypatch.setattr(S.ImageSet, "targets", property(targets))
    _CountingTargets.elements = 0
    return counts


def test_scan_split_and_few_shot_do_not_pass_over_all_files_per_class(tmp_path, counted_targets) -> None:
    # 10,000 files in 2,500 classes: work per class over all the files would be 2.5e7 element
    # visits per pass (it was: the empty-class check of the scan, the split and the few-shot choice).
    n, classes = 10_000, 2_500
    tree = _write_tree(tmp_path / "tree", classes, n // classes)
    bundle = D.load_data(D.DataConfig(str(tree), n_shots=2))
    assert len(bundle.train) + len(bundle.val) <= n and len(bundle.val) == classes  # one held out per class
    assert np.bincount(bundle.train.targets, minlength=classes).max() == 2
    assert counted_targets["reads"] <= 8, counted_targets
    assert _CountingTargets.elements <= 4 * n, f"{_CountingTargets.elements:,} element visits for {n:,} files"


def test_class_positions_are_the_per_class_nonzero_of_the_targets() -> None:
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 40, 3_000)
    targets[targets == 7] = 0  # class 7 has no images
    images = S.ImageSet([f"{i}.png" for i in range(3_000)], targets, [f"c{c}" for c in range(41)])
    for subset in (images, images.subset(rng.permutation(3_000)[:1_700])):
        got = D.class_positions(subset)
        assert len(got) == 41
        for c, positions in enumerate(got):
            assert np.array_equal(positions, np.flatnonzero(subset.targets == c))


def _progress_log() -> tuple[list[tuple[str, int, int]], Any]:
    calls: list[tuple[str, int, int]] = []
    return calls, lambda phase, done, total: calls.append((phase, done, total))


def _check_phase(calls: list[tuple[str, int, int]], phase: str, total: int) -> None:
    mine = [(done, t) for p, done, t in calls if p == phase]
    assert mine, f"no {phase!r} progress"
    assert {t for _, t in mine} == {total}
    done = [d for d, _ in mine]
    assert done[0] == 0 and done[-1] == total and done == sorted(done) and len(set(done)) == len(done)
    assert len(done) <= 205  # thinned out: a progress bar is not redrawn per file


def test_archive_extraction_and_scan_report_increasing_progress(tmp_path) -> None:
    payload = _png()
    files = [(f"data/train/c{i % 4}/{i:05d}.png", payload) for i in range(3_000)]
    archive = _write_archive(tmp_path / "many.tar.gz", files, ("data", "data/train"))
    calls, on_progress = _progress_log()
    bundle = D.load_data(D.DataConfig(str(archive), data_dir=tmp_path / "cache"), on_progress=on_progress)
    assert len(bundle.train) + len(bundle.val) == 3_000
    phases = [p for i, (p, _, _) in enumerate(calls) if i == 0 or calls[i - 1][0] != p]
    assert phases == [S.PHASE_READ, S.PHASE_EXTRACT, S.PHASE_SCAN]
    _check_phase(calls, S.PHASE_READ, archive.stat().st_size)
    _check_phase(calls, S.PHASE_EXTRACT, 3_002)  # members: the files and the two folders
    _check_phase(calls, S.PHASE_SCAN, 4)  # class folders of train/

    calls.clear()  # reused: nothing to read or extract, the scan again (here with a val/ folder too)
    root = Path(bundle.info.root)
    (root / "val" / "c1").mkdir(parents=True)
    (root / "val" / "c1" / "x.png").write_bytes(payload)
    D.load_data(D.DataConfig(str(archive), data_dir=tmp_path / "cache"), on_progress=on_progress)
    assert {p for p, _, _ in calls} == {S.PHASE_SCAN}
    _check_phase(calls, S.PHASE_SCAN, 8)  # train/ and val/


def test_extraction_writes_what_tar_writes_without_a_metadata_call_per_file(tmp_path, monkeypatch) -> None:
    # No folder entries (parents are made), a ./ prefix, nesting, an empty file and a name written
    # twice (the last copy wins, as with tar).
    files = [(f"./set/train/c{i % 3}/sub{i % 2}/{i:04d}.png", i.to_bytes(2, "little") * (i % 7)) for i in range(2_000)]
    files.append(("./set/train/c0/sub0/0000.png", b"second copy"))
    archive = _write_archive(tmp_path / "set.tar", files)
    expected = tmp_path / "by-tar"
    with tarfile.open(archive) as tar:
        tar.extractall(expected, filter="data")

    calls = {"stat": 0}
    for name in ("stat", "lstat"):
        real = getattr(os, name)

        def counting(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            calls["stat"] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, counting)
    calls_, on_progress = _progress_log()
    dest = extract_archive(archive, tmp_path / "cache", on_progress=on_progress)
    monkeypatch.undo()
    # tarfile's data filter resolves the destination and every target (an lstat per path component).
    assert calls["stat"] < 200, f"{calls['stat']:,} stat/lstat calls for {len(files):,} files"
    _check_phase(calls_, S.PHASE_EXTRACT, len(files))

    def tree(root: Path) -> dict[str, bytes | None]:
        return {
            str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))
            if p.name != COMPLETE_MARKER
        }

    assert tree(dest) == tree(expected)
    assert (dest / "set/train/c0/sub0/0000.png").read_bytes() == b"second copy"
