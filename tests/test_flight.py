"""Tests of kacjax.flight: random flights in the plane and in R^4 against ground truth.

References, all independent of the closed forms under test:

- ``simulate``: paths from exponential waiting times and Gaussian-normalised directions;
- ``ref_radial_cdf``: the Poisson mixture of the radius laws given ``n`` switches
  (``Beta(1, n/2)`` for d = 2, ``Beta(2, n)`` for d = 4), summed with scipy in float64;
- the continuity equation ``dp/dt + div(p v) = 0`` by central differences (float64);
- the law of one coordinate of a uniform direction (arcsine for d = 2, semicircle for d = 4).

Statistical tests use fixed seeds and 5-sigma (or p > 1e-4) thresholds.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from helpers import ball_points, enable_x64
from kacjax import flight

# (a, c, t) spanning a t from 0.1 to 40.
PARAMS = [(0.1, 1.0, 1.0), (2.0, 1.0, 1.0), (9.0, 3.0, 0.5), (4.5, 3.0, 1.0), (40.0, 2.0, 1.0)]
DIMS = (2, 4)
N_DRAWS = 100_000

radial_cdf = jax.jit(flight.radial_cdf, static_argnames="dim")
density = jax.jit(flight.density, static_argnames="dim")
velocity = jax.jit(flight.velocity, static_argnames="dim")
simulate = jax.jit(flight.simulate, static_argnames=("shape", "dim", "max_switches"))


def _max_switches(lam):
    return int(lam + 8 * math.sqrt(lam) + 12)


def _beta_params(n, dim):
    return (1.0, n / 2.0) if dim == 2 else (2.0, n * 1.0)


def ref_radial_cdf(r, t, a, c, dim):
    """P(|X(t)| <= r) from the Poisson mixture of Beta radius laws (float64, r a 1-D array)."""
    lam, ct = a * t, c * t
    n = np.arange(1, int(lam + 12 * math.sqrt(lam) + 40))
    pmf = stats.poisson.pmf(n, lam)
    rho = np.clip(np.asarray(r, np.float64) / ct, 0.0, 1.0) ** 2
    p, q = _beta_params(n[:, None], dim)
    cont = np.sum(pmf[:, None] * special.betainc(p, q, rho[None, :]), axis=0)
    return cont + math.exp(-lam) * (np.asarray(r) >= ct)


def _draw(key, t, a, c, dim, num=N_DRAWS):
    x, on_sphere = flight.sample(key, t, (num, dim), a=a, c=c, dim=dim)
    return np.asarray(x, np.float64), np.asarray(on_sphere)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("a, c, t", PARAMS)
def test_radius_law_sphere_mass_and_radial_cdf(a, c, t, dim):
    """Sampler: the sphere's share is binomial with p = e^{-at}, flagged rows sit on |x| = ct and the
    others inside; the radius of the others against ``radial_cdf`` (KS), and ``radial_cdf`` against
    the Beta mixture (1e-5)."""
    x, on_sphere = _draw(jax.random.PRNGKey(11), t, a, c, dim)
    ct, m = c * t, math.exp(-a * t)
    r = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(r[on_sphere], ct, rtol=1e-6)
    assert np.all(r[~on_sphere] < ct * (1 + 1e-6))
    assert abs(on_sphere.sum() - N_DRAWS * m) <= 5 * math.sqrt(N_DRAWS * m * (1 - m)) + 1
    F = np.asarray(radial_cdf(jnp.asarray(r[~on_sphere], jnp.float32), t, a=a, c=c, dim=dim), np.float64)
    assert stats.kstest(F / (1 - m), "uniform").pvalue > 1e-4
    grid = np.linspace(0.0, ct * 1.01, 41)
    with enable_x64(True):
        got = np.asarray(flight.radial_cdf(grid, t, a=a, c=c, dim=dim))
    np.testing.assert_allclose(got, ref_radial_cdf(grid, t, a, c, dim), atol=1e-5)


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("a, c, t", [PARAMS[1], PARAMS[2], PARAMS[4]])
def test_sampler_against_path_simulation(a, c, t, dim):
    """Radius of the paths that switched against the sampler's continuous part (two-sample KS),
    and the sphere's share of the paths (binomial)."""
    num = 50_000
    xs, _, switches = (np.asarray(v) for v in simulate(jax.random.PRNGKey(3), t, (num, dim), a=a, c=c, dim=dim,
                                                       max_switches=_max_switches(a * t)))
    assert np.all(switches < _max_switches(a * t))
    rs = np.linalg.norm(xs.astype(np.float64), axis=1)
    on_sphere_sim = switches == 0
    np.testing.assert_allclose(rs[on_sphere_sim], c * t, rtol=1e-6)
    m = math.exp(-a * t)
    assert abs(on_sphere_sim.sum() - num * m) <= 5 * math.sqrt(num * m * (1 - m)) + 1
    x, on_sphere = _draw(jax.random.PRNGKey(4), t, a, c, dim)
    r = np.linalg.norm(x, axis=1)
    assert stats.ks_2samp(rs[~on_sphere_sim], r[~on_sphere]).pvalue > 1e-4


