"""The tolerance helpers of the golden tests (tests/_tolerance.py): they accept the same float32
result computed in any order, and still reject a real error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _tolerance import EPS32, element_tol, norm_tol, sum_tol

N_ROWS, N_COLS, BLOCK = 768, 3072, 16  # vit_b_16's mlp.3.weight, tiled from a 16x16 block like the fixture GHN's


def _old_close(a: float, b: float) -> bool:
    """The fixed tolerance the docs-fixture test used on sums before."""
    return abs(a - b) <= 1e-4 + 1e-4 * abs(b)


@pytest.fixture(scope="module")
def tiled() -> np.ndarray:
    """Values like a predicted ViT MLP weight: a 16x16 block of ~N(0, 0.01) tiled over (768, 3072),
    centred so that the 2.4M values nearly cancel (the golden case that failed on another CPU)."""
    generator = torch.Generator().manual_seed(0)
    block = 0.01 * torch.randn(BLOCK, BLOCK, generator=generator)
    block -= block.mean()
    return block.repeat(N_ROWS // BLOCK, N_COLS // BLOCK).flatten().numpy()


def _sequential(x: np.ndarray) -> float:
    return float(np.cumsum(x, dtype=np.float32)[-1])


def _lanes(x: np.ndarray, lanes: int) -> float:
    """SIMD-style: ``lanes`` sequential float32 accumulators, then their sum."""
    return float(np.cumsum(x.reshape(-1, lanes), axis=0, dtype=np.float32)[-1].sum(dtype=np.float32))


def _orders(x: np.ndarray) -> dict[str, float]:
    """The float32 sum of ``x`` in the orders of torch, numpy, SIMD lanes, loops, and in float64."""
    t = torch.from_numpy(x)
    ascending = np.sort(x)
    return {
        "torch": t.sum().item(), "torch sorted": t.sort().values.sum().item(), "torch reversed": t.flip(0).sum().item(),
        "torch permuted": t[torch.randperm(len(t), generator=torch.Generator().manual_seed(1))].sum().item(),
        "numpy pairwise": float(x.sum(dtype=np.float32)), "float64": float(x.sum(dtype=np.float64)),
        "8 lanes": _lanes(x, 8), "16 lanes": _lanes(x, 16), "sequential": _sequential(x),
        "sequential reversed": _sequential(x[::-1].copy()), "sequential sorted": _sequential(ascending),
        "sequential sorted descending": _sequential(ascending[::-1].copy()),
    }


@pytest.fixture(scope="module")
def sums(tiled: np.ndarray) -> dict[str, tuple[float, float, dict[str, float]]]:
    """For the tiled values and their squares: (exact sum, sum of magnitudes, sum in each order)."""
    return {what: (math.fsum(x.astype(np.float64)), float(np.abs(x).sum(dtype=np.float64)), _orders(x))
            for what, x in (("values", tiled), ("squares", tiled * tiled))}


def test_sum_tol_accepts_the_same_sum_in_any_order(sums: dict) -> None:
    exact, abs_sum, orders = sums["values"]
    tol = sum_tol(N_ROWS * N_COLS, abs_sum)
    errors = {name: abs(value - exact) for name, value in orders.items()}
    assert all(err <= tol for err in errors.values()), (tol, errors)
    # The fixed tolerance rejected some of them: the sum is small, its terms are not.
    assert not all(_old_close(value, exact) for value in orders.values())


def test_norm_tol_accepts_the_same_norm_in_any_order(tiled: np.ndarray, sums: dict) -> None:
    exact_squares, _, orders = sums["squares"]
    exact = math.sqrt(exact_squares)
    tol = norm_tol(tiled.size, exact)
    norms = {name: math.sqrt(value) for name, value in orders.items()}
    norms["torch.norm"] = torch.from_numpy(tiled).norm().item()
    assert all(abs(value - exact) <= tol for value in norms.values()), (tol, norms, exact)


def test_random_error_bound_is_not_safe_for_tiled_values(sums: dict) -> None:
    """Why the bounds are not ``sqrt(n) eps S``: tiling repeats the same values, whose rounding
    errors add up instead of cancelling, in natural orders as well as sorted ones."""
    n = N_ROWS * N_COLS
    for exact, abs_sum, orders in sums.values():
        errors = {name: abs(value - exact) for name, value in orders.items()}
        assert max(errors.values()) > math.sqrt(n) * EPS32 * abs_sum, errors
        assert max(errors.values()) <= sum_tol(n, abs_sum) / 2


def test_sum_tol_rejects_a_real_error() -> None:
    """One changed value of a sum of 4096 values near 1 is caught, also where the old tolerance missed it."""
    x = torch.empty(4096, dtype=torch.float64).uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(0))
    exact, tol = x.sum().item(), sum_tol(x.numel(), x.abs().sum().item())
    float32 = x.float().sum().item()
    assert abs(float32 - exact) <= tol
    old_tol = 1e-4 + 1e-4 * exact  # ~0.41
    for change in (0.5, 0.2):  # the old tolerance caught 0.5 too, not 0.2 (the new one: > 0.13)
        wrong = x.clone()
        wrong[1234] += change
        assert abs(wrong.float().sum().item() - exact) > tol
        assert _old_close(wrong.sum().item(), exact) == (change <= old_tol)


def test_element_tol_accepts_dot_product_orders_and_rejects_a_changed_value() -> None:
    """A decoder-like layer (256 inputs): float32 in three orders vs float64, within element_tol;
    a value changed by 2e-4 of the scale is not."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(64, 256, generator=generator) / 16
    hidden = torch.relu(torch.randn(256, generator=generator))
    exact = (weight.double() @ hidden.double()).numpy()
    products = (weight * hidden).numpy()
    orders = {"matmul": (weight @ hidden).numpy(), "sequential": np.cumsum(products, axis=1, dtype=np.float32)[:, -1],
              "8 lanes": np.cumsum(products.reshape(64, -1, 8), axis=1, dtype=np.float32)[:, -1].sum(axis=1)}
    scale = float(np.abs(exact).max())
    for name, got in orders.items():
        assert all(abs(a - b) <= element_tol(scale, 256, b) for a, b in zip(got, exact)), name
        wrong = got[5] + 2e-4 * scale
        assert abs(wrong - exact[5]) > element_tol(scale, 256, exact[5]), name
