"""Predicted parameters and model outputs against the official code's goldens (shared/golden).

For each checkpoint x architecture: ``torch.manual_seed(0)``, build the torchvision model, seed 0
again, predict with the golden graph, then compare every state_dict entry in order, the total
norm and the logits. Also the docs fixture (a tiny GHN-3 in the HuggingFace joblib format)
against docs/fixtures/expected.json.

Tolerances come from tests/_tolerance.py: they scale with the length and magnitude of the
float32 reductions behind each number, so they hold for any CPU, SIMD width and thread count.

Speed: the cases run architecture by architecture and each model is built once per (arch,
classes) and copied for each checkpoint (torchvision's initialisation of vit_b_16's 86M values
costs far more than the copy); everything compared about one prediction is checked in one test.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re

import pytest
import torch
import torchvision
from torch import nn

from _tolerance import EPS32, U64, element_tol, norm_tol, sum_tol, within
from ghnctl.ghn import load_ghn
from ghnctl.predict import predict_parameters
from test_ghn_golden import ARCHS, GOLDEN, golden_graph, needs_golden

CHECKPOINTS = ("ghn3-tiny-c1000", "ghn3-tiny-c10", "ghn2-tiny-c1000")
FIXTURES = GOLDEN.parent / "docs" / "fixtures"
FIXTURE_ARCHS = ("resnet18", "mobilenet_v3_small", "squeezenet1_0", "vit_b_16")
# Architecture-major, so that consecutive cases share the models of one architecture, starting
# with the architecture the docs-fixture cases (which run first) end with.
CASES = [pytest.param(ckpt, arch, id=f"{ckpt}-{arch}")
         for arch in sorted(ARCHS, key=lambda a: a != FIXTURE_ARCHS[-1]) for ckpt in CHECKPOINTS]

pytestmark = needs_golden


@functools.cache
def _ghn(name: str):
    return load_ghn(GOLDEN / f"{name}.pt")


@functools.lru_cache(maxsize=2)  # the c1000 and c10 models of the current architecture
def _pristine(arch: str, num_classes: int) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(num_classes=num_classes)
    return model, torch.get_rng_state()


def seeded_model(arch: str, num_classes: int) -> nn.Module:
    """What ``torch.manual_seed(0); torchvision.models.<arch>(num_classes=...)`` gives, and the
    global RNG left as that leaves it; built once, copied for each use."""
    model, rng_after = _pristine(arch, num_classes)
    torch.set_rng_state(rng_after)
    return copy.deepcopy(model)


def _deterministic_part(tensor: torch.Tensor, spec: str) -> torch.Tensor:
    """Apply a golden ``deterministic_part`` index such as ``[:, 1:, :]``."""
    parts = spec.strip().strip("[]").split(",")
    index = tuple(slice(*(int(v) if v.strip() else None for v in p.split(":"))) for p in parts)
    return tensor[index]


def decoder_scale(flat: torch.Tensor, dim: int, key: str) -> float:
    """The size of the decoder outputs behind a predicted tensor (``flat``: its values, of a
    ``dim``-D parameter ``key``), in the tensor's units: the ``scale`` of ``element_tol``.

    Tensors of 2 or more dims are decoder outputs times a constant (fan-in normalisation, tiling).
    1-D ones went through 2 sigmoid(z/2) = 1 + tanh(z/4) (norm weights) or tanh(z/5) (biases):
    slopes of at most 1/4 and 1/5, so an error k eps max|z| of the decoder output z moves them by
    at most k eps max atanh|x - 1| and k eps max atanh|x|.
    """
    if dim > 1:
        low, high = torch.aminmax(flat)
        return max(-low.item(), high.item())
    centre = 1.0 if key.endswith("weight") else 0.0
    return torch.atanh((flat - centre).abs().clamp(max=1 - EPS32)).max().item()


def _summary_failures(values: torch.Tensor, ref: dict, key: str, reduction: int
                      ) -> tuple[list[str], float, float]:
    """Compare a predicted tensor with a golden summary: float64 statistics and samples of the
    official float32 tensor.

    Each of our values is within ``element_tol(scale, reduction, x)`` = A + B|x| of the official
    one; the bounds below follow for each statistic (their float64 rounding, on both sides, adds
    ``2 sum_tol(n, ., U64)``): mean: A + B mean|x|; abs_sum: n (A + B mean|x|); std: the norm of
    the differences over sqrt(n - 1), <= sqrt(n / (n - 1)) (A + B rms|x|). Also returns the bound
    sqrt(n) (A + B rms|x|) on the L2 norm of the differences, and the L2 norm of ``values``.
    """
    flat = values.detach().flatten().double()
    n = flat.numel()
    scale = decoder_scale(flat, values.dim(), key)
    total, abs_sum, squares = flat.sum().item(), flat.abs().sum().item(), torch.dot(flat, flat).item()
    mean_abs, rms = abs_sum / n, math.sqrt(squares / n)
    f64 = 2 * sum_tol(n, 1.0, U64)  # relative rounding of a float64 statistic, both sides
    # std from the float64 moments (a pass less than flat.std()): the variance is then off by at
    # most e = f64 * 2 squares / (n - 1), the std by at most min(sqrt(e), e / (2 std)).
    var = max(squares - total * total / n, 0.0) / (n - 1) if n > 1 else 0.0
    std, var_error = math.sqrt(var), f64 * 2 * squares / max(n - 1, 1)
    std_rounding = min(math.sqrt(var_error), var_error / (2 * std)) if std > 0 else math.sqrt(var_error)
    failures = []
    for field, got in (("first8", flat[:8]), ("last8", flat[-8:])):
        for a, b in zip(got.tolist(), ref[field]):
            if not within(a, b, element_tol(scale, reduction, b)):
                failures.append(f"{key} {field}: {a!r} != {b!r} (tolerance {element_tol(scale, reduction, b):.3g})")
    checks = [("mean", total / n, element_tol(scale, reduction, mean_abs) + f64 * mean_abs),
              ("abs_sum", abs_sum, n * element_tol(scale, reduction, mean_abs) + f64 * n * mean_abs)]
    if ref.get("std") is not None:
        checks.append(("std", std, math.sqrt(n / (n - 1)) * element_tol(scale, reduction, rms) + std_rounding))
    failures += [f"{key} {field}: {got!r} != {ref[field]!r} (tolerance {tol:.3g})"
                 for field, got, tol in checks if not within(got, ref[field], tol)]
    return failures, math.sqrt(n) * element_tol(scale, reduction, rms), math.sqrt(n) * rms


def _input_shape(logits: dict) -> tuple[int, ...]:
    """The input of the golden forward pass, from its description ``x = torch.randn(2, 3, S, S)``."""
    match = re.search(r"randn\(([\d, ]+)\)", logits["input"])
    assert match, logits["input"]
    return tuple(int(v) for v in match.group(1).split(","))


def _logits(model: nn.Module, shape: tuple[int, ...], batch_stats: bool) -> torch.Tensor:
    """The goldens' forward pass: BN running stats reset, eval mode, or batch statistics."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.track_running_stats = not batch_stats
            module.training = batch_stats
    torch.manual_seed(123)
    x = torch.randn(*shape)
    with torch.no_grad():
        return model(x)


