"""Predicted parameters and model outputs against the official code's goldens (shared/golden).

For each checkpoint x architecture: ``torch.manual_seed(0)``, build the torchvision model, seed 0
again, predict with the golden graph, then compare every state_dict entry in order and the logits,
with the tolerances of shared/golden/README.md. Also the docs fixture (a tiny GHN-3 in the
HuggingFace joblib format) against docs/fixtures/expected.json.
"""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch
import torchvision

from ghnctl.ghn import load_ghn
from ghnctl.predict import predict_parameters
from test_ghn_golden import ARCHS, GOLDEN, golden_graph, needs_golden

CHECKPOINTS = ("ghn3-tiny-c1000", "ghn3-tiny-c10", "ghn2-tiny-c1000")
FIXTURES = GOLDEN.parent / "docs" / "fixtures"

pytestmark = needs_golden


@functools.cache
def _ghn(name: str):
    return load_ghn(GOLDEN / f"{name}.pt")


def _close(a: float, b: float, atol: float, rtol: float) -> bool:
    return abs(a - b) <= atol + rtol * abs(b)


def _deterministic_part(tensor: torch.Tensor, spec: str) -> torch.Tensor:
    """Apply a golden ``deterministic_part`` index such as ``[:, 1:, :]``."""
    parts = spec.strip().strip("[]").split(",")
    index = tuple(slice(*(int(v) if v.strip() else None for v in p.split(":"))) for p in parts)
    return tensor[index]


def _summary_deviations(values: torch.Tensor, ref: dict) -> tuple[list[str], float]:
    """Compare a tensor with a golden summary; returns (failures, max abs deviation of values)."""
    flat = values.detach().double().flatten()
    failures: list[str] = []
    max_dev = 0.0
    for field, got in (("first8", flat[:8]), ("last8", flat[-8:])):
        for a, b in zip(got.tolist(), ref[field]):
            max_dev = max(max_dev, abs(a - b))
            if not _close(a, b, 1e-6, 1e-4):
                failures.append(f"{field}: {a!r} != {b!r}")
    if not _close(flat.mean().item(), ref["mean"], 1e-6, 1e-4):
        failures.append(f"mean: {flat.mean().item()!r} != {ref['mean']!r}")
    if ref.get("std") is not None and not _close(flat.std().item(), ref["std"], 0.0, 1e-4):
        failures.append(f"std: {flat.std().item()!r} != {ref['std']!r}")
    if not _close(flat.abs().sum().item(), ref["abs_sum"], 0.0, 1e-4):
        failures.append(f"abs_sum: {flat.abs().sum().item()!r} != {ref['abs_sum']!r}")
    return failures, max_dev


def _compare_logits(y: torch.Tensor, ref: dict, what: str) -> list[str]:
    failures = []
    assert list(y.shape) == ref["shape"], what
    for row, ref_row in zip(y[:, :10].tolist(), ref["first10"]):
        failures += [f"{what} first10 {a} != {b}" for a, b in zip(row, ref_row) if not _close(a, b, 2e-4, 1e-3)]
    for field, got in (("mean", y.double().mean().item()), ("std", y.double().std().item())):
        if not _close(got, ref[field], 2e-4, 1e-3):
            failures.append(f"{what} {field} {got} != {ref[field]}")
    return failures


def _logits(model: torch.nn.Module, size: int, batch_stats: bool) -> torch.Tensor:
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
    model.eval()
    if batch_stats:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.track_running_stats = False
                module.training = True
    torch.manual_seed(123)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("ckpt", CHECKPOINTS)
