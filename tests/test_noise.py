"""Tests of the noise seam (kacjax.core.noise) and its new families against ground truth.

- line-Kac (:mod:`kacjax.core.line`): the radius law against the folded 1-D law (``kac.cdf``), the
  direction against the law of one coordinate of a uniform unit vector (``u_1^2 ~ Beta(1/2, (d-1)/2)``),
  the sampler against path simulation, the velocity against the Monte Carlo ``E[V | shell]`` of
  simulated paths, ``|v| <= c`` and float32 at ``s -> 0`` and on the sphere;
- the Gaussian paths (:mod:`kacjax.core.gaussian`): the normal law, the velocity as the derivative of
  the drawn path, and the continuity equation ``dp/ds + d(p v)/dn = 0`` by central differences;
- every family through ``KacFlow``: the noise's per-coordinate variance against its exact law, the
  target against the family's own velocity, the prior, and the draws on 1 and 8 devices.

Statistical tests use fixed seeds and 5-sigma (or p > 1e-4) thresholds.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from helpers import ball_points, enable_x64
from kacjax.core import gaussian, kac, line, noise
from kacjax.core.flow import KacFlow
from kacjax.runtime import parallel

N_DRAWS = 100_000
line_velocity = jax.jit(line.velocity)
simulate = jax.jit(line.simulate, static_argnames=("shape", "max_flips"))


def _max_flips(lam):
    return int(lam + 8 * math.sqrt(lam) + 12)


def _folded_cdf(r, t, a, c):
    """``P(|K(t)| <= r | a switch)`` for ``0 <= r < c t`` from the 1-D law, float64."""
    with enable_x64(True):
        r = jnp.asarray(r, jnp.float64)
        cont = kac.cdf(r, t, a=a, c=c) - kac.cdf(-r, t, a=a, c=c)
        return np.asarray(cont) / -math.expm1(-a * t)


@pytest.mark.parametrize("a, c, t, dim", [(2.0, 1.0, 1.0, 2), (9.0, 3.0, 0.5, 4), (9.0, 3.0, 0.5, 64)])
def test_line_radius_is_the_folded_kac_law_and_its_direction_uniform(a, c, t, dim):
    """``|N| = |K(t)|``: sphere mass ``exp(-a t)`` (5 sigma), the rest KS against the folded 1-D law;
    ``(n_1 / |n|)^2`` KS against ``Beta(1/2, (d-1)/2)``; the mean direction is 0."""
    num = N_DRAWS // 2
    n, on_sphere = line.sample(jax.random.PRNGKey(1), t, (num, dim), a=a, c=c)
    n, on_sphere = np.asarray(n, np.float64), np.asarray(on_sphere)
    r = np.linalg.norm(n, axis=1)
    mass = math.exp(-a * t)
    assert abs(on_sphere.mean() - mass) <= 5 * math.sqrt(mass * (1 - mass) / num)
    np.testing.assert_allclose(r[on_sphere], c * t, rtol=1e-5)
    assert np.all(r[~on_sphere] < c * t * (1 + 1e-6))
    assert stats.kstest(r[~on_sphere], lambda x: _folded_cdf(np.minimum(x, c * t * (1 - 1e-7)), t, a, c)).pvalue > 1e-4
    u1 = n[:, 0] / r
    assert stats.kstest(u1**2, stats.beta(0.5, (dim - 1) / 2).cdf).pvalue > 1e-4
    u = n / r[:, None]
    assert np.all(np.abs(u.mean(axis=0)) <= 5 * math.sqrt(1.0 / dim / num))


@pytest.mark.parametrize("dim", (2, 8))
def test_line_sampler_against_path_simulation(dim):
    """The exact sampler and explicit paths agree in law: radius and one coordinate (two-sample KS)."""
    a, c, t = 4.0, 2.0, 1.0
    x, _ = line.sample(jax.random.PRNGKey(2), t, (N_DRAWS, dim), a=a, c=c)
    y, _, complete = simulate(jax.random.PRNGKey(3), t, (N_DRAWS, dim), a=a, c=c, max_flips=_max_flips(a * t))
    assert bool(jnp.all(complete))
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    assert stats.ks_2samp(np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)).pvalue > 1e-4
    assert stats.ks_2samp(x[:, 0], y[:, 0]).pvalue > 1e-4


@pytest.mark.parametrize("dim", (2, 8))
@pytest.mark.parametrize("a, c, t", [(2.0, 1.0, 1.0), (9.0, 3.0, 0.5)])
def test_line_velocity_is_the_conditional_mean_of_simulated_paths(a, c, t, dim):
    """``E[V | |N| in a shell]`` of simulated paths (radial part) against the formula averaged over the
    same paths, 5 sigma; the formula has no tangential part; paths with no switch move at speed ``c``."""
    num = N_DRAWS
    n, v_path, _ = simulate(jax.random.PRNGKey(6), t, (num, dim), a=a, c=c, max_flips=_max_flips(a * t))
    n64, v64 = np.asarray(n, np.float64), np.asarray(v_path, np.float64)
    r = np.linalg.norm(n64, axis=1)
    # no switch before t <=> |K(t)| = c t exactly in exact arithmetic; the simulation's float32 sum
    # of one segment is c t to an ulp
    on_sphere = r >= c * t * (1 - 1e-6)
    v = np.asarray(line_velocity(n, t, a=a, c=c, on_sphere=jnp.asarray(on_sphere)), np.float64)
    np.testing.assert_allclose(v[on_sphere], v64[on_sphere], atol=1e-5)
    radial_mc, radial_formula = np.sum(v64 * n64, axis=1) / r, np.sum(v * n64, axis=1) / r
    edges = np.quantile(r[~on_sphere], np.linspace(0.0, 1.0, 9))  # 8 shells of equal counts
    for lo, hi in zip(edges[:-1], edges[1:]):
        shell = ~on_sphere & (r >= lo) & (r < hi)
        sd = radial_mc[shell].std() / math.sqrt(shell.sum())
        assert abs(radial_mc[shell].mean() - radial_formula[shell].mean()) <= 5 * sd
    np.testing.assert_allclose(v - radial_formula[:, None] * n64 / r[:, None], 0.0, atol=1e-5)


@pytest.mark.parametrize("dim", (2, 64))
def test_line_velocity_bounded_and_finite_in_float32(dim):
    """``|v| <= c`` inside, just inside and on the sphere, as t -> 0, at t = 0 and for a t = 400; no NaN;
    float32 agrees with float64 to 1e-5 c away from the sphere; on the sphere ``c n / |n|``; 0 at 0."""
    a, c = 9.0, 3.0
    times, n, frac = ball_points(dim, c, a, last=(1.0, -1.0))  # n: (times, 64, dim)
    flag = np.broadcast_to(np.abs(frac) == 1.0, n.shape[:-1])
    v32 = np.asarray(line_velocity(n, times[:, None], a=a, c=c, on_sphere=flag))
    assert np.all(np.isfinite(v32))
    speed = np.linalg.norm(v32, axis=-1)
    assert np.all(speed <= c * (1 + 1e-6))
    with enable_x64(True):
        v64 = np.asarray(line.velocity(n.astype(np.float64), times[:, None].astype(np.float64), a=a, c=c,
                                       on_sphere=flag))
    far = np.abs(frac) < 1 - 1e-5
    np.testing.assert_allclose(v32[:, far], v64[:, far], atol=1e-5 * c)
    assert np.all(v32[0] == 0) and np.all(v32[:, 58] == 0)  # t = 0 and the centre: at rest
    np.testing.assert_allclose(speed[1:, 62:], c, rtol=1e-5)  # on the sphere: outward at speed c
    outward = np.sum(v32[1:, 62:] * n[1:, 62:], axis=-1)
    assert np.all(outward > 0)


@pytest.mark.parametrize("path", gaussian.PATHS)
def test_gaussian_law_velocity_of_the_drawn_path_and_continuity_equation(path):
    """``n / (sigma m(s))`` is standard normal (KS); the velocity is the derivative of the drawn path
    (central differences at one key); ``dp/ds + d(p v)/dn = 0`` for the 1-D normal density (float64)."""
    sigma, horizon, s = 1.5, 2.0, 0.7
    n, flag = gaussian.sample(jax.random.PRNGKey(4), s, (N_DRAWS,), path=path, sigma=sigma, horizon=horizon)
    scale = math.sqrt(s) if path == "brownian" else s / math.sqrt(horizon)
    assert not np.any(np.asarray(flag))
    assert stats.kstest(np.asarray(n, np.float64) / (sigma * scale), "norm").pvalue > 1e-4
    np.testing.assert_allclose(float(gaussian.variance(s, path=path, sigma=sigma, horizon=horizon)),
                               (sigma * scale) ** 2, rtol=1e-6)
    with enable_x64(True):
        h = 1e-5
        draw = lambda t: gaussian.sample(jax.random.PRNGKey(5), t, (64,), path=path, sigma=sigma, horizon=horizon)[0]
        slope = (draw(s + h) - draw(s - h)) / (2 * h)
        np.testing.assert_allclose(gaussian.velocity(draw(s), s, path=path, horizon=horizon), slope, rtol=1e-7)

        def density(x, t):
            var = gaussian.variance(t, path=path, sigma=sigma, horizon=horizon)
            return jnp.exp(-x * x / (2 * var)) / jnp.sqrt(2 * jnp.pi * var)

        x = jnp.linspace(-4.0, 4.0, 41)
        flux = lambda x_, t: density(x_, t) * gaussian.velocity(x_, t, path=path, horizon=horizon)
        dp_ds = (density(x, s + h) - density(x, s - h)) / (2 * h)
        div = (flux(x + h, s) - flux(x - h, s)) / (2 * h)
        np.testing.assert_allclose(dp_ds + div, 0.0, atol=1e-7)
        assert float(gaussian.velocity(0.0, 0.0, path=path, horizon=horizon)) == 0.0


def test_brownian_speed_is_unbounded_and_linear_speed_is_not_in_s():
    """At clock ``s`` the RMS speed over draws is ``sigma / (2 sqrt(s))`` (brownian) and ``sigma / sqrt(S)``
    (linear, for every s): the stiffness the Kac noises do not have."""
    sigma, horizon = 1.0, 1.0
    for s in (1e-4, 1e-2, 1.0):
        for path, want in (("brownian", sigma / (2 * math.sqrt(s))), ("linear", sigma / math.sqrt(horizon))):
            n, _ = gaussian.sample(jax.random.PRNGKey(7), s, (N_DRAWS,), path=path, sigma=sigma, horizon=horizon)
            v = np.asarray(gaussian.velocity(n, s, path=path, horizon=horizon), np.float64)
            np.testing.assert_allclose(np.sqrt(np.mean(v * v)), want, rtol=0.02)


FAMILY_FLOWS = {
    "kac1": KacFlow(),
    "kac2": KacFlow(a=9.0, noise_dim=2),
    "kac4": KacFlow(a=4.5, noise_dim=4, g_schedule="t2"),
    "line4": KacFlow(noise_process="line", noise_dim=4),
    "line64": KacFlow(noise_process="line", noise_dim=64, c=24.0, f_schedule="exp"),
    "brownian": KacFlow(noise_process="brownian", g_schedule="t2"),
    "linear": KacFlow(noise_process="linear", T=2.0),
}


def _family_velocity(flow, noise_, clock, flag):
    """The family's velocity from its own module (not through the seam), ``noise_`` (B, 8, 8, 1)."""
    B, d, p = noise_.shape[0], flow.noise_dim, flow.noise_process
    rows, flags = noise_.reshape(B, -1, d), flag.reshape(B, -1, d)
    if p == "kac" and d == 1:
        return kac.velocity(noise_, clock[:, None, None, None], a=flow.a, c=flow.c, on_atom=flag)
    if p == "kac":
        from kacjax.core import flight
        v = flight.velocity(rows, clock[:, None], a=flow.a, c=flow.c, dim=d, on_sphere=flags[..., 0])
    elif p == "line":
        v = line.velocity(rows, clock[:, None], a=flow.a, c=flow.c, on_sphere=flags[..., 0])
    else:
        v = gaussian.velocity(rows, clock[:, None, None], path=p, horizon=flow.horizon)
    return v.reshape(noise_.shape)