def _logit_stats(y: torch.Tensor) -> dict[str, list[float] | float]:
    return {"first10": y[:, :10].flatten().tolist(), "mean": y.double().mean().item(), "std": y.double().std().item()}


def _logit_failures(y: torch.Tensor, ref: dict, what: str, fan_in: int,
                    spread: dict[str, float] | None = None) -> list[str]:
    """Compare logits with a golden summary.

    A logit is a dot product of length ``fan_in`` (the classifier's) over features computed by the
    whole network; with results of the size of the logits (their rms), ``element_tol(rms,
    fan_in)`` (measured: <= 1/8 of it on every golden case but one). The mean and std of the 2 x K
    logits follow as in ``_summary_failures``; the golden's own float32 rounding of them adds
    ``sum_tol``. ``spread`` widens each check by 3 times how far the quantity moves when the
    parameters move by float32 rounding (see ``_sensitivity``).
    """
    assert list(y.shape) == ref["shape"], what
    n = y.numel()
    rms = math.sqrt(ref["mean"] ** 2 + ref["std"] ** 2 * (n - 1) / n)
    tol = element_tol(rms, fan_in)
    spread = spread or {"first10": 0.0, "mean": 0.0, "std": 0.0}
    got = _logit_stats(y)
    expected_first = [v for row in ref["first10"] for v in row]
    failures = [f"{what} first10[{i}]: {a} != {b}" for i, (a, b) in enumerate(zip(got["first10"], expected_first))
                if not within(a, b, tol + 3 * spread["first10"])]
    mean_tol = tol + sum_tol(n, n * rms) / n + 3 * spread["mean"]
    std_tol = math.sqrt(n / (n - 1)) * tol + norm_tol(n, rms) + 3 * spread["std"]
    for field, field_tol in (("mean", mean_tol), ("std", std_tol)):
        if not within(got[field], ref[field], field_tol):
            failures.append(f"{what} {field}: {got[field]} != {ref[field]} (tolerance {field_tol:.3g})")
    return failures


