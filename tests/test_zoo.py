"""Model specs -> models: torchvision names, module and file factories, timm, did-you-mean."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from ghnctl import zoo
from ghnctl.errors import MissingExtra, ModelBuildError, UnknownModel, UsageError

# ------------------------------------------------------------------------------------------------
# torchvision


def test_list_models_is_torchvision_classification() -> None:
    names = zoo.list_models()
    assert names == sorted(torchvision.models.list_models(module=torchvision.models))
    assert {"resnet50", "vit_b_16", "convnext_tiny", "mobilenet_v3_small"} <= set(names)
    assert "fasterrcnn_resnet50_fpn" not in names


def test_list_models_substring_and_glob() -> None:
    assert "resnet50" in zoo.list_models("res")
    assert "wide_resnet50_2" in zoo.list_models("RES")  # case-insensitive substring
    assert zoo.list_models("resnet*") == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    assert zoo.list_models("vit_?_16") == ["vit_b_16", "vit_l_16"]
    assert zoo.list_models("nothing-like-this") == []


def test_torchvision_model_defaults() -> None:
    spec = zoo.resolve_model("resnet18")
    assert isinstance(spec.model, torchvision.models.ResNet)
    assert (spec.arch, spec.source, spec.image_size, spec.num_classes) == (
        "resnet18",
        "torchvision",
        224,
        1000,
    )
    assert spec.model.fc.out_features == 1000


def test_num_classes_and_image_size() -> None:
    spec = zoo.resolve_model("resnet18", num_classes=10, image_size=32)
    assert spec.model.fc.out_features == 10
    assert (spec.num_classes, spec.image_size) == (10, 32)


@pytest.mark.parametrize("name", ["inception_v3", "googlenet"])
def test_golden_convention_for_aux_heads(name: str) -> None:
    spec = zoo.resolve_model(name, num_classes=10)
    assert spec.model.aux_logits is False
    assert spec.image_size == (299 if name == "inception_v3" else 224)


def test_seed_reproduces_the_golden_convention_without_touching_global_rng() -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10)
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    spec = zoo.resolve_model("resnet18", num_classes=10, seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    for (name, a), (_, b) in zip(reference.state_dict().items(), spec.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownModel) as info:
        zoo.resolve_model("resnt50")
    err = info.value
    assert err.exit_code == 2
    assert err.message == "unknown model 'resnt50'"
    assert err.hint.startswith("did you mean resnet50")
    assert str(err) == "unknown model 'resnt50'; did you mean resnet50, resnet152, resnet101?"


def test_unknown_name_without_suggestion_points_to_list() -> None:
    with pytest.raises(UnknownModel) as info:
        zoo.resolve_model("zzzzzz")
    assert "--list" in info.value.hint


# ------------------------------------------------------------------------------------------------
# the stored torchvision names (answers before torch is imported)


def test_stored_names_are_the_installed_torchvisions() -> None:
    from ghnctl import _tv_models, tv_names

    installed = tv_names.installed_version()
    if installed != _tv_models.TORCHVISION_VERSION:
        pytest.skip(
            f"ghnctl/_tv_models.py lists torchvision {_tv_models.TORCHVISION_VERSION}, {installed} is installed: "
            "the no-torch fast path is off (after changing the pinned torchvision: python -m ghnctl.tv_names)"
        )
    real = sorted(torchvision.models.list_models(module=torchvision.models))
    assert list(_tv_models.NAMES) == real, (
        f"ghnctl/_tv_models.py is not torchvision {installed}'s model list: regenerate it with "
        "`python -m ghnctl.tv_names`"
    )


def test_installed_version_ignores_the_build_label(monkeypatch) -> None:
    from ghnctl import tv_names

    monkeypatch.setattr(tv_names.importlib.metadata, "version", lambda name: "0.29.1+cu130")
    assert tv_names.installed_version() == "0.29.1"


@pytest.fixture
def stored_names(monkeypatch):
    """Pretend the stored list is ``names`` of torchvision ``version``; returns the setter."""
    from ghnctl import _tv_models

    def use(names: tuple[str, ...], version: str) -> None:
        monkeypatch.setattr(_tv_models, "NAMES", names)
        monkeypatch.setattr(_tv_models, "TORCHVISION_VERSION", version)

    return use


def test_misspelt_name_is_refused_without_torchvision(monkeypatch, stored_names) -> None:
    from ghnctl import tv_names

    stored_names(("resnet18", "resnet50"), tv_names.installed_version())
    monkeypatch.setitem(sys.modules, "torchvision", None)  # importing it now raises ImportError
    with pytest.raises(UnknownModel) as info:
        zoo.resolve_model("resnt50")
    assert info.value.hint == "did you mean resnet50, resnet18?"
    assert zoo.list_models("resnet") == ["resnet18", "resnet50"]


def test_a_newer_torchvision_is_asked_for_names_the_stored_list_lacks(stored_names) -> None:
    stored_names(("alexnet",), "0.0.1")  # the list of another torchvision release, without resnet18
    assert zoo.resolve_model("resnet18").arch == "resnet18"
    assert zoo.list_models() == sorted(torchvision.models.list_models(module=torchvision.models))
    with pytest.raises(UnknownModel, match="resnt18"):
        zoo.resolve_model("resnt18")


@pytest.mark.parametrize(("kwargs", "match"), [({"num_classes": 0}, "num-classes"), ({"image_size": 0}, "image-size")])
def test_bad_numbers_are_usage_errors(kwargs, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        zoo.resolve_model("resnet18", **kwargs)


def test_spec_name() -> None:
    assert zoo.spec_name("resnet50") == "resnet50"
    assert zoo.spec_name("timm:vit_tiny_patch16_224") == "vit_tiny_patch16_224"
    assert zoo.spec_name("models/my net.py:build") == "build"
    assert zoo.spec_name("pkg.mod:factory") == "factory"


# ------------------------------------------------------------------------------------------------
# file.py:factory


def test_file_factory(tiny_model_file: Path) -> None:
    spec = zoo.resolve_model(f"{tiny_model_file}:tiny_net", num_classes=3)
    assert (spec.arch, spec.source, spec.image_size, spec.num_classes) == ("tiny_net", "file", 224, 3)
    assert spec.model[-1].out_features == 3


def test_file_factory_default_classes_are_unknown(tiny_model_file: Path) -> None:
    spec = zoo.resolve_model(f"{tiny_model_file}:tiny_net")
    assert spec.num_classes is None
    assert spec.model[-1].out_features == 10


def test_relative_file_and_sibling_imports(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "blocks.py").write_text("from torch import nn\nWIDTH = 4\n")
    (tmp_path / "net.py").write_text(
        "from torch import nn\nimport blocks\n\ndef build():\n    return nn.Linear(blocks.WIDTH, 2)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "blocks", raising=False)
    spec = zoo.resolve_model("net.py:build")
    assert spec.model.in_features == 4
    assert str(tmp_path) not in sys.path  # the directory was on the path only while importing


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="does not exist"):
        zoo.resolve_model(f"{tmp_path}/nope.py:build")


def test_missing_factory_suggests_names(tiny_model_file: Path) -> None:
    with pytest.raises(UnknownModel) as info:
        zoo.resolve_model(f"{tiny_model_file}:tiny_nett")
    assert "tiny_net" in info.value.hint


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        ("VALUE = 3\n", UnknownModel, "not callable"),
        ("def build():\n    return 42\n", ModelBuildError, "not a torch.nn.Module"),
        ("def build():\n    raise ValueError('bad width')\n", ModelBuildError, "bad width"),
        ("import no_such_module_xyz\n", ModelBuildError, "no_such_module_xyz"),
        ("def build(:\n", ModelBuildError, "SyntaxError"),
    ],
)
def test_broken_factories(tmp_path: Path, body: str, error: type, match: str) -> None:
    path = tmp_path / "broken.py"
    path.write_text(body)
    attr = "VALUE" if body.startswith("VALUE") else "build"
    with pytest.raises(error, match=match):
        zoo.resolve_model(f"{path}:{attr}")


def test_factory_without_num_classes(tmp_path: Path) -> None:
    path = tmp_path / "fixed.py"
    path.write_text("from torch import nn\n\ndef build():\n    return nn.Linear(2, 2)\n")
    with pytest.raises(UsageError, match="does not take num_classes") as info:
        zoo.resolve_model(f"{path}:build", num_classes=5)
    assert "--num-classes" in info.value.hint
    assert isinstance(zoo.resolve_model(f"{path}:build").model, nn.Linear)


def test_incomplete_spec() -> None:
    with pytest.raises(UnknownModel, match="incomplete"):
        zoo.resolve_model("mymodule:")


# ------------------------------------------------------------------------------------------------
# pkg.module:factory


def test_module_factory_on_sys_path(tiny_model_package: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tiny_model_package))
    spec = zoo.resolve_model("tinypkg.nets:tiny_net", num_classes=4)
    assert (spec.arch, spec.source) == ("tiny_net", "module")
    assert spec.model[-1].out_features == 4


def test_module_factory_from_current_directory(tiny_model_package: Path, monkeypatch) -> None:
    monkeypatch.chdir(tiny_model_package)
    assert zoo.resolve_model("tinypkg.nets:tiny_net").arch == "tiny_net"


def test_installed_module_factory() -> None:
    spec = zoo.resolve_model("torchvision.models:resnet18", num_classes=7)
    assert spec.model.fc.out_features == 7


def test_missing_module() -> None:
    with pytest.raises(UnknownModel, match=r"cannot import module 'no_such_pkg_xyz\.nets'"):
        zoo.resolve_model("no_such_pkg_xyz.nets:build")


def test_module_with_broken_import(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "brokenmod_xyz.py").write_text("import missing_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelBuildError, match="missing_dependency_xyz"):
        zoo.resolve_model("brokenmod_xyz:build")


# ------------------------------------------------------------------------------------------------
# timm


def test_timm_missing_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail like a missing package
    with pytest.raises(MissingExtra) as info:
        zoo.resolve_model("timm:resnet18")
    assert "pip install 'ghnctl[timm]'" in info.value.hint
    assert info.value.exit_code == 2


@pytest.fixture
def fake_timm(monkeypatch) -> list[dict]:
    """A stand-in for timm's small public API; records create_model calls."""
    calls: list[dict] = []
    module = types.ModuleType("timm")
    module.list_models = lambda: ["resnet18", "vit_tiny_patch16_384"]
    module.is_model = lambda name: name in module.list_models()

    def create_model(name, pretrained=False, **kwargs):
        calls.append({"name": name, "pretrained": pretrained, **kwargs})
        return nn.Linear(4, kwargs.get("num_classes", 1000))

    module.create_model = create_model
    module.get_pretrained_cfg = lambda name: types.SimpleNamespace(
        input_size=(3, 384, 384) if "384" in name else (3, 224, 224)
    )
    monkeypatch.setitem(sys.modules, "timm", module)
    return calls


def test_timm_spec(fake_timm: list[dict]) -> None:
    spec = zoo.resolve_model("timm:vit_tiny_patch16_384", num_classes=10)
    assert (spec.arch, spec.source, spec.image_size, spec.num_classes) == (
        "vit_tiny_patch16_384",
        "timm",
        384,
        10,
    )
    assert fake_timm == [{"name": "vit_tiny_patch16_384", "pretrained": False, "num_classes": 10}]


def test_timm_unknown_name(fake_timm: list[dict]) -> None:
    with pytest.raises(UnknownModel, match="unknown timm model") as info:
        zoo.resolve_model("timm:resnet19")
    assert "resnet18" in info.value.hint
    assert fake_timm == []
