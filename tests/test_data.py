"""ghnctl.training data: folders, archives, splits, few-shot subsets, bad images, transforms, loaders."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as VF

from ghnctl.errors import UsageError
from ghnctl.training import data as D
from ghnctl.training import loaders as L
from ghnctl.training import transforms as T
from ghnctl.training.archive import COMPLETE_MARKER
from ghnctl.training.errors import DataError
from test_finetune_support import cifar_subset, make_tree  # noqa: F401  (fixture)


def _load(source: Path | str, **kwargs) -> D.DataBundle:
    return D.load_data(D.DataConfig(str(source), **kwargs))


# --------------------------------------------------------------------------------------------
# config


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"val_fraction": 0.0}, "--val-fraction"),
        ({"val_fraction": 1.0}, "--val-fraction"),
        ({"n_shots": 0}, "--n-shots"),
        ({"image_size": 4}, "--image-size"),
    ],
)
def test_config_rejects_bad_values(kwargs, flag) -> None:
    with pytest.raises(UsageError) as info:
        D.DataConfig("cifar10", **kwargs)
    assert flag in str(info.value)
    assert info.value.exit_code == 2


def test_data_dir_defaults_to_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GHNCTL_DATA_DIR", str(tmp_path))
    assert D.DataConfig("cifar10").resolved_data_dir() == tmp_path
    assert D.DataConfig("cifar10", data_dir=tmp_path / "x").resolved_data_dir() == tmp_path / "x"


# --------------------------------------------------------------------------------------------
# folders and splits


def test_train_only_tree_gets_a_reported_stratified_split(tmp_path) -> None:
    make_tree(tmp_path, per_class=10)
    bundle = _load(tmp_path, val_fraction=0.2, split_seed=3)
    info = bundle.info
    assert info.val_source == "split" and info.kind == "folder"
    assert (info.n_train, info.n_val) == (24, 6)
    assert np.bincount(bundle.val.targets).tolist() == [2, 2, 2]  # stratified
    assert "held out from train (20%, stratified, split seed 3)" in info.describe_val()
    assert info.recipe == "cifar" and info.image_size == 32 and info.mean == T.CIFAR10_MEAN
    # Seeded: the same seed picks the same images, another seed other ones; no overlap with train.
    again = _load(tmp_path, val_fraction=0.2, split_seed=3)
    other = _load(tmp_path, val_fraction=0.2, split_seed=4)
    names = lambda s: {s.name(i) for i in range(len(s))}  # noqa: E731
    assert names(again.val) == names(bundle.val)
    assert names(other.val) != names(bundle.val)
    assert not names(bundle.val) & names(bundle.train)


def test_val_folder_is_preferred_and_classes_are_checked(tmp_path) -> None:
    make_tree(tmp_path, per_class=4, splits=("train", "val", "test"))
    bundle = _load(tmp_path)
    assert bundle.info.val_source == "val" and bundle.info.n_val == 12 and bundle.info.n_train == 12
    assert "the val split" in bundle.info.describe_val()
    (tmp_path / "test" / "dog").mkdir()
    (tmp_path / "val" / "dog").mkdir()
    with pytest.raises(DataError, match="classes that train/ does not: dog"):
        _load(tmp_path)


def test_tree_inside_one_folder_is_found(tmp_path) -> None:
    make_tree(tmp_path / "wrapped", per_class=3, splits=("train", "test"))
    bundle = _load(tmp_path)
    assert bundle.info.val_source == "test"
    assert bundle.info.root == str(tmp_path / "wrapped")


def test_empty_folders(tmp_path) -> None:
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no image files"):
        _load(tmp_path)
    make_tree(tmp_path, per_class=4, classes=("b", "c"))
    bundle = _load(tmp_path, val_fraction=0.25)
    # The empty class keeps its index (labels stay aligned with a val/ tree) and is reported.
    assert bundle.info.classes == ["a", "b", "c"]
    assert any("without images: a" in note for note in bundle.info.notes)
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="remove the empty val/"):
        _load(tmp_path)


def test_missing_path_and_non_archive_file(tmp_path) -> None:
    with pytest.raises(DataError, match="neither cifar10, cifar100 nor an existing path"):
        _load(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="not a .tar.gz"):
        _load(tmp_path / "x.txt")
    with pytest.raises(DataError, match="no train/ folder"):
        _load(tmp_path)


def test_few_shot_is_seeded_and_per_class(tmp_path) -> None:
    make_tree(tmp_path, per_class=10, splits=("train", "val"))
    bundle = _load(tmp_path, n_shots=3, split_seed=1)
    assert np.bincount(bundle.train.targets).tolist() == [3, 3, 3]
    assert bundle.info.n_val == 30  # the validation images are not thinned out
    same = _load(tmp_path, n_shots=3, split_seed=1)
    assert [same.train.name(i) for i in range(9)] == [bundle.train.name(i) for i in range(9)]
    short = _load(tmp_path, n_shots=50)
    assert short.info.n_train == 30
    assert any("fewer than 50" in note for note in short.info.notes)


def test_real_cifar_subset_uses_the_cifar_recipe(cifar_subset) -> None:  # noqa: F811
    bundle = _load(cifar_subset)
    assert bundle.num_classes == 10 and bundle.info.n_train + bundle.info.n_val == 200
    assert bundle.info.recipe == "cifar" and bundle.info.image_size == 32
    assert bundle.info.classes[0] == "airplane"


# --------------------------------------------------------------------------------------------
# archives


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_archive_is_extracted_once_and_reused(tmp_path) -> None:
    archive = _tar(tmp_path / "set.tar.gz", {f"train/{c}/{i}.png": _png() for c in "ab" for i in range(4)})
    cache = tmp_path / "cache"
    bundle = _load(archive, data_dir=cache, val_fraction=0.25)
    assert bundle.info.kind == "archive" and bundle.info.n_train == 6
    extracted = Path(bundle.info.root)
    assert extracted.parent == cache / "extracted"
    marker = extracted / COMPLETE_MARKER
    stamp = marker.stat().st_mtime_ns
    again = _load(archive, data_dir=cache, val_fraction=0.25)
    assert again.info.root == bundle.info.root and marker.stat().st_mtime_ns == stamp
    assert [p.name for p in (cache / "extracted").iterdir()] == [extracted.name]  # no temp folders left


@pytest.mark.parametrize(
    "members, links, reason",
    [
        ({"../evil.png": b"x"}, None, "outside the archive"),
        ({"/abs/evil.png": b"x"}, None, "absolute path"),
        ({"train/a/0.png": b"x"}, {"train/a/link.png": "/etc/passwd"}, "is a link"),
    ],
)
def test_unsafe_archives_are_refused(tmp_path, members, links, reason) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", members, links)
    with pytest.raises(DataError, match=reason):
        _load(archive, data_dir=tmp_path / "cache")
    assert not (tmp_path / "evil.png").exists()
    assert not any((tmp_path / "cache" / "extracted").glob("bad-*"))


def test_truncated_archive_is_a_data_error(tmp_path) -> None:
    archive = _tar(tmp_path / "t.tar.gz", {f"train/a/{i}.png": _png() for i in range(20)})
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot extract"):
        _load(archive, data_dir=tmp_path / "cache")


# --------------------------------------------------------------------------------------------
# named sets


@pytest.mark.parametrize("how", ["environment", "argument"])
def test_cifar_offline_and_absent_says_how_to_provide_it(monkeypatch, tmp_path, how) -> None:
    if how == "environment":
        monkeypatch.setenv("GHNCTL_OFFLINE", "1")
    with pytest.raises(DataError) as info:
        D.load_data(D.DataConfig("cifar10", data_dir=tmp_path), offline=how == "argument")
    text = str(info.value)
    assert "offline" in text and str(tmp_path) in text and "--data PATH" in text
    assert "\n" not in text


def test_cifar_imagefolder_tree_in_data_dir_is_used(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GHNCTL_OFFLINE", "1")
    monkeypatch.setenv("GHNCTL_DATA_DIR", str(tmp_path))
    make_tree(tmp_path / "cifar10", per_class=2, splits=("train", "test"))
    bundle = _load("CIFAR10")
    assert bundle.info.val_source == "test" and bundle.info.mean == T.CIFAR10_MEAN


# --------------------------------------------------------------------------------------------
# samples, bad images, transforms, loaders


def test_corrupt_images_are_skipped_and_named(tmp_path) -> None:
    make_tree(tmp_path, per_class=4, splits=("train", "val"))
    broken = tmp_path / "train" / "ant" / "zz-broken.jpg"
    broken.write_bytes(b"not a jpeg")
    truncated = tmp_path / "val" / "bee" / "zz-cut.png"
    truncated.write_bytes(_png()[:60])
    bundle = _load(tmp_path)
    loader, sampler = L.train_loader(bundle, batch_size=64, seed=0)
    batches = list(loader)
    assert len(batches) == 1
    assert [name for name, _ in batches[0].bad] == [str(broken)]
    assert len(batches[0].targets) == bundle.info.n_train - 1
    val = list(L.eval_loader(bundle, batch_size=5))
    assert [name for b in val for name, _ in b.bad] == [str(truncated)]
    assert sum(len(b.targets) for b in val if b.targets is not None) == 12


def test_eval_loader_scores_every_image_once_in_a_class_mixed_order(tmp_path) -> None:
    make_tree(tmp_path, per_class=4, splits=("train", "val"))  # val/ is read class by class
    bundle = _load(tmp_path)
    batches = list(L.eval_loader(bundle, batch_size=6))
    targets = [t for b in batches for t in b.targets.tolist()]
    assert sorted(targets) == sorted(bundle.val.targets) and len(targets) == bundle.info.n_val
    assert targets != sorted(targets) and len(set(batches[0].targets.tolist())) > 1
    again = [t for b in L.eval_loader(bundle, batch_size=6) for t in b.targets.tolist()]
    assert again == targets  # the same order every time: runs are compared on the same batches


def test_collate_of_only_bad_samples() -> None:
    batch = L.collate([L.BadSample("a", "boom"), L.BadSample("b", "boom")])
    assert batch.images is None and batch.targets is None and len(batch.bad) == 2


def test_epoch_sampler_order_resume_and_last_single_image() -> None:
    sampler = L.EpochSampler(n=10, batch_size=3, seed=5)
    assert sampler.n_used == 9 and sampler.steps_per_epoch == 3  # 10 % 3 == 1: that one image is dropped
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_step=2)
    assert list(sampler) == full[6:]
    sampler.set_epoch(3)
    assert [i for i, _ in sampler] != [i for i, _ in full]
    assert len({i for i, _ in full}) == 9  # 9 distinct images of the 10


def test_cifar_transform_is_a_function_of_the_seed() -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    tf = T.CifarTrainTransform(32)
    a = [np.asarray(tf(img, random.Random(s))) for s in range(8)]
    b = [np.asarray(tf(img, random.Random(s))) for s in range(8)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len({x.tobytes() for x in a}) > 1
    assert tf.pad == 4 and T.CifarTrainTransform(64).pad == 8
    assert T.CifarTrainTransform(48)(img, random.Random(0)).size == (48, 48)
    assert T.CifarEvalTransform(40)(img).size == (40, 40)


def test_non_cifar_images_use_the_imagenet_recipe(tmp_path) -> None:
    make_tree(tmp_path, per_class=3, size=(48, 40))
    bundle = _load(tmp_path, image_size=24, val_fraction=0.34)
    assert bundle.info.recipe == "imagenet" and bundle.info.mean == T.IMAGENET_MEAN
    x, _ = L.TrainView(bundle.train, bundle.train_transform)[(0, 123)]
    assert tuple(x.shape) == (24, 24, 3) and x.dtype == torch.uint8
    y, _ = L.EvalView(bundle.val, bundle.eval_transform)[0]
    assert tuple(y.shape) == (24, 24, 3)


def test_normalizer_matches_the_textbook_formula_and_torchvision() -> None:
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    norm = T.Normalizer(T.CIFAR10_MEAN, T.CIFAR10_STD)
    mean = torch.tensor(T.CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(T.CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), (x.float() / 255 - mean) / std, rtol=1e-5, atol=1e-5)
    reference = VF.normalize(VF.to_dtype(x, torch.float32, scale=True), list(T.CIFAR10_MEAN), list(T.CIFAR10_STD))
    torch.testing.assert_close(norm(x), reference, rtol=1e-5, atol=1e-5)


def _random_image(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_cifar_crop_is_a_zero_padded_crop_and_flip() -> None:
    img = _random_image(32, 32)
    padded = np.pad(np.asarray(img), ((4, 4), (4, 4), (0, 0)))  # zeros around the image
    tf = T.CifarTrainTransform(32)
    for seed in range(20):
        draw = random.Random(seed)  # the transform's draws, in its order: top, left, flip
        top, left, flip = draw.randint(-4, 4), draw.randint(-4, 4), draw.random() < 0.5
        expected = padded[4 + top : 4 + top + 32, 4 + left : 4 + left + 32]
        expected = expected[:, ::-1] if flip else expected
        assert np.array_equal(np.asarray(tf(img, random.Random(seed))), expected), seed


def test_imagenet_eval_is_torchvisions_resize_and_centre_crop() -> None:
    from torchvision.transforms import v2

    img = _random_image(300, 200)
    reference = v2.Compose([v2.Resize(256), v2.CenterCrop(224)])
    assert np.array_equal(np.asarray(T.ImagenetEvalTransform(224)(img)), np.asarray(reference(img)))
    out = T.ImagenetTrainTransform(64)(img, random.Random(3))
    assert out.size == (64, 64)
    assert T.ImagenetTrainTransform(64, augment=False)(img, random.Random(3)).size == (64, 64)


def test_random_resized_boxes_follow_the_recipe() -> None:
    rng = random.Random(0)
    for _ in range(500):
        top, left, h, w = T.random_resized_box(120, 80, rng)
        assert top >= 0 and left >= 0 and top + h <= 80 and left + w <= 120
        assert 0.07 * 120 * 80 <= h * w <= 120 * 80
        assert 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1 or (h, w) == (80, 80)  # else the centre-crop fallback


def test_batches_do_not_depend_on_the_number_of_workers(tmp_path) -> None:
    make_tree(tmp_path, per_class=6)
    bundle = _load(tmp_path)
    def batches(workers: int) -> list[L.Batch]:  # noqa: E306
        loader, sampler = L.train_loader(bundle, batch_size=4, seed=7, workers=workers)
        sampler.set_epoch(3)
        return list(loader)
    inline, workers = batches(0), batches(2)
    assert len(inline) == len(workers) > 1
    for a, b in zip(inline, workers, strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