@pytest.mark.parametrize("name", ["line4", "line64", "brownian", "linear"])  # kac: tests/test_flow.py
def test_every_family_through_corrupt_and_the_prior(name):
    """``x_t - f x0`` has the family's per-coordinate variance at ``g(t)`` (5 sigma) and mean 0;
    ``target - f' x0 = g' v`` with the family's own velocity on the drawn noise and flag; the prior
    has the variance at ``g(T)``; a bounded family's target noise part is at most ``g' c`` in norm."""
    flow = FAMILY_FLOWS[name]
    B, shape = 2048, (8, 8, 1)
    x0 = jax.random.uniform(jax.random.PRNGKey(1), (B, *shape), minval=-1, maxval=1)
    t = jnp.full((B,), 0.6 * flow.T)
    xt, target = flow.corrupt(jax.random.PRNGKey(2), x0, t)  # eager: its draws compile once with noise()'s
    n = np.asarray(xt - flow.f(t)[:, None, None, None] * x0, np.float64)
    clock = flow.g(t)
    var = float(flow.variance(clock[0]))

    def check_law(x, var):
        # examples are independent; coordinates within one may not be: test per-example means
        per_example = np.mean(x * x, axis=(1, 2, 3))
        assert abs(per_example.mean() - var) <= 5 * per_example.std() / math.sqrt(len(per_example))
        assert abs(x.mean()) <= 5 * math.sqrt(var / len(x))

    check_law(n, var)
    noise_, flag = flow.noise(jax.random.PRNGKey(2), clock, (B, *shape))
    np.testing.assert_allclose(n, np.asarray(noise_), atol=2e-5 * max(1.0, math.sqrt(var)))
    want = np.asarray(flow.df(t)[:, None, None, None] * x0
                      + flow.dg(t)[:, None, None, None] * _family_velocity(flow, noise_, clock, flag))
    np.testing.assert_allclose(np.asarray(target), want, rtol=1e-5, atol=1e-5)
    if flow.speed_bound is not None:
        rows = (np.asarray(target) - np.asarray(flow.df(t))[:, None, None, None] * np.asarray(x0))
        speeds = np.linalg.norm(rows.reshape(B, -1, flow.noise_dim), axis=-1)
        assert np.all(speeds <= float(flow.dg(t)[0]) * flow.c * (1 + 1e-5))
    prior = np.asarray(flow.prior_sample(jax.random.PRNGKey(3), (B, *shape)), np.float64)
    check_law(prior, float(flow.variance(flow.horizon)))