def _sensitivity(model: nn.Module, shape: tuple[int, ...], batch_stats: bool, relative: float) -> dict[str, float]:
    """How far the compared logit quantities move when every parameter moves by ``relative``
    (the precision the parameters are checked to) in four random directions.

    BatchNorm on the batch statistics of 2 samples at 1x1 spatial size (EfficientNet on 32x32
    inputs) divides by the spread of two nearly equal numbers: there the logits depend chaotically
    on the parameters, a 1e-7 relative change moves them by several percent (official code
    included), and they can only be compared to that precision.
    """
    reference = _logit_stats(_logits(model, shape, batch_stats))
    spread = {"first10": 0.0, "mean": 0.0, "std": 0.0}
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        perturbed = copy.deepcopy(model)
        with torch.no_grad():
            for p in perturbed.parameters():
                p.mul_(1 + relative * torch.randn(p.shape, generator=generator))
        stats = _logit_stats(_logits(perturbed, shape, batch_stats))
        spread["first10"] = max(spread["first10"], *(abs(a - b) for a, b in zip(stats["first10"],
                                                                                  reference["first10"])))
        for field in ("mean", "std"):
            spread[field] = max(spread[field], abs(stats[field] - reference[field]))
    return spread


def _classifier_fan_in(model: nn.Module, graph) -> int:
    """Length of the classifier's dot products: its weight is the graph's second-to-last node."""
    weight = model.get_parameter(graph.nodes[-2].param)
    return weight.numel() // weight.shape[0]


# --------------------------------------------------------------------------------------------------
# Docs fixture: a tiny GHN-3 in the HuggingFace joblib format, official predictions in expected.json

# expected.json holds the values rounded to 6 decimals, total_norm to 5: half a unit of each.
ROUNDING, TOTAL_ROUNDING = 0.5e-6, 0.5e-5


@functools.cache
def _fixture_ghn():
    return load_ghn(FIXTURES / "ghn3_tiny_fixture.joblib")


@pytest.mark.skipif(not (FIXTURES / "ghn3_tiny_fixture.joblib").is_file(), reason="docs fixture missing")
@pytest.mark.parametrize("arch", FIXTURE_ARCHS)
def test_docs_fixture_reproduces(arch: str) -> None:
    """The fixture's values were made by the official code in float32: its ``sum`` and ``norm`` of
    each parameter are float32 reductions in the official order (``sum_tol``/``norm_tol`` of our
    tensor's magnitudes), ``first`` are values (``element_tol``), all rounded for printing."""
    expected = json.loads((FIXTURES / "expected.json").read_text())[arch]
    ghn = _fixture_ghn()
    assert ghn.num_parameters() == 240_956
    assert ghn.config.max_shape == (16, 16, 11, 11) and ghn.config.hid == 16 and ghn.config.layers == 2
    reduction = ghn.decoder.conv[2].in_features
    model = seeded_model(arch, 1000)  # torch.manual_seed(0) right before construction, as the fixture
    # The official ghn(model) first builds the graph with a forward pass on torch.randn(2, 3, 224, 224)
    # (golden README, quirk 1), then draws the ViT class-token row: consume the RNG the same way.
    torch.randn(2, 3, 224, 224)
    model, report = predict_parameters(ghn, model, golden_graph(arch, 1000), return_report=True)
    predicted = {p.name for p in report.predicted}
    params = dict(model.named_parameters())
    assert list(params) == list(expected["params"])
    failures = []
    norms, difference_bound = [], []
    for name, ref in expected["params"].items():
        p = params[name].detach()
        assert list(p.shape) == ref["shape"], name
        flat = p.double().flatten()
        n, norm, abs_sum = flat.numel(), flat.norm().item(), flat.abs().sum().item()
        scale = decoder_scale(flat, p.dim(), name) if name in predicted else 0.0
        norms.append(norm)
        difference_bound.append(math.sqrt(n) * element_tol(scale, reduction, norm / math.sqrt(n)))
        checks = [("norm", norm, norm_tol(n, norm) + difference_bound[-1]),
                  ("sum", flat.sum().item(), sum_tol(n, abs_sum) + n * element_tol(scale, reduction, abs_sum / n))]
        failures += [f"{name} {field}: {got!r} != {ref[field]!r} (tolerance {tol:.3g})"
                     for field, got, tol in checks if not within(got, ref[field], tol + ROUNDING)]
        failures += [f"{name} first[{i}]: {a!r} != {b!r}"
                     for i, (a, b) in enumerate(zip(flat[:4].tolist(), ref["first"]))
                     if not within(a, b, element_tol(scale, reduction, b) + ROUNDING)]
    assert not failures, "\n".join(failures[:20])
    total = math.sqrt(sum(v * v for v in norms))
    tol = (sum(v / total * norm_tol(p.numel(), v) for p, v in zip(params.values(), norms))
           + norm_tol(len(norms), total) + math.sqrt(sum(d * d for d in difference_bound)) + TOTAL_ROUNDING)
    assert within(total, expected["total_norm"], tol), (total, expected["total_norm"], tol)