@pytest.mark.parametrize("dim", DIMS)
def test_directions_are_uniform(dim):
    """Projections of x / |x| on an oblique unit vector follow the law of one coordinate of a uniform
    point on the sphere (arcsine for d = 2, semicircle for d = 4), inside the ball and on the sphere;
    the radius is independent of the direction (projection law per radius half)."""
    x, on_sphere = _draw(jax.random.PRNGKey(5), 1.0, 2.0, 1.0, dim)
    e = np.random.default_rng(0).standard_normal(dim)
    e /= np.linalg.norm(e)
    r = np.linalg.norm(x, axis=1)
    s = np.clip(x @ e / r, -1.0, 1.0)
    if dim == 2:
        law = lambda v: 1.0 - np.arccos(v) / np.pi  # noqa: E731
    else:
        law = lambda v: 0.5 + (v * np.sqrt(1.0 - v * v) + np.arcsin(v)) / np.pi  # noqa: E731
    inner = ~on_sphere
    for part in (on_sphere, inner & (r < np.median(r[inner])), inner & (r >= np.median(r[inner]))):
        assert stats.kstest(s[part], law).pvalue > 1e-4


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("a, c, t", [PARAMS[0], PARAMS[2], PARAMS[4]])
def test_density_integrates_to_radial_cdf(a, c, t, dim):
    """``S_d r^{d-1} p`` integrated from 0 to r (float64 quadrature) equals ``radial_cdf`` below the
    sphere and reaches ``1 - e^{-at}`` at it (the d = 2 singularity 1/w handled by r = ct sin(phi))."""
    with enable_x64(True):
        ct = c * t
        area = 2 * math.pi if dim == 2 else 2 * math.pi**2  # |S^{d-1}|
        nodes, weights = np.polynomial.legendre.leggauss(200)
        for frac in (0.3, 0.7, 0.95, 1.0):  # radial_cdf just below the sphere; the whole mass at frac = 1
            phi_max = math.asin(frac)
            phi = (nodes + 1) * phi_max / 2  # r = ct sin(phi), dr = ct cos(phi) dphi: integrable at the sphere
            r = ct * np.sin(phi)
            x = np.stack([r] + [np.zeros_like(r)] * (dim - 1), axis=-1)
            p = np.asarray(flight.density(x, t, a=a, c=c, dim=dim))
            integral = np.sum(weights * area * r ** (dim - 1) * p * ct * np.cos(phi)) * phi_max / 2
            if frac < 1:
                want = float(flight.radial_cdf(ct * frac, t, a=a, c=c, dim=dim))
                np.testing.assert_allclose(integral, want, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(integral, 1 - math.exp(-a * t), rtol=1e-8)
        assert float(flight.radial_cdf(ct, t, a=a, c=c, dim=dim)) == 1.0
        assert float(flight.radial_cdf(-0.1, t, a=a, c=c, dim=dim)) == 0.0


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("a, c", [(2.0, 1.0), (9.0, 3.0), (25.0, 2.0)])
def test_velocity_solves_the_continuity_equation(a, c, dim):
    """``dp/dt + r^{1-d} d/dr (r^{d-1} p v_r) = 0`` by central differences (float64), inside the ball."""
    with enable_x64(True):
        t, h = 0.7, 1e-5
        r = np.linspace(0.05, 0.95, 19) * c * t

        def along(r, t, fn):
            x = np.stack([r] + [np.zeros_like(r)] * (dim - 1), axis=-1)
            return np.asarray(fn(x, t))

        p = lambda r, t: along(r, t, lambda x, t: flight.density(x, t, a=a, c=c, dim=dim))  # noqa: E731
        flux = lambda r, t: r ** (dim - 1) * p(r, t) * along(  # noqa: E731
            r, t, lambda x, t: flight.velocity(x, t, a=a, c=c, dim=dim))[:, 0]
        dp_dt = (p(r, t + h) - p(r, t - h)) / (2 * h)
        div = (flux(r + h, t) - flux(r - h, t)) / (2 * h) / r ** (dim - 1)
        np.testing.assert_allclose(dp_dt + div, 0.0, atol=1e-6 * np.abs(dp_dt).max())


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("a, c, t", [PARAMS[1], PARAMS[3]])
def test_velocity_is_the_conditional_mean_of_simulated_paths(a, c, t, dim):
    """``E[V | |X| in a shell]`` of simulated paths (radial part; the tangential part is 0) against
    the formula averaged over the same paths, 5 sigma; the sphere's paths move outward at speed c."""
    num = 100_000
    xs, vs, switches = simulate(jax.random.PRNGKey(6), t, (num, dim), a=a, c=c, dim=dim,
                                max_switches=_max_switches(a * t))
    assert bool(jnp.all(switches < _max_switches(a * t)))
    xs64, vs64 = np.asarray(xs, np.float64), np.asarray(vs, np.float64)
    r = np.linalg.norm(xs64, axis=1)
    on_sphere = np.asarray(switches) == 0
    v = np.asarray(velocity(xs, t, a=a, c=c, dim=dim, on_sphere=jnp.asarray(on_sphere)), np.float64)
    np.testing.assert_allclose(v[on_sphere], vs64[on_sphere], atol=1e-5)
    radial_mc, radial_formula = np.sum(vs64 * xs64, axis=1) / r, np.sum(v * xs64, axis=1) / r
    tangential = vs64 - radial_mc[:, None] * xs64 / r[:, None]
    edges = np.quantile(r[~on_sphere], np.linspace(0.0, 1.0, 9))  # 8 shells of equal counts
    for lo, hi in zip(edges[:-1], edges[1:]):
        shell = ~on_sphere & (r >= lo) & (r < hi)
        k = shell.sum()
        sd = radial_mc[shell].std() / math.sqrt(k)
        assert abs(radial_mc[shell].mean() - radial_formula[shell].mean()) <= 5 * sd
        # the tangential part, along a fixed axis, averages to 0 and the formula has none
        assert abs(tangential[shell, 0].mean()) <= 5 * tangential[shell, 0].std() / math.sqrt(k)
    np.testing.assert_allclose(v - radial_formula[:, None] * xs64 / r[:, None], 0.0, atol=1e-5)


@pytest.mark.parametrize("dim", DIMS)
def test_velocity_bounded_and_finite_in_float32(dim):
    """``|v| <= c`` on random points of the ball, just inside and on the sphere, as t -> 0, at t = 0 and
    for a t = 400; no NaN or inf anywhere; float32 agrees with float64 to 1e-5 c; the limits at the
    sphere (c for d = 2, 3c/4 for d = 4) and at the centre (v ~ x / (t + 2/a) style: finite)."""
    a, c = 9.0, 3.0
    times, x, frac = ball_points(dim, c, a)  # x: (times, 64, dim)
    t = times[:, None]
    flag = np.broadcast_to(frac == 1.0, x.shape[:-1])  # rounding puts |x| on either side of ct: say which
    v32 = np.asarray(velocity(x, t, a=a, c=c, dim=dim, on_sphere=flag))
    p32 = np.asarray(density(x, t, a=a, c=c, dim=dim))
    assert np.all(np.isfinite(v32)) and not np.any(np.isnan(p32)) and np.all(p32 >= 0)
    assert np.all(np.isfinite(p32[3:]))  # t >= 1e-6 (below, d = 4's 1/t^3 leaves float32's range)
    speed = np.linalg.norm(v32, axis=-1)
    assert np.all(speed <= c * (1 + 1e-6))
    with enable_x64(True):
        v64 = np.asarray(flight.velocity(x.astype(np.float64), t.astype(np.float64), a=a, c=c, dim=dim,
                                         on_sphere=flag))
    near = (frac > 1 - 1e-5) & (frac < 1)
    np.testing.assert_allclose(v32[:, ~near], v64[:, ~near], atol=1e-5 * c)
    # within 1e-5 ct of the sphere, float32's rounding of |x| (an ulp) moves w = sqrt(c^2 t^2 - |x|^2)
    # by up to sqrt(2 ulp) c t, and d = 2's velocity c x / (ct + w) with it
    np.testing.assert_allclose(v32[:, near], v64[:, near], atol=1e-3 * c)
    assert np.all(v32[0] == 0)  # t = 0: everything at the origin, at rest
    just_inside = speed[5:, 59]  # |x| = ct (1 - 1e-7), t > 0 of moderate a t
    limit = c if dim == 2 else 0.75 * c
    np.testing.assert_allclose(speed[5:7, 59], limit, rtol=1e-3)  # |x| = ct (1 - 1e-7), a t <= 9
    assert np.all(just_inside <= c * (1 + 1e-6))
    np.testing.assert_allclose(speed[1:, 62:], c, rtol=1e-5)  # on the sphere: outward at speed c
    np.testing.assert_allclose(speed[:, 58], 0.0, atol=1e-6)  # the centre


def test_sampler_is_finite_at_extremes_and_refuses_bad_arguments():
    """t = 0 puts every draw at 0 on the sphere; a t = 400 and t = 1e-30 are finite; d = 3, 1 and bad
    shapes or parameters raise ValueError naming the problem."""
    for dim in DIMS:
        x, on_sphere = flight.sample(jax.random.PRNGKey(0), jnp.array([0.0, 1e-30, 400.0 / 9.0]), (3, dim),
                                     a=9.0, c=3.0, dim=dim)
        assert np.all(np.isfinite(np.asarray(x)))
        assert np.all(np.asarray(x[0]) == 0) and bool(on_sphere[0])
        assert not bool(on_sphere[2])
    with pytest.raises(ValueError, match="no closed form"):
        flight.sample(jax.random.PRNGKey(0), 1.0, (4, 3), a=1.0, c=1.0, dim=3)
    for bad in (1, 5, 2.0, True):
        with pytest.raises(ValueError, match="dim must be one of"):
            flight.velocity(jnp.zeros((4, 2)), 1.0, a=1.0, c=1.0, dim=bad)
    with pytest.raises(ValueError, match="shape must end with dim=2"):
        flight.sample(jax.random.PRNGKey(0), 1.0, (4, 3), a=1.0, c=1.0, dim=2)
    with pytest.raises(ValueError, match="does not broadcast"):
        flight.sample(jax.random.PRNGKey(0), jnp.ones(3), (4, 2), a=1.0, c=1.0, dim=2)
    with pytest.raises(ValueError, match="last axis of length dim=4"):
        flight.density(jnp.zeros((4, 2)), 1.0, a=1.0, c=1.0, dim=4)
    with pytest.raises(ValueError, match="a must be"):
        flight.radial_cdf(0.5, 1.0, a=-1.0, c=1.0, dim=2)
    np.testing.assert_allclose(flight.atom_mass(2.0, a=1.5), math.exp(-3.0), rtol=1e-6)