@pytest.mark.parametrize("name", ["kac4", "line4", "line64", "brownian", "linear"])
def test_every_family_draws_per_example_on_1_and_8_devices(name):
    """Example i's noise comes from the i-th split key alone: the same on one device or split over 8."""
    flow, shape = FAMILY_FLOWS[name], (16, 8, 8, 1)
    key, clock = jax.random.PRNGKey(5), jnp.linspace(0.0, 1.0, shape[0])
    plain = flow.noise(key, clock, shape)
    sharded = flow.noise(key, clock, shape, mesh=parallel.make_mesh(jax.devices()))
    for got, want in zip(sharded, plain):
        np.testing.assert_array_equal(got, want)
    keys, d = jax.random.split(key, shape[0]), flow.noise_dim
    alone = flow.family.sample(keys[7], clock[7], (64 // d, d), a=flow.a, c=flow.c, horizon=flow.horizon)
    np.testing.assert_allclose(np.asarray(plain[0][7]).ravel(), np.asarray(alone[0]).ravel(), rtol=1e-6)  # fused
    np.testing.assert_array_equal(np.asarray(plain[1][7]).ravel(), np.asarray(alone[1]).ravel())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(noise_process="heat"), "noise_process must be one of"),
        (dict(noise_process=["kac"]), "noise_process must be one of"),
        (dict(noise_process="brownian", noise_dim=2), "Gaussian noise is independent per coordinate"),
        (dict(noise_process="linear", noise_dim=4), "noise_dim must be 1"),
        (dict(noise_process="line", noise_dim=1), "int >= 2"),
        (dict(noise_process="line", noise_dim=2.0), "int >= 2"),
        (dict(noise_process="kac", noise_dim=8), "flight's dim"),
    ],
)
def test_bad_families_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KacFlow(**kwargs)