# --------------------------------------------------------------------------------------------------
# The goldens: checkpoint x architecture

@pytest.mark.slow
@pytest.mark.parametrize(("ckpt", "arch"), CASES)
def test_golden_prediction(ckpt: str, arch: str) -> None:
    golden = json.loads((GOLDEN / f"{ckpt}__{arch}.json").read_text())
    assert "error" not in golden, golden.get("error")
    num_classes = golden["num_classes"]
    ghn = _ghn(ckpt)
    model = seeded_model(arch, num_classes)
    graph = golden_graph(arch, num_classes)
    torch.manual_seed(0)  # as the goldens: the ViT class-token row is drawn from the global RNG
    model, report = predict_parameters(ghn, model, graph, return_report=True)

    state = model.state_dict()
    assert list(state) == [e["key"] for e in golden["params"]], "state_dict keys or order differ"
    predicted = {p.name for p in report.predicted}
    reduction = ghn.decoder.conv[2].in_features  # the decoder's last layer: 8 * hid
    failures: list[str] = []
    norms: dict[str, float] = {}  # parameter -> float64 L2 norm
    difference_bound: dict[str, float] = {}  # parameter -> bound on the L2 norm of (ours - official)
    for entry in golden["params"]:
        key, tensor = entry["key"], state[entry["key"]]
        assert list(tensor.shape) == entry["shape"], key
        if entry["kind"] != "parameter":
            continue
        assert (key in predicted) == entry["predicted"], f"{key}: predicted flag differs"
        if not entry["predicted"]:  # torchvision's initialisation from seed 0: no reduction, elementwise rounding
            bad, difference_bound[key], norms[key] = _summary_failures(tensor, entry, key, reduction=0)
            failures += bad
            continue
        # Seeded as the goldens, the RNG-dependent row is the official draw too: compare the whole
        # tensor, and the deterministic part on its own as the golden README recommends.
        bad, difference_bound[key], norms[key] = _summary_failures(tensor, entry, key, reduction)
        failures += bad
        if entry.get("rng_dependent"):
            failures += _summary_failures(_deterministic_part(tensor, entry["deterministic_part"]),
                                          entry["deterministic_summary"], key + "[deterministic part]", reduction)[0]
    assert len(predicted) == golden["n_params_predicted"]
    assert not failures, "\n".join(failures[:20])

    # The official norm_check: torch.norm of the per-parameter torch.norm, in float32.
    sizes = {k: p.numel() for k, p in model.named_parameters()}
    assert list(sizes) == list(norms)
    total = math.sqrt(sum(v * v for v in norms.values()))
    float32_norm_error = sum(norms[k] / total * norm_tol(sizes[k], norms[k]) for k in norms)
    tol = (float32_norm_error + norm_tol(len(norms), total)
           + math.sqrt(sum(v * v for v in difference_bound.values())))
    assert within(total, golden["total_param_norm"], tol), (total, golden["total_param_norm"], tol)
    assert within(report.total_norm, total, float32_norm_error), (report.total_norm, total)

    logits = golden["logits"]
    shape = _input_shape(logits)
    if "error" in logits:  # e.g. ViT-B/16 refuses 32x32 inputs: so must our model
        with pytest.raises(Exception) as info:  # noqa: B017 - the golden records the message, not a type
            _logits(model, shape, False)
        assert str(info.value) in logits["error"]
        return
    fan_in = _classifier_fan_in(model, graph)
    for what, batch_stats in (("eval_running_stats_reset", False), ("bn_batch_stats", True)):
        if what not in logits:  # no BatchNorm2d: the golden has no batch-statistics logits
            assert batch_stats and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
            continue
        y = _logits(model, shape, batch_stats)
        failures = _logit_failures(y, logits[what], what, fan_in)
        if failures:  # ill-conditioned logits? compare them to the precision their inputs allow
            spread = _sensitivity(model, shape, batch_stats, reduction * EPS32)
            failures = _logit_failures(y, logits[what], what, fan_in, spread)
        assert not failures, "\n".join(failures[:20])
