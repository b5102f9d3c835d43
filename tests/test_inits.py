"""ghnctl.inits: --init parsing, the official noise and orthogonalisation, GHN and file inits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ghnctl import inits, perturb
from ghnctl.errors import UsageError
from test_finetune_support import tiny_net


def _fake_ghn(model: nn.Module, predict_classifier: bool) -> dict[str, torch.Tensor]:
    """Stands in for a GHN: a deterministic 'prediction' for every parameter, classifier included
    (to check that apply_init restores the classifier when it must not be predicted)."""
    g = torch.Generator().manual_seed(42)
    return {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in model.named_parameters()}


# --------------------------------------------------------------------------------------------
# parsing


def test_parse_init_values() -> None:
    assert inits.InitSpec.parse("random").kind == "random"
    spec = inits.InitSpec.parse("GHN", ghn="ghn3tm8", noise=0.0, orth=True)
    assert (spec.kind, spec.ghn, spec.noise, spec.orth, spec.label) == ("ghn", "ghn3tm8", 0.0, True, "ghn:ghn3tm8")
    spec = inits.InitSpec.parse("file:~/w.safetensors")
    assert spec.kind == "file" and spec.path == Path("~/w.safetensors").expanduser() and spec.pretrained
    assert not inits.InitSpec.parse("random").pretrained


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("imagenet", {}, "unknown --init"),
        ("file:", {}, "needs a path"),
        ("ghn", {"noise": -1.0}, "--noise"),
        ("ghn", {"noise": float("nan")}, "--noise"),
        ("ghn", {"ghn": " "}, "--ghn"),
    ],
)
def test_parse_rejects(text, kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        inits.InitSpec.parse(text, **kwargs)


# --------------------------------------------------------------------------------------------
# noise and orthogonalisation


@pytest.mark.parametrize("shape", [(6, 20), (20, 6), (8, 3, 3, 3), (4, 16, 1, 1), (5, 5)])
def test_corr_std_matches_corrcoef(shape) -> None:
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    w2d = w.reshape(shape[0], -1)
    tall = w2d.t() if w2d.shape[0] < w2d.shape[1] else w2d  # official weights2mat
    expected = torch.corrcoef(tall.double()).flatten().std().item()
    assert perturb.corr_std(w) == pytest.approx(expected, rel=1e-9)


def test_corr_std_ignores_constant_rows() -> None:
    w = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    w[3] = 0.5  # torch.corrcoef gives NaN for this row: the official noise would become NaN
    expected = torch.corrcoef(torch.cat([w[:3], w[4:]]).double()).flatten().std().item()
    assert perturb.corr_std(w) == pytest.approx(expected, rel=1e-9)
    assert perturb.corr_std(torch.ones(5, 3)) == 0.0


def test_noise_skips_the_classifier_biases_and_norms() -> None:
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    n = perturb.add_noise_(net, 1e-2, torch.Generator().manual_seed(0))
    after = net.state_dict()
    assert n == 1  # conv only: the linear layer is the classifier
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"0.weight"}
    delta = (after["0.weight"] - before["0.weight"]).std().item()
    assert delta == pytest.approx(1e-2 * perturb.corr_std(before["0.weight"]), rel=0.3)
    again = tiny_net()
    perturb.add_noise_(again, 1e-2, torch.Generator().manual_seed(0))
    assert torch.equal(again.state_dict()["0.weight"], after["0.weight"])  # seeded


@pytest.mark.parametrize("shape", [(16, 4), (4, 16), (8, 3, 3, 3), (32, 8, 1, 1)])
def test_orthogonalize_gives_the_signed_q_factor(shape) -> None:
    w = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    q = perturb.orthogonalize(w)
    assert q.shape == w.shape
    m = q.reshape(shape[0], -1)
    tall = m.t() if m.shape[0] < m.shape[1] else m
    torch.testing.assert_close(tall.t() @ tall, torch.eye(tall.shape[1]), atol=1e-5, rtol=0)
    # Signs follow diag(R) > 0, so Q^T W (in the tall orientation) is upper triangular with a positive diagonal.
    w2d = w.reshape(shape[0], -1)
    w_tall = w2d.t() if w2d.shape[0] < w2d.shape[1] else w2d
    r = tall.t() @ w_tall
    assert torch.all(torch.diagonal(r) > 0)
    torch.testing.assert_close(torch.tril(r, -1), torch.zeros_like(r), atol=1e-5, rtol=0)


def test_classifier_is_the_last_2d_weight() -> None:
    import torchvision

    assert perturb.classifier_module(torchvision.models.resnet18())[0] == "fc"
    assert perturb.classifier_module(torchvision.models.squeezenet1_0())[0] == "classifier.1"  # a conv
    assert perturb.classifier_module(nn.ReLU()) == (None, None)


# --------------------------------------------------------------------------------------------
# ghn init (with a stand-in predictor: the engine is tested below when it is present)


def test_ghn_init_keeps_random_classifier_when_classes_differ() -> None:
    random_net, net = tiny_net(), tiny_net()
    spec = inits.InitSpec("ghn", noise=0.0)
    report = inits.apply_init(net, spec, num_classes=3, predictor=_fake_ghn, ghn_num_classes=1000)
    predicted = _fake_ghn(net, True)
    assert report.classifier == "6" and report.classifier_predicted is False
    assert "keeps its random initialisation" in report.notes[0]
    assert torch.equal(net[0].weight, predicted["0.weight"])
    assert torch.equal(net[6].weight, random_net[6].weight) and torch.equal(net[6].bias, random_net[6].bias)
    assert not torch.equal(net[0].weight, random_net[0].weight)  # differs from the random init


def test_ghn_init_predicts_classifier_when_classes_match_and_adds_noise() -> None:
    net = tiny_net()
    spec = inits.InitSpec("ghn", noise=1e-3)
    report = inits.apply_init(net, spec, num_classes=3, seed=1, predictor=_fake_ghn, ghn_num_classes=3)
    predicted = _fake_ghn(net, True)
    assert report.classifier_predicted is True and report.noised == 1
    assert torch.equal(net[6].weight, predicted["6.weight"])  # the classifier gets no noise
    assert not torch.equal(net[0].weight, predicted["0.weight"])
    assert (net[0].weight - predicted["0.weight"]).abs().max() < 5e-3  # beta * std(corr) * N(0, 1)


def test_ghn_init_in_place_predictor_and_rng_is_untouched() -> None:
    def in_place(model: nn.Module, predict_classifier: bool) -> None:
        torch.randn(3)  # graph construction draws from the global RNG
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(0.5)

    state = torch.get_rng_state()
    net = tiny_net()
    inits.apply_init(net, inits.InitSpec("ghn", orth=True, noise=0.0), 3, predictor=in_place, ghn_num_classes=3)
    assert torch.equal(torch.get_rng_state(), state)
    # orth on an all-0.5 conv weight: rank one, still an orthonormal (8 x 27) row set after QR.
    w = net[0].weight.reshape(8, -1)
    torch.testing.assert_close(w @ w.t(), torch.eye(8), atol=1e-5, rtol=0)


def test_ghn_init_with_a_missing_ghn_file_is_a_clear_error(tmp_path) -> None:
    from ghnctl.errors import CheckpointError

    with pytest.raises(CheckpointError, match="does not exist"):
        inits.apply_init(tiny_net(), inits.InitSpec("ghn", ghn=str(tmp_path / "none.pt")), 3)


def test_ghn_init_with_the_engine_and_golden_checkpoint(shared_dir) -> None:
    import torchvision

    ckpt = shared_dir / "golden" / "ghn3-tiny-c10.pt"  # random weights: plumbing only, not GHN results
    torch.manual_seed(0)
    random_net = torchvision.models.resnet18(num_classes=5)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5)
    report = inits.apply_init(net, inits.InitSpec("ghn", ghn=str(ckpt)), num_classes=5)
    assert report.ghn_num_classes == 10 and report.classifier_predicted is False
    assert report.predicted and report.noised == len(perturb.weight_layers(net)) - 1
    assert torch.equal(net.fc.weight, random_net.fc.weight) and torch.equal(net.fc.bias, random_net.fc.bias)
    assert not torch.equal(net.conv1.weight, random_net.conv1.weight)

    torch.manual_seed(0)
    random10 = torchvision.models.resnet18(num_classes=10)
    same_classes = torchvision.models.resnet18(num_classes=10)
    same_classes.load_state_dict(random10.state_dict())
    report = inits.apply_init(same_classes, inits.InitSpec("ghn", ghn=str(ckpt), noise=0.0), num_classes=10)
    assert report.classifier_predicted is True
    assert not torch.equal(same_classes.fc.weight, random10.fc.weight)  # the GHN's 10 classes = the data's
    again = torchvision.models.resnet18(num_classes=10)
    inits.apply_init(again, inits.InitSpec("ghn", ghn=str(ckpt), noise=0.0), num_classes=10)
    assert torch.equal(again.fc.weight, same_classes.fc.weight)  # prediction is deterministic


# --------------------------------------------------------------------------------------------
# file init


def test_file_init_roundtrip_and_strictness(tmp_path) -> None:
    source = tiny_net(seed=5)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    net = tiny_net()
    report = inits.apply_init(net, inits.InitSpec.parse(f"file:{path}"), 3)
    assert report.loaded == len(source.state_dict())
    for k, v in source.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k

    params_only = tmp_path / "p.safetensors"  # buffers may be absent (e.g. a predict output)
    save_file({k: v.detach().contiguous() for k, v in source.named_parameters()}, str(params_only))
    inits.apply_init(tiny_net(), inits.InitSpec.parse(f"file:{params_only}"), 3)

    partial = tmp_path / "partial.safetensors"
    save_file({"0.weight": source[0].weight.detach().contiguous(), "extra": torch.zeros(1)}, str(partial))
    with pytest.raises(inits.InitError, match="missing .* unexpected"):
        inits.apply_init(tiny_net(), inits.InitSpec.parse(f"file:{partial}"), 3)
    with pytest.raises(inits.InitError, match="shape"):
        inits.apply_init(tiny_net(num_classes=4), inits.InitSpec.parse(f"file:{path}"), 4)
    with pytest.raises(inits.InitError, match="does not exist"):
        inits.apply_init(tiny_net(), inits.InitSpec.parse(f"file:{tmp_path / 'nope.safetensors'}"), 3)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(inits.InitError, match="cannot read"):
        inits.apply_init(tiny_net(), inits.InitSpec.parse(f"file:{junk}"), 3)
