"""Tolerances for float32 results computed in another order than the reference (another CPU,
thread count or library), used by the golden tests.

A float32 result is a number plus a rounding error whose size depends on the order of the
arithmetic, so a comparison needs a tolerance that scales with what the error scales with: the
number of terms and their magnitudes. A fixed tolerance is wrong both ways: too tight for the sum
of vit_b_16's ``encoder_layer_4.mlp.3.weight`` (2.4M values that nearly cancel: sum -4.13, sum of
magnitudes 2.8e4) and far too loose for a sum of 64 values near 1.

Notation: ``u = 2**-24`` is float32's unit roundoff (every operation is exact up to a factor
``1 + d``, ``|d| <= u``), ``eps = 2u`` its machine epsilon, ``S = sum |x_i|``.

``sum_tol(n, S)``: a float32 sum of n terms, or of n squares (a norm), in an unknown order.
The worst case of plain recursive summation is ``(n - 1) u S`` (Higham, Accuracy and Stability
of Numerical Algorithms, 2nd ed., eq. 4.4). Reductions that split the terms over k accumulators
(SIMD lanes, unrolled BLAS loops, threads) and then add the k partial sums have the worst case
``(n/k + k) u S``; torch's CPU reductions of a whole contiguous tensor have k >= 8 (their vectorised
loops use at least one 8-lane register: torch.norm is exactly that, torch.sum a cascade with far
smaller error), as do numpy (pairwise) and BLAS. The bound ``(n/8 + 8) u S`` is that worst case for k = 8.

The often quoted ``sqrt(n) eps S`` (random, independent rounding errors) is not safe: the GHN
tiles a small predicted block over large tensors, so the same values are added again and again
and rounding errors line up instead of cancelling. Measured on the predicted tensors (see
test_tolerance.py): torch's own float32 norm of the tiled 2.4M-value tensor is off by 1.9 times
``sqrt(n) eps S`` (1.4e-4 relative: more than the rtol 1e-4 the tests used), and a sequential sum
in sorted order by 6-24 times; all of them stay below 1/4 of ``(n/8 + 8) u S``.

``norm_tol(n, norm)``: an L2 norm computed in float32: the sum of squares within ``sum_tol`` (its
terms are positive, so S is the sum itself), the square root halves a relative error, and the
final rounding adds u.

``element_tol(scale, reduction, value)``: one predicted value computed by two float32 orders.
The value is the output of dot products of length ``reduction`` (the decoder's last layer, 8 *
hid, after the GNN's layers of width hid). For random-sign terms the sum of |terms| of a dot
product is ~ sqrt(k) times its result and its rounding error ~ sqrt(k) u sum |terms| = k u
|result|; the results are of the size of the largest output of the same decoder rows, ``scale``
(weight normalisation and tiling only scale or copy them). ``k eps scale`` is that with a factor
2 for the layers before the decoder. The few elementwise operations after the decoder (a
multiply, or 2 sigmoid(x/2) / tanh(x/5)) round relative to the value itself: ``4 eps |value|``.
Measured (float32 vs float64 re-computation and vs the official goldens, every golden case):
at most 1/6 of the bound for hid = 32.
"""

from __future__ import annotations

U32 = 2.0**-24  # float32 unit roundoff
EPS32 = 2.0**-23  # float32 machine epsilon
U64 = 2.0**-53  # float64 unit roundoff
BLOCKS = 8  # fewest accumulators of a library reduction (see the module docstring)


def sum_tol(n: int, abs_sum: float, u: float = U32) -> float:
    """Bound on |computed - exact| for a sum of ``n`` terms with sum of magnitudes ``abs_sum``,
    computed with unit roundoff ``u`` (float32 by default) in any order a library uses."""
    return (n / BLOCKS + BLOCKS) * u * abs_sum


def norm_tol(n: int, norm: float, u: float = U32) -> float:
    """Bound on |computed - exact| for the L2 norm ``norm`` of ``n`` values computed with unit roundoff ``u``."""
    return ((n / BLOCKS + BLOCKS) * u / 2 + u) * norm


def element_tol(scale: float, reduction: int, value: float = 0.0) -> float:
    """Bound on the difference of one float32 value computed in two orders: the output of dot
    products of length ``reduction`` whose results are of size ``scale``, then elementwise steps."""
    return reduction * EPS32 * scale + 4 * EPS32 * abs(value)


def within(got: float, expected: float, tol: float) -> bool:
    """``|got - expected| <= tol``; NaN is never within."""
    return abs(got - expected) <= tol
