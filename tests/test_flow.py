"""Tests of kacjax.core.flow: schedules, forward process and targets, prior, config checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import enable_x64
from kacjax import flight, kac
from kacjax.core.flow import KacFlow, sample_times
from kacjax.runtime import parallel

FLOWS = [
    KacFlow(),
    KacFlow(a=25.0, c=2.0, f_schedule="exp", g_schedule="t2"),
    KacFlow(a=4.0, c=1.5, T=2.0, f_schedule="linear", g_schedule="t2"),
    KacFlow(a=9.0, c=3.0, T=0.5, f_schedule="exp", g_schedule="t"),
]
IDS = [f"a{f.a}-c{f.c}-T{f.T}-{f.f_schedule}-{f.g_schedule}" for f in FLOWS]
velocity = jax.jit(kac.velocity)  # one executable for all flows (a, c traced)


@pytest.mark.parametrize("flow", FLOWS, ids=IDS)
def test_schedules_and_derivatives(flow):
    """Boundary values, and f', g' against central differences (float64, 1e-8)."""
    with enable_x64(True):
        T = flow.T
        t = jnp.linspace(0.01, 0.99, 15) * T
        h = 1e-6 * T
        for fn, dfn in [(flow.f, flow.df), (flow.g, flow.dg)]:
            fd = (fn(t + h) - fn(t - h)) / (2 * h)
            np.testing.assert_allclose(dfn(t), fd, rtol=1e-8, atol=1e-10)
            assert dfn(t).shape == t.shape
        ends = jnp.array([0.0, T])
        np.testing.assert_allclose(flow.f(ends)[0], 1.0)
        np.testing.assert_allclose(flow.g(ends), [0.0, T], atol=1e-15)  # the clock runs from 0 to T
        if flow.f_schedule == "linear":
            np.testing.assert_allclose(flow.f(ends)[1], 0.0, atol=1e-15)  # pure noise at T


@pytest.mark.parametrize("flow", FLOWS, ids=IDS)
@pytest.mark.compat
def test_corrupt_is_data_plus_kac_noise_with_velocity_target(flow):
    """x_t = f x0 + K(g(t)) and target = f' x0 + g' v(g(t), K), per row of times.

    The noise K = x_t - f x0 and the speed target - f' x0 are recovered up to float32
    rounding (atol 1e-5). Checked: |K| <= c g, |speed| <= c g'; atom draws (the only
    ones with |speed| = c g', since inside the cone |v| <= c a g / (a g + 2)) have
    |K| = c g and speed exactly +-c g' with K's sign, at the binomial rate e^{-a g};
    elsewhere speed = g' velocity(K); and each row's K has the Kac variance.
    """
    T, rows, cols = flow.T, 50, 2048
    t = jnp.concatenate([jnp.zeros(1), jnp.linspace(0.02, 1.0, rows - 1)]) * T
    x0 = jax.random.uniform(jax.random.PRNGKey(1), (rows, cols), minval=-1.0, maxval=1.0)
    x_t, target = flow.corrupt(jax.random.PRNGKey(2), x0, t)
    assert x_t.shape == target.shape == x0.shape
    assert x_t.dtype == target.dtype == jnp.float32
    np.testing.assert_array_equal(x_t[0], x0[0])  # t = 0: the data itself
    x0, x_t, target = (np.asarray(a, np.float64) for a in (x0, x_t, target))
    for i in range(1, rows):
        ti = t[i]
        clock, f, df, dg = (float(fn(ti)) for fn in (flow.g, flow.f, flow.df, flow.dg))
        noise = x_t[i] - f * x0[i]
        speed = target[i] - df * x0[i]
        bound_x, bound_v = flow.c * clock, flow.c * dg
        assert np.all(np.abs(noise) <= bound_x + 1e-5)
        assert np.all(np.abs(speed) <= bound_v * (1 + 1e-6) + 1e-6)
        atom = np.abs(speed) >= bound_v * (1 - 1e-5)
        m = math.exp(-flow.a * clock)
        assert abs(atom.sum() - cols * m) <= 5 * math.sqrt(cols * m * (1 - m)) + 1, (ti, atom.sum(), cols * m)
        np.testing.assert_allclose(np.abs(noise[atom]), bound_x, atol=1e-5)
        np.testing.assert_allclose(speed[atom], bound_v * np.sign(noise[atom]), rtol=1e-6)
        v = np.asarray(velocity(jnp.asarray(noise, jnp.float32), clock, a=flow.a, c=flow.c))
        np.testing.assert_allclose(speed[~atom], dg * v[~atom], rtol=0, atol=1e-4 * bound_v)
        var = float(kac.variance(clock, a=flow.a, c=flow.c))
        assert abs(noise.mean()) <= 5 * math.sqrt(var / cols)
        assert abs(noise.var() - var) <= 5 * math.sqrt(bound_x**2 * var / cols) + 1e-9


@pytest.mark.parametrize("flow", FLOWS[:2], ids=IDS[:2])
@pytest.mark.compat
def test_prior_sample_law(flow):
    """The prior K(g(T)): mean 0, Kac variance (5 sigma), |x| <= c g(T)."""
    n = 100_000
    x = flow.prior_sample(jax.random.PRNGKey(4), (n // 4, 4))
    assert x.shape == (n // 4, 4) and x.dtype == jnp.float32
    x = np.asarray(x, np.float64).ravel()
    clock = flow.g(flow.T)
    var = float(kac.variance(clock, a=flow.a, c=flow.c))
    assert np.all(np.abs(x) <= flow.c * clock * (1 + 1e-6))
    assert abs(x.mean()) <= 5 * math.sqrt(var / n)
    assert abs(x.var() - var) <= 5 * math.sqrt((flow.c * clock) ** 2 * var / n)


def test_noise_is_drawn_per_example_whatever_the_device_layout():
    """Example i's noise comes from the i-th split key alone: the same on 1 or 8 devices."""
    flow, shape = KacFlow(), (16, 8, 8, 1)
    key, clock = jax.random.PRNGKey(5), jnp.linspace(0.0, 1.0, shape[0])
    plain = flow.noise(key, clock, shape)
    keys = jax.random.split(key, shape[0])
    for i in (0, 7, 15):
        alone = kac.sample(keys[i], clock[i], (64,), a=flow.a, c=flow.c)
        for got, want in zip(plain, alone):
            np.testing.assert_array_equal(got[i].ravel(), want)
    for devices in (jax.devices()[:1], jax.devices()):
        sharded = flow.noise(key, clock, shape, mesh=parallel.make_mesh(devices))
        for got, want in zip(sharded, plain):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(a=0.0), "a must be"),
        (dict(a=-9.0), "a must be"),
        (dict(c=float("nan")), "c must be"),
        (dict(c=float("inf")), "c must be"),
        (dict(T=0.0), "T must be"),
        (dict(f_schedule="cosine"), "f_schedule must be one of"),
        (dict(g_schedule="sqrt"), "g_schedule must be one of"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KacFlow(**kwargs)


def test_from_config_and_sample_times():
    flow = KacFlow.from_config({"a": 25.0, "c": 2.0, "g_schedule": "t2", "unrelated": 1})
    assert (flow.a, flow.c, flow.T, flow.f_schedule, flow.g_schedule) == (25.0, 2.0, 1.0, "linear", "t2")
    with pytest.raises(ValueError, match="a must be"):
        KacFlow.from_config({"a": -1.0})
    t = sample_times(jax.random.PRNGKey(0), 4096, KacFlow(T=2.0))
    assert t.shape == (4096,)
    assert float(t.min()) >= 0.0 and float(t.max()) <= 2.0 and float(t.max()) > 1.9


def _flight_variance(s, a, c, dim):
    """Per-coordinate variance of a d-flight at time s: E|X|^2 / d = 2 c^2 (a s - 1 + e^{-a s}) / (d a^2)."""
    return 2 * c * c * (a * s - 1 + math.exp(-a * s)) / (dim * a * a)


@pytest.mark.parametrize("dim", [2, 4])
def test_flight_noise_corrupt_groups_consecutive_coordinates(dim):
    """noise_dim = d: x_t - f x0 is one flight per group of d consecutive coordinates (|group| <= c g,
    the sphere's groups, flagged in every coordinate, at the binomial rate e^{-a g} and moving outward at
    speed c g'), target - f' x0 = g' v with the flight velocity, per-coordinate flight variance; the prior
    has the same law at g(T)."""
    flow = KacFlow(a=9.0 * 2 / dim, c=3.0, noise_dim=dim, g_schedule="t2")
    rows, groups = 8, 1024
    t = jnp.linspace(0.1, 1.0, rows)
    x0 = jax.random.uniform(jax.random.PRNGKey(1), (rows, 8, groups * dim // 8), minval=-1.0, maxval=1.0)
    x_t, target = flow.corrupt(jax.random.PRNGKey(2), x0, t)
    noise_all, flag_all = flow.noise(jax.random.PRNGKey(2), flow.g(t), x0.shape)
    x0, x_t, target = (np.asarray(v, np.float64) for v in (x0, x_t, target))
    for i in range(rows):
        clock, f, df, dg = (float(fn(t[i])) for fn in (flow.g, flow.f, flow.df, flow.dg))
        noise = (x_t[i] - f * x0[i]).reshape(groups, dim)
        np.testing.assert_allclose(noise, np.asarray(noise_all[i]).reshape(groups, dim), atol=1e-5)
        speed = ((target[i] - df * x0[i]) / dg).reshape(groups, dim)
        flag = np.asarray(flag_all[i]).reshape(groups, dim)
        assert np.all(flag == flag[:, :1])
        on_sphere = flag[:, 0]
        norm = np.linalg.norm(noise, axis=1)
        assert np.all(norm <= flow.c * clock * (1 + 1e-5))
        m = math.exp(-flow.a * clock)
        assert abs(on_sphere.sum() - groups * m) <= 5 * math.sqrt(groups * m * (1 - m)) + 1
        np.testing.assert_allclose(norm[on_sphere], flow.c * clock, rtol=1e-5)
        np.testing.assert_allclose(speed[on_sphere], flow.c * noise[on_sphere] / norm[on_sphere, None], atol=1e-4)
        drawn = np.asarray(noise_all[i]).reshape(groups, dim)  # the float32 draw itself
        v = np.asarray(flight.velocity(drawn, clock, a=flow.a, c=flow.c, dim=dim))
        np.testing.assert_allclose(speed[~on_sphere], v[~on_sphere], atol=1e-4 * flow.c)
        var = _flight_variance(clock, flow.a, flow.c, dim)
        assert abs(noise.var() - var) <= 5 * math.sqrt(2 * var * var / noise.size) + 1e-9
    prior = np.asarray(flow.prior_sample(jax.random.PRNGKey(4), (64, groups * dim // 64)), np.float64)
    var = _flight_variance(float(flow.g(flow.T)), flow.a, flow.c, dim)
    assert abs(prior.var() - var) <= 5 * math.sqrt(2 * var * var / prior.size)
    assert np.all(np.linalg.norm(prior.reshape(-1, dim), axis=1) <= flow.c * (1 + 1e-5))


def test_planar_flight_noise_on_2d_points_is_isotropic():
    """toy2d with noise_dim = 2: each point's noise angle is uniform (KS) and stays in the disc
    |x| <= c t, unlike two 1-D Kac processes, which fill the square |x_i| <= c t."""
    from scipy import stats

    n, clock = 20_000, 0.2
    radius = {}
    for dim in (1, 2):
        x = np.asarray(KacFlow(noise_dim=dim).noise(jax.random.PRNGKey(3), jnp.full((n,), clock), (n, 2))[0])
        radius[dim] = np.linalg.norm(x, axis=1) / (3.0 * clock)
    angles = np.arctan2(x[:, 1], x[:, 0])
    assert stats.kstest(angles, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-4
    assert radius[2].max() <= 1 + 1e-6 and radius[1].max() > 1.3


@pytest.mark.parametrize("dim", [2, 4])
def test_flight_noise_is_drawn_per_example_whatever_the_device_layout(dim):
    """Example i's flights come from the i-th split key alone: the same on 1 or 8 devices."""
    flow, shape = KacFlow(noise_dim=dim), (16, 8, 8, 1)
    key, clock = jax.random.PRNGKey(5), jnp.linspace(0.0, 1.0, shape[0])
    plain = flow.noise(key, clock, shape)
    keys = jax.random.split(key, shape[0])
    x, on_sphere = flight.sample(keys[7], clock[7], (64 // dim, dim), a=flow.a, c=flow.c, dim=dim)
    np.testing.assert_array_equal(plain[0][7].ravel(), np.asarray(x).ravel())
    np.testing.assert_array_equal(plain[1][7].ravel(), np.repeat(np.asarray(on_sphere), dim))
    for devices in (jax.devices()[:1], jax.devices()):
        sharded = flow.noise(key, clock, shape, mesh=parallel.make_mesh(devices))
        for got, want in zip(sharded, plain):
            np.testing.assert_array_equal(got, want)


def test_noise_dim_is_checked():
    with pytest.raises(ValueError, match="no closed form"):
        KacFlow(noise_dim=3)
    for bad in (0, 8, 2.0, True):
        with pytest.raises(ValueError, match="dim must be one of"):
            KacFlow(noise_dim=bad)
    with pytest.raises(ValueError, match=r"use noise_dim in \[1, 2\]"):
        KacFlow(noise_dim=4).check_example_shape((2,))
    with pytest.raises(ValueError, match="groups each example"):
        KacFlow(noise_dim=4).noise(jax.random.PRNGKey(0), jnp.ones(3), (3, 6))
    assert KacFlow.from_config({"noise_dim": 2, "a": 9.0}).noise_dim == 2
    assert KacFlow(a=9.0, c=3.0).limit_variance_rate == KacFlow(a=9.0, c=3.0, noise_dim=2).limit_variance_rate
    assert KacFlow(a=9.0, c=3.0).limit_variance_rate == KacFlow(a=4.5, c=3.0, noise_dim=4).limit_variance_rate