def test_a_group_that_does_not_divide_the_example_is_refused_with_the_sizes_that_do():
    with pytest.raises(ValueError, match=r"have 12; use noise_dim in \[2, 3, 4, 6, 12\]"):
        KacFlow(noise_process="line", noise_dim=5).check_example_shape((2, 2, 3))
    KacFlow(noise_process="line", noise_dim=12).check_example_shape((2, 2, 3))  # the whole example


def test_variance_matching_and_the_registry():
    """Every registered family is reachable; at long clocks each coordinate grows at ``limit_variance_rate``
    (Kac families) and the Gaussian ones have it at the horizon; the names say what carries the noise."""
    assert set(noise.FAMILIES) == {"kac", "line", "brownian", "linear"}
    for flow in FAMILY_FLOWS.values():
        s = 200.0 / flow.a
        slope = (float(flow.variance(s + 1.0)) - float(flow.variance(s))) if flow.family.bounded else None
        if slope is not None:
            np.testing.assert_allclose(slope, flow.limit_variance_rate, rtol=1e-4)
        else:
            np.testing.assert_allclose(float(flow.variance(flow.horizon)), flow.limit_variance_rate * flow.horizon,
                                       rtol=1e-6)
    assert [f.noise_name for f in FAMILY_FLOWS.values()] == [
        "Kac", "planar flight", "4-D flight", "line-Kac in 4 dims", "line-Kac in 64 dims", "Brownian",
        "Gaussian flow matching"]
    assert KacFlow(noise_process="brownian").speed_bound is None and KacFlow().speed_bound == 3.0