def test_golden_prediction(ckpt: str, arch: str) -> None:
    golden = json.loads((GOLDEN / f"{ckpt}__{arch}.json").read_text())
    assert "error" not in golden, golden.get("error")
    num_classes = golden["num_classes"]
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(num_classes=num_classes)
    graph = golden_graph(arch, num_classes)
    torch.manual_seed(0)  # as the goldens: only the ViT class-token row uses the RNG
    model, report = predict_parameters(_ghn(ckpt), model, graph, return_report=True)

    state = model.state_dict()
    assert list(state) == [e["key"] for e in golden["params"]], "state_dict keys or order differ"
    predicted = {p.name for p in report.predicted}
    failures: list[str] = []
    compared = 0
    for entry in golden["params"]:
        tensor = state[entry["key"]]
        assert list(tensor.shape) == entry["shape"], entry["key"]
        if entry["kind"] != "parameter":
            continue
        assert (entry["key"] in predicted) == entry["predicted"], f"{entry['key']}: predicted flag differs"
        if not entry["predicted"]:
            continue
        if entry.get("rng_dependent"):
            values, ref = _deterministic_part(tensor, entry["deterministic_part"]), entry["deterministic_summary"]
        else:
            values, ref = tensor, entry
        bad, _ = _summary_deviations(values, ref)
        failures += [f"{entry['key']} {m}" for m in bad]
        compared += 1
    assert compared == golden["n_params_predicted"]
    assert not failures, "\n".join(failures[:20])

    norm = math.sqrt(sum(float(p.detach().double().norm()) ** 2 for p in model.parameters()))
    assert _close(norm, golden["total_param_norm"], 1e-5, 1e-5)
    assert _close(report.total_norm, golden["total_param_norm"], 1e-4, 1e-5)

    logits = golden["logits"]
    if "error" in logits:  # e.g. ViT-B/16 refuses 32x32 inputs
        return
    size = 224 if num_classes == 1000 else 32
    failures = _compare_logits(_logits(model, size, False), logits["eval_running_stats_reset"], "eval")
    assert not failures, "\n".join(failures[:20])
    if "bn_batch_stats" in logits:
        failures = _compare_logits(_logits(model, size, True), logits["bn_batch_stats"], "bn_batch_stats")
        if failures and _chaotic(model, size):
            pytest.skip("bn_batch_stats logits are chaotic for this model and input size: a 1e-7 relative "
                        "change of the parameters moves them beyond the tolerance (official code included)")
        assert not failures, "\n".join(failures[:20])


def _chaotic(model: torch.nn.Module, size: int) -> bool:
    """Whether float32 round-off alone moves the model's logits beyond the golden tolerance.

    BatchNorm on batch statistics of 2 samples at 1x1 spatial size (e.g. EfficientNet on 32x32
    inputs) divides by the spread of two nearly equal numbers; such logits cannot be compared.
    """
    reference = _logits(model, size, True)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 1e-7 * torch.randn(p.shape, generator=generator))
    perturbed = _logits(model, size, True)
    return not all(_close(a, b, 2e-4, 1e-3) for a, b in zip(perturbed.flatten().tolist(),
                                                            reference.flatten().tolist()))


# --------------------------------------------------------------------------------------------------
# Docs fixture: a tiny GHN-3 in the HuggingFace joblib format, official predictions in expected.json

FIXTURE_ARCHS = ("resnet18", "vit_b_16", "mobilenet_v3_small", "squeezenet1_0")


@pytest.mark.skipif(not (FIXTURES / "ghn3_tiny_fixture.joblib").is_file(), reason="docs fixture missing")
@pytest.mark.parametrize("arch", FIXTURE_ARCHS)
def test_docs_fixture_reproduces(arch: str) -> None:
    expected = json.loads((FIXTURES / "expected.json").read_text())[arch]
    ghn = load_ghn(FIXTURES / "ghn3_tiny_fixture.joblib")
    assert ghn.num_parameters() == 240_956
    assert ghn.config.max_shape == (16, 16, 11, 11) and ghn.config.hid == 16 and ghn.config.layers == 2
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(num_classes=1000)
    model = predict_parameters(ghn, model, golden_graph(arch, 1000))
    params = dict(model.named_parameters())
    assert list(params) == list(expected["params"])
    for name, ref in expected["params"].items():
        p = params[name].detach().double()
        assert list(p.shape) == ref["shape"], name
        random_row = name == "encoder.pos_embedding"  # row 0 is drawn from the RNG (class token)
        assert _close(p.norm().item(), ref["norm"], 2e-3 if random_row else 1e-5, 1e-4), name
        if random_row:
            p = p[:, 1:]
            continue
        assert _close(p.sum().item(), ref["sum"], 1e-4, 1e-4), name
        for a, b in zip(p.flatten()[:4].tolist(), ref["first"]):
            assert _close(a, b, 1e-6, 1e-4), f"{name}: {a} != {b}"
    norm = math.sqrt(sum(float(p.detach().double().norm()) ** 2 for p in model.parameters()))
    assert _close(norm, expected["total_norm"], 2e-3 if arch == "vit_b_16" else 1e-4, 1e-5)
