"""Tests of kacjax.kac: the exact sampler, the law of K(t), the velocity field.

References are independent double-precision numpy/scipy code:

- ``ref_cdf`` and ``ref_mixture``: the Poisson-Beta mixture (n ~ Poisson(a t)
  switches, position ``+-c t (2B - 1)``, ``B ~ Beta(floor(n/2) + 1, ceil(n/2))``),
  summed with scipy's ``betainc`` / ``beta.pdf``; it never uses Bessel functions.
- ``ref_bessel``: the closed forms with scipy's ``i0e``/``i1e`` in float64, with the
  cone decision made in exact arithmetic (float32 inputs multiply exactly in float64).

Statistical tests use fixed seeds and 5-sigma (or p > 1e-4) thresholds, so they
are deterministic and fail on any bias larger than a fraction of the noise level.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from helpers import enable_x64
from kacjax import kac
from kacjax.core import draws
from kacjax.core import kac as core_kac

pytestmark = pytest.mark.compat  # the core math: also run on the oldest supported versions

# Reference values (double precision) from distillkac.md, section 1:
# (a, c, t, x, continuous density, velocity, CDF including the atom at -ct).
TABLE = [
    (9, 3, 0.5, 0.0, 0.54773565, 0.0, 0.5),
    (9, 3, 0.5, 0.375, 0.48940221, 0.35623790, 0.69797736),
    (9, 3, 0.5, 0.75, 0.34340085, 0.74714050, 0.85591916),
    (9, 3, 0.5, 1.35, 0.09564216, 1.65594329, 0.98335046),
    (9, 3, 1.0, 1.5, 0.13569361, 0.77810287, 0.93678189),
    (25, 2, 1.0, 0.5, 0.46324865, 0.25139618, 0.89499497),
    (1, 1, 1.0, 0.5, 0.32094488, 0.15713871, 0.66575416),
]


# Compiled once per shape and dtype (a and c are traced), so the many calls below
# with different (a, c, t) reuse one executable.
density = jax.jit(kac.density)
velocity = jax.jit(kac.velocity)
cdf = jax.jit(kac.cdf)
simulate = jax.jit(kac.simulate, static_argnames=("shape", "max_flips"))


# ---------------------------------------------------------------------------
# Independent double-precision references.


def _poisson_terms(lam):
    """Switch counts n >= 1 carrying all but ~1e-30 of the Poisson(lam) mass, and pmf."""
    spread = 12.0 * math.sqrt(lam) + 40.0
    n = np.arange(max(1, int(lam - spread)), int(lam + spread) + 1)
    return n, stats.poisson.pmf(n, lam)


def ref_cdf(x, t, a, c):
    """P(K(t) <= x) from the Poisson-Beta mixture (float64, x a 1-D array)."""
    lam, ct = a * t, c * t
    x = np.asarray(x, np.float64)
    s = np.clip(x / ct, -1.0, 1.0)[:, None]
    n, w = _poisson_terms(lam)
    alpha, beta = n // 2 + 1.0, n - n // 2 + 0.0
    up = special.betainc(alpha, beta, (1 + s) / 2)  # initial direction +
    down = 1.0 - special.betainc(alpha, beta, (1 - s) / 2)  # initial direction -
    atom = 0.5 * math.exp(-lam)
    return 0.5 * (up + down) @ w + atom * (x >= -ct) + atom * (x >= ct)


def ref_mixture(x, t, a, c):
    """(continuous density, velocity) at interior x from the Poisson-Beta mixture.

    The current direction is ``sigma (-1)^n``, so the flux ``p v`` is the mixture
    of the Beta densities weighted by ``c sigma (-1)^n``.
    """
    ct = c * t
    s = (np.asarray(x, np.float64) / ct)[:, None]
    n, w = _poisson_terms(a * t)
    alpha, beta = n // 2 + 1.0, n - n // 2 + 0.0
    f_up = stats.beta.pdf((1 + s) / 2, alpha, beta) / (2 * ct)
    f_down = stats.beta.pdf((1 - s) / 2, alpha, beta) / (2 * ct)
    parity = np.where(n % 2 == 0, 1.0, -1.0)
    p = 0.5 * (f_up + f_down) @ w
    flux = 0.5 * c * ((f_up - f_down) * parity) @ w
    return p, flux / p


def ref_bessel(x, t, a, c):
    """(continuous density, velocity) at interior float64 x (scipy Bessel functions)."""
    x = np.asarray(x, np.float64)
    r = np.sqrt((c * t - x) * (c * t + x))
    z = a * r / c
    p = a / (2 * c) * np.exp(z - a * t) * (special.i0e(z) + a * t * special.i1e(z) / z)
    v = x / (t + (r / c) * special.i0e(z) / special.i1e(z))
    return p, v


def cone_points(c, t, dtype):
    """Positions in ``dtype`` on a grid over the cone plus points within ulps of +-c t."""
    ct = float(np.asarray(c, dtype) * np.asarray(t, dtype))
    edge = np.asarray(ct, dtype)
    near = [edge, np.nextafter(edge, dtype(0)), np.nextafter(np.nextafter(edge, dtype(0)), dtype(0))]
    near += [np.nextafter(edge, dtype(np.inf)), np.asarray(ct * (1 - 1e-5), dtype)]
    near = np.array(near, dtype)
    grid = np.linspace(-ct, ct, 41)[1:-1].astype(dtype)
    return np.concatenate([grid, near, -near, [dtype(0)]]).astype(dtype)


def interior(x, c, t):
    """Mask of points strictly inside the cone, decided exactly (float32 inputs)."""
    ct = np.float64(np.float32(c)) * np.float64(np.float32(t))
    return np.abs(np.asarray(x, np.float64)) < ct


# ---------------------------------------------------------------------------
# Reference table and independent references.


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_reference_table(x64):
    """Density, velocity and CDF (and their symmetries) at the published points.

    Table entries are rounded to 8 decimals (error <= 5e-9).
    """
    rtol, atol = (1e-6, 1e-8) if not x64 else (1e-8, 6e-9)
    with enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        for a, c, t, x, p_ref, v_ref, F_ref in TABLE:
            x_ = jnp.asarray([x, -x], dtype)
            t_ = jnp.asarray(t, dtype)
            got = [density(x_, t_, a=a, c=c), velocity(x_, t_, a=a, c=c), cdf(x_, t_, a=a, c=c)]
            assert all(g.dtype == dtype for g in got)
            # p even, v odd, F(-x) = 1 - F(x) off the atoms.
            want = [[p_ref, p_ref], [v_ref, -v_ref], [F_ref, 1 - F_ref]]
            np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol,
                                       err_msg=str((a, c, t, x)))


@pytest.mark.parametrize("a, c, t", [(9, 3, 0.5), (1, 1, 1), (25, 2, 0.7), (0.3, 2, 2.0)])
def test_bessel_forms_match_the_poisson_beta_mixture(a, c, t):
    """The closed forms themselves, checked against the mixture they come from."""
    x = np.linspace(-0.95, 0.95, 21) * c * t
    p_mix, v_mix = ref_mixture(x, t, a, c)
    p_bes, v_bes = ref_bessel(x, t, a, c)
    np.testing.assert_allclose(p_bes, p_mix, rtol=1e-10)
    np.testing.assert_allclose(v_bes, v_mix, rtol=1e-9, atol=1e-12)


# (a, c) pairs and times covering a in [0.1, 1000], t in [1e-4, 10] (a t up to 1e4).
A_C = [(0.1, 1.0), (1.0, 0.5), (9.0, 3.0), (100.0, 2.0), (1000.0, 1.0)]
TIMES = [1e-4, 1e-2, 0.5, 10.0]


@pytest.mark.parametrize("a, c", A_C)
def test_float32_against_double_references(a, c):
    """CDF within 1e-5 and velocity within 1e-4 c of the double references, at many
    x including points within ulps of +-ct (cone decided exactly); density within
    1e-5 relative, widened by the conditioning a t (a relative rounding of 6e-8 in x
    moves log p ~ -a t), and absolute 1e-36 where it nears float32 underflow."""
    c32 = float(np.float32(c))
    for t in TIMES:
        t32 = np.float32(t)
        x = cone_points(c, t32, np.float32)
        x_, t_ = jnp.asarray(x), jnp.asarray(t32)
        F = np.asarray(cdf(x_, t_, a=a, c=c), np.float64)
        v = np.asarray(velocity(x_, t_, a=a, c=c), np.float64)
        p = np.asarray(density(x_, t_, a=a, c=c), np.float64)
        msg = f"a={a} c={c} t={t}"
        F_ref = ref_cdf(x.astype(np.float64), float(t32), a, c32)
        np.testing.assert_allclose(F, F_ref, rtol=0, atol=1e-5, err_msg=msg)
        inside = interior(x, c, t32)
        p_ref, v_ref = ref_bessel(x[inside].astype(np.float64), float(t32), a, c32)
        np.testing.assert_allclose(v[inside], v_ref, rtol=0, atol=1e-4 * c, err_msg=msg)
        np.testing.assert_allclose(p[inside], p_ref, rtol=1e-5 * max(1.0, a * t), atol=1e-36, err_msg=msg)
        # On and outside the cone: atoms move at +-c, no continuous density.
        np.testing.assert_array_equal(v[~inside], c32 * np.sign(x[~inside]))
        np.testing.assert_array_equal(p[~inside], 0.0)
        assert np.all(np.abs(v) <= c32)


@pytest.mark.parametrize("a, c", A_C)
def test_float64_against_double_references(a, c):
    with enable_x64(True):
        for t in TIMES:
            x = np.concatenate([np.linspace(-0.999, 0.999, 25), [0.3, -0.7]]) * c * t
            x_, t_ = jnp.asarray(x), jnp.asarray(t)
            v = np.asarray(velocity(x_, t_, a=a, c=c))
            assert v.dtype == np.float64
            p_ref, v_ref = ref_bessel(x, t, a, c)
            np.testing.assert_allclose(v, v_ref, rtol=1e-10, atol=1e-13 * c)
            np.testing.assert_allclose(density(x_, t_, a=a, c=c), p_ref, rtol=1e-9)
            np.testing.assert_allclose(cdf(x_, t_, a=a, c=c), ref_cdf(x, t, a, c), rtol=0, atol=1e-10)


def test_cdf_is_monotone_and_its_derivative_is_the_density():
    with enable_x64(True):
        a, c, t, h = 9.0, 3.0, 0.6, 1e-5
        # 401 points across the cone (ends 1e-12 inside), then 2 just outside.
        x = jnp.append(jnp.linspace(-1, 1, 401) * (1 - 1e-12), jnp.array([-1, 1]) * (1 + 1e-12)) * c * t
        F = np.asarray(cdf(x, t, a=a, c=c))
        assert np.all(np.diff(F[:401]) >= 0)
        half_atom = math.exp(-a * t) / 2  # the jumps at -ct and ct
        np.testing.assert_allclose(F[[0, 400]], [half_atom, 1 - half_atom], atol=1e-10)
        np.testing.assert_array_equal(F[401:], [0.0, 1.0])
        dF = (cdf(x + h, t, a=a, c=c) - cdf(x - h, t, a=a, c=c)) / (2 * h)
        np.testing.assert_allclose(dF[10:391], density(x, t, a=a, c=c)[10:391], rtol=1e-6)


def test_moments_and_atom_mass_formulas():
    """variance and atom_mass against exact double formulas, small a t included."""
    for a, c in [(9.0, 3.0), (0.1, 2.0), (1000.0, 1.0)]:
        for t in [0.0, 1e-7, 1e-4, 3e-3, 0.02, 0.027, 0.5, 10.0]:
            lam = a * t
            if lam < 1:  # lam - (1 - e^{-2 lam}) / 2 = (1/2) sum_{k>=2} (-2 lam)^k / k!
                phi = 0.5 * math.fsum((-2 * lam) ** k / math.factorial(k) for k in range(2, 40))
            else:
                phi = lam - (1 - math.exp(-2 * lam)) / 2
            want = (c / a) ** 2 * phi
            # float32 flushes values below its smallest normal number (1.2e-38) to 0.
            for x64, rtol, atol in [(False, 1e-6, 1.2e-38), (True, 1e-14, 0.0)]:
                with enable_x64(x64):
                    np.testing.assert_allclose(float(kac.variance(t, a=a, c=c)), want, rtol=rtol, atol=atol)
                    mass = float(kac.atom_mass(t, a=a))
                    np.testing.assert_allclose(mass, math.exp(-lam), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# No NaN / inf anywhere.


@jax.jit
def _fields_and_gradients(x, t, a, c):
    """velocity, density, cdf and the x- and t-derivatives of velocity and density."""
    grads = [
        jax.vmap(jax.grad(lambda x, t: fn(x, t, a=a, c=c), argnums=(0, 1)))(x, t)
        for fn in (kac.velocity, kac.density)
    ]
    fields = [fn(x, t, a=a, c=c) for fn in (kac.velocity, kac.density, kac.cdf)]
    return fields, grads


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_finite_everywhere(x64):
    """t = 0, x on/near/outside the cone, a t up to 1e4: finite values and gradients."""
    with enable_x64(x64):
        dtype = np.float64 if x64 else np.float32
        for a in [0.1, 9.0, 1000.0]:
            for c in [0.5, 3.0]:
                ts = [0.0, 1e-6, 1e-4, 0.5, 10.0]
                x = np.concatenate([np.append(cone_points(c, dtype(t), dtype), 2 * c * t + 1) for t in ts])
                t = np.repeat(np.asarray(ts, dtype), len(x) // len(ts))
                (v, p, F), grads = _fields_and_gradients(jnp.asarray(x, dtype), jnp.asarray(t), a, c)
                for name, arr in [("v", v), ("p", p), ("F", F), ("grads", grads)]:
                    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(arr)), (name, a, c)
                v, p, F = np.asarray(v), np.asarray(p), np.asarray(F)
                assert np.all(np.abs(v) <= np.float32(c))
                assert np.all(p >= 0) and np.all((F >= 0) & (F <= 1))
        # At t = 0 the law is a point mass at 0.
        np.testing.assert_array_equal(cdf(jnp.asarray([-1.0, 0.0, 1.0], dtype), 0.0, a=1.0, c=1.0), [0, 1, 1])


# ---------------------------------------------------------------------------
# The exact sampler.

# (a, c, t): a t from 0.05 (mostly atoms) to 900; 45 is just above the Poisson
# inversion limit (jax.random.poisson path), 25 just below it.
SAMPLE_SETTINGS = [
    (0.05, 1.0, 1.0),
    (1.0, 1.0, 1.0),
    (9.0, 3.0, 0.5),
    (25.0, 2.0, 1.0),
    (45.0, 1.0, 1.0),
    (900.0, 10.0, 1.0),
]
# Every sampler test draws this shape with a (ROWS, 1) array of times, so they
# share one compiled sampler.
ROWS, COLS = 50, 2048
N_DRAWS = ROWS * COLS


def draw(key, t, a, c):
    """``N_DRAWS`` flattened draws at time(s) t (scalar or (ROWS, 1)); float64 numpy."""
    t = jnp.broadcast_to(jnp.asarray(t, jnp.result_type(float)), (ROWS, 1))
    x, on_atom = kac.sample(key, t, (ROWS, COLS), a=a, c=c)
    return np.asarray(x, np.float64).ravel(), np.asarray(on_atom).ravel()


def _ks_pvalue_continuous_part(x, on_atom, t, a, c):
    """KS p-value of the draws off the atoms against the conditional CDF
    ``(F - m/2) / (1 - m)``, ``m = e^{-at}`` (F evaluated at all draws, one shape)."""
    m = math.exp(-a * t)
    F = np.asarray(cdf(jnp.asarray(x), t, a=a, c=c), np.float64)
    F = np.sort((F[~on_atom] - m / 2) / (1 - m))
    n = len(F)
    d = max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n))
    return stats.kstwo.sf(d, n)


@pytest.mark.parametrize("a, c, t", SAMPLE_SETTINGS)
def test_sample_law(a, c, t):
    x, on_atom = draw(jax.random.PRNGKey(17), t, a, c)
    ct = float(np.float32(c) * np.float32(t))
    m = math.exp(-a * t)

    # Atoms: flagged draws sit exactly on +-ct, the others inside (up to one
    # rounding of c t y); their count is binomial(N, e^{-at}), +- equally likely.
    np.testing.assert_array_equal(np.abs(x[on_atom]), ct)
    assert np.all(np.abs(x[~on_atom]) <= ct)
    atoms = int(on_atom.sum())
    assert abs(atoms - N_DRAWS * m) <= 5 * math.sqrt(N_DRAWS * m * (1 - m)) + 1
    assert abs(int((x[on_atom] > 0).sum()) - atoms / 2) <= 5 * math.sqrt(atoms / 4) + 1

    # Continuous part: KS against the conditional CDF (F - m/2) / (1 - m).
    assert _ks_pvalue_continuous_part(x, on_atom, t, a, c) > 1e-4

    # Mean 0 and variance: 5 sigma, with E K^4 <= (ct)^2 Var.
    var = float(kac.variance(t, a=a, c=c))
    assert abs(x.mean()) <= 5 * math.sqrt(var / N_DRAWS)
    assert abs(x.var() - var) <= 5 * math.sqrt(ct**2 * var / N_DRAWS)


def test_sample_per_row_times_pit():
    """Per-row t ~ U[0, 1] (the training batch layout): the randomized PIT is uniform."""
    a, c = 9.0, 3.0
    key_t, key_x, key_u = jax.random.split(jax.random.PRNGKey(3), 3)
    t = jax.random.uniform(key_t, (ROWS, 1))
    x, on_atom = draw(key_x, t, a, c)
    tt = np.broadcast_to(np.asarray(t), (ROWS, COLS)).ravel()
    half_atom = 0.5 * np.exp(-a * tt.astype(np.float64))
    F = np.asarray(cdf(jnp.asarray(x, jnp.float32), jnp.asarray(tt), a=a, c=c), np.float64)
    jitter = np.asarray(jax.random.uniform(key_u, x.shape), np.float64)
    # At an atom F jumps by half_atom: spread the PIT uniformly over the jump.
    pit = np.where(on_atom, F - jitter * half_atom, F)
    assert stats.kstest(pit, "uniform").pvalue > 1e-4
    ct = np.float32(c) * tt
    assert np.all(np.abs(x) <= ct)
    np.testing.assert_array_equal(np.abs(x)[on_atom], ct[on_atom])


def test_sample_matches_path_simulation():
    """Two-sample KS between the O(1) sampler and explicit switching times."""
    a, c, t = 9.0, 3.0, 0.5
    x, _ = draw(jax.random.PRNGKey(5), t, a, c)
    y, _, complete = simulate(jax.random.PRNGKey(6), t, (N_DRAWS,), a=a, c=c, max_flips=40)
    assert bool(jnp.all(complete))
    assert stats.ks_2samp(x, np.asarray(y)).pvalue > 1e-4


def test_sample_edge_cases_and_float64():
    key = jax.random.PRNGKey(0)
    x, on_atom = draw(key, 0.0, 9.0, 3.0)
    assert np.all(x == 0) and np.all(on_atom)
    with pytest.raises(ValueError, match="does not broadcast"):
        kac.sample(key, jnp.ones((2, 1)), (2,), a=1.0, c=1.0)
    with enable_x64(True):
        a, c, t = 9.0, 3.0, 0.5
        x, on_atom = kac.sample(key, t, (N_DRAWS,), a=a, c=c)
        assert x.dtype == jnp.float64
        assert _ks_pvalue_continuous_part(np.asarray(x), np.asarray(on_atom), t, a, c) > 1e-4


def test_sampler_components_poisson_counts_and_beta_fractions():
    """The two exact stages of kac.sample, each against scipy (internal functions).

    Switch counts n ~ Poisson(a t): chi-square over bins with >= 20 expected draws,
    for means below, at and above the 40-per-chunk inversion limit. Fractions
    2B - 1, B ~ Beta(ceil(n/2), floor(n/2) + 1): KS per n, including n = 1, 2
    (closed forms) and n >= 3 (Cheng's rejection algorithm with its redraw queues).
    """
    per, lams = 16_384, [0.05, 3.0, 40.0, 41.0, 900.0]
    u, _ = draws.uniform_and_bit(jax.random.PRNGKey(7), (len(lams), per), jnp.float32)
    lam = jnp.asarray(lams, jnp.float32)[:, None]
    counts = np.asarray(jax.jit(draws.poisson)(jax.random.PRNGKey(8), u, lam))
    for row, mean in zip(counts, lams):
        edges = np.arange(row.min(), row.max() + 2) - 0.5
        expected = np.diff(stats.poisson.cdf(edges, mean)) * per
        observed = np.histogram(row, edges)[0]
        keep = expected >= 20
        chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
        assert stats.chi2.sf(chi2, max(keep.sum() - 1, 1)) > 1e-4, mean

    ns = [1, 2, 3, 4, 5, 8, 13, 40, 1001]
    n = jnp.repeat(jnp.asarray(ns, jnp.int32), per).reshape(-1, 1024)  # blocks of 1024
    y = jax.jit(core_kac._beta_frac, static_argnums=2)(jax.random.PRNGKey(9), n, jnp.float32)
    y = np.asarray(y, np.float64)
    for k, row in zip(ns, y.reshape(len(ns), per)):
        law = stats.beta((k + 1) // 2, k // 2 + 1, loc=-1.0, scale=2.0)
        assert stats.kstest(row, law.cdf).pvalue > 1e-4, k


def test_sample_on_eight_devices():
    """A batch-sharded sample runs (its redraw loops index within blocks, so the
    devices never wait on each other's collectives) and stays sharded and in the cone."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    assert jax.device_count() == 8, "conftest provides 8 fake CPU devices"
    mesh = Mesh(np.array(jax.devices()), ("data",))
    t = jnp.linspace(0.05, 1.0, 16).reshape(16, 1, 1, 1)
    t = jax.device_put(t, NamedSharding(mesh, PartitionSpec("data")))
    x, on_atom = jax.jit(lambda k, t: kac.sample(k, t, (16, 8, 8, 3), a=9.0, c=3.0))(jax.random.PRNGKey(2), t)
    assert len(x.sharding.device_set) == 8
    x, on_atom, t = np.asarray(x), np.asarray(on_atom), np.asarray(t)
    ct = np.broadcast_to(np.float32(3.0) * t, x.shape)
    assert np.all(np.abs(x) <= ct)
    np.testing.assert_array_equal(np.abs(x[on_atom]), ct[on_atom])


# ---------------------------------------------------------------------------
# Velocity against Monte Carlo paths.


@pytest.mark.parametrize("a, c, t", [(9.0, 3.0, 0.5), (1.0, 1.0, 1.0), (25.0, 2.0, 0.4)])
def test_velocity_is_conditional_mean_of_path_velocity(a, c, t):
    """E[V(t) - v(t, K(t)) | K(t) in bin] = 0 in each of 20 quantile bins (5 sigma).

    ``v(K)`` is the exact conditional mean, so the bin averages of ``V - v(K)`` have
    no binning bias; a wrong field (e.g. the diffusion's x / 2t) fails by >> 5 sigma.
    """
    n = 200_000
    x, V, complete = simulate(jax.random.PRNGKey(11), t, (n,), a=a, c=c, max_flips=40)
    assert bool(jnp.all(complete))
    v = np.asarray(velocity(x, t, a=a, c=c), np.float64)
    x, V = np.asarray(x, np.float64), np.asarray(V, np.float64)
    assert np.all(np.abs(v) <= c)
    atom = np.abs(x) >= float(np.float32(c) * np.float32(t))
    np.testing.assert_array_equal(v[atom], V[atom])  # no switch: V = +-c = v
    edges = np.quantile(x[~atom], np.linspace(0, 1, 21))
    which = np.clip(np.searchsorted(edges, x[~atom], side="right") - 1, 0, 19)
    diff = V[~atom] - v[~atom]
    for b in range(20):
        d = diff[which == b]
        assert abs(d.mean()) <= 5 * d.std() / math.sqrt(len(d)), f"bin {b}: {d.mean()}"


# ---------------------------------------------------------------------------
# PDEs by finite differences (float64), at interior points x = s c t.

PDE_CASES = [(9.0, 3.0), (1.0, 1.0), (25.0, 2.0)]
PDE_T, PDE_S = np.meshgrid([0.3, 0.7, 1.5], [0.0, 0.3, -0.6, 0.85])


def _on_stencil(fn, t, x, ht, hx):
    """fn at (t, x) and its four neighbours (t +- ht, x +- hx): five arrays."""
    ts = jnp.stack([t, t + ht, t - ht, t, t])
    xs = jnp.stack([x, x, x, x + hx, x - hx])
    return fn(xs, ts)


@pytest.mark.parametrize("a, c", PDE_CASES)
def test_telegrapher_equation(a, c):
    """u_tt + 2a u_t = c^2 u_xx for the density, to 1e-5 of the terms' size."""
    with enable_x64(True):
        t, x = jnp.asarray(PDE_T.ravel()), jnp.asarray(PDE_S.ravel() * c * PDE_T.ravel())
        ht, hx = 2e-4 * t, 2e-4 * c * t
        p0, pt1, pt0, px1, px0 = _on_stencil(lambda x, t: density(x, t, a=a, c=c), t, x, ht, hx)
        u_t = (pt1 - pt0) / (2 * ht)
        u_tt = (pt1 - 2 * p0 + pt0) / ht**2
        u_xx = (px1 - 2 * p0 + px0) / hx**2
        residual = u_tt + 2 * a * u_t - c**2 * u_xx
        scale = jnp.abs(u_tt) + 2 * a * jnp.abs(u_t) + c**2 * jnp.abs(u_xx)
        assert bool(jnp.all(jnp.abs(residual) <= 1e-5 * scale)), np.asarray(residual / scale)


@pytest.mark.parametrize("a, c", PDE_CASES)
def test_continuity_equation(a, c):
    """d_t p + d_x (p v) = 0 for the continuous part, to 1e-5 of the terms' size."""
    with enable_x64(True):
        t, x = jnp.asarray(PDE_T.ravel()), jnp.asarray(PDE_S.ravel() * c * PDE_T.ravel())
        ht, hx = 1e-4 * t, 1e-4 * c * t
        p = _on_stencil(lambda x, t: density(x, t, a=a, c=c), t, x, ht, hx)
        v = _on_stencil(lambda x, t: velocity(x, t, a=a, c=c), t, x, ht, hx)
        p_t = (p[1] - p[2]) / (2 * ht)
        flux_x = (p[3] * v[3] - p[4] * v[4]) / (2 * hx)
        scale = jnp.abs(p_t) + jnp.abs(flux_x)
        assert bool(jnp.all(jnp.abs(p_t + flux_x) <= 1e-5 * scale)), np.asarray((p_t + flux_x) / scale)


# ---------------------------------------------------------------------------
# Transformations and argument checks.


def test_jit_vmap_and_grad():
    a, c = 9.0, 3.0
    x = jnp.linspace(-1.4, 1.4, 33)
    t = jnp.full_like(x, 0.5)
    for fn in (kac.velocity, kac.density):
        batched = jax.jit(jax.vmap(lambda x, t: fn(x, t, a=a, c=c)))(x, t)
        np.testing.assert_allclose(batched, fn(x, t, a=a, c=c), rtol=1e-6, atol=1e-7)
    # grad of velocity in x: finite inside the cone (near the edge and where z is
    # tiny), and equal to a central difference in float64.
    dv = jax.jit(jax.vmap(jax.grad(lambda x, t: kac.velocity(x, t, a=a, c=c))))
    inside = jnp.array([0.0, 0.7, -1.2, 1.5 * (1 - 1e-6), 0.99e-4])
    assert bool(jnp.all(jnp.isfinite(dv(inside, jnp.array([0.5, 0.5, 0.5, 0.5, 1e-4 / 3])))))
    with enable_x64(True):
        xs, ts, h = jnp.array([0.0, 0.7, -1.2, 1.49]), jnp.full(4, 0.5), 1e-6
        fd = (velocity(xs + h, ts, a=a, c=c) - velocity(xs - h, ts, a=a, c=c)) / (2 * h)
        np.testing.assert_allclose(dv(xs, ts), fd, rtol=1e-6)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True], ids=repr)
def test_bad_plain_number_parameters_raise(bad):
    key = jax.random.PRNGKey(0)
    calls = [
        lambda a, c: kac.sample(key, 0.5, (4,), a=a, c=c),
        lambda a, c: kac.simulate(key, 0.5, (4,), a=a, c=c, max_flips=4),
        lambda a, c: kac.density(0.1, 0.5, a=a, c=c),
        lambda a, c: kac.velocity(0.1, 0.5, a=a, c=c),
        lambda a, c: kac.cdf(0.1, 0.5, a=a, c=c),
        lambda a, c: kac.variance(0.5, a=a, c=c),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="^a must be"):
            call(bad, 1.0)
        with pytest.raises(ValueError, match="^c must be"):
            call(1.0, bad)
    with pytest.raises(ValueError, match="^a must be"):
        kac.atom_mass(0.5, a=bad)
