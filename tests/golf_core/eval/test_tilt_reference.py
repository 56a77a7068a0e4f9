"""golf's tilt hint pass equals PR #2135's C token channel on a stream it never saw.

The reference C file is compiled from $GOLF_REFERENCE_DIR/parameter-golf/pr2135/ with
`gcc -O3 -shared -fPIC` into a temp dir and called through ctypes (tests/fixtures/tilt_reference).
golf is fed [targets[0]] + targets: the reference seeds its ring with the first target, golf
reads context from the real stream, so this stream makes the two conventions coincide and the
outputs must agree at every position (the first order - 1 have no hint in both).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from golf_core.eval.tilt import TiltError, auto_table_bits, hint_pass, tilt_grid, tilt_nll
from tests.fixtures import tilt_reference as ref
from tests.fixtures.reference import ENV

N = 1_100_000


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    src = ref.reference_c_file()
    if src is None:
        pytest.skip(f"{ENV} does not hold parameter-golf/pr2135/online_ngram_state.c")
    if ref.compiler() is None:
        pytest.skip("no C compiler (gcc) on PATH to build the reference online_ngram_state.c")
    return ref.build(src, tmp_path_factory.mktemp("pr2135"))


@pytest.fixture(scope="module")
def targets():
    t = ref.repeating_stream(N, vocab=1024, seed=7)
    assert t.size > 1_000_000
    return t


@pytest.mark.parametrize("order", [4, 8, 16])
def test_hints_equal_reference(lib, targets, order):
    bits = auto_table_bits(targets.size)
    top, prob = ref.token_channel(lib, targets, order, bits)
    h = hint_pass(np.r_[targets[0], targets], order, bits)
    hint, p_top = h.hint[1:], h.p_top[1:]
    has = hint >= 0
    assert has.sum() > targets.size // 3  # the repeats make contexts recur: the tables fire
    assert not has[: order - 2].any()  # no context yet (the reference: prefix shorter than order - 1)
    np.testing.assert_array_equal(np.where(has, hint, 0), top)
    np.testing.assert_array_equal(p_top, prob)  # float32 quotient, bit for bit
    np.testing.assert_array_equal(has, prob > 0)

    # nll' with golf's hints == the formula with the reference's hints, several thresholds
    rng = np.random.default_rng(order)
    nll = rng.exponential(2.0, size=targets.size)
    q = rng.random(targets.size)
    beta = 2.625
    for th in (0.3, 0.5, 0.8, 0.95):
        got = tilt_nll(nll, q, hint, p_top, targets, th, beta)
        gate = prob >= np.float32(th)
        want = nll + np.where(gate, -beta * (top == targets) + np.log1p(q * math.expm1(beta)), 0.0)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        # the grid path (prefix sums over p_top order) sums to the same total
        g = tilt_grid(nll, q, hint, p_top, targets, [th], [beta])
        assert abs(g.nll[0] - want.sum()) < 1e-6 * targets.size ** 0.5
        assert g.gated[0] == gate.sum() and g.hits[0] == (gate & (top == targets)).sum()


def test_small_table_fails_like_the_reference(lib, targets):
    """The reference's table has 2^bits slots and fails when they fill; golf raises too."""
    t = targets[:50_000]
    with pytest.raises(RuntimeError, match="rc=-"):
        ref.token_channel(lib, t, 8, 12)
    with pytest.raises(TiltError, match="tilt_table_bits=12"):
        hint_pass(np.r_[t[0], t], 8, 12)
