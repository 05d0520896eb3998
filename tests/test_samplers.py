"""Tests of kacjax.samplers: convergence orders, NFE counts, grids, trajectories."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import enable_x64
from kacjax import samplers

pytestmark = pytest.mark.compat  # the core math: also run on the oldest supported versions


def u_cos(x, t):
    """dx/dt = cos(t) x; exact flow x(t1) = x(t0) exp(sin t1 - sin t0)."""
    return jnp.cos(t) * x


def exact(x0, t0, t1):
    return x0 * np.exp(np.sin(t1) - np.sin(t0))


@pytest.mark.parametrize("method, order", [("euler", 1), ("midpoint", 2), ("ab2", 2)])
def test_convergence_order(method, order):
    """Observed order log2(e_n / e_2n) within 0.1 of the nominal one (float64)."""
    with enable_x64(True):
        x0 = jnp.array([1.0, -2.0])
        errors = []
        for steps in (20, 40, 80, 160):
            sol = samplers.integrate(u_cos, x0, method=method, steps=steps, t_start=1.0, t_end=0.0)
            assert sol.x.dtype == jnp.float64
            errors.append(float(jnp.max(jnp.abs(sol.x - exact(np.asarray(x0), 1.0, 0.0)))))
        observed = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
        np.testing.assert_allclose(observed, order, atol=0.1, err_msg=f"errors {errors}")


@pytest.mark.parametrize("method", samplers.METHODS)
def test_nfe_counts_are_exact(method):
    """The reported NFE equals the velocity calls actually executed (jit and eager)."""
    calls = []

    def u(x, t):
        jax.debug.callback(lambda: calls.append(1))
        return u_cos(x, t)

    expected = {"euler": 7, "midpoint": 14, "ab2": 7}[method]
    assert samplers.nfe(method, 7) == expected
    run = lambda x: samplers.integrate(u, x, method=method, steps=7, t_start=1.0)  # noqa: E731
    for fn in (run, jax.jit(lambda x: run(x).x)):
        calls.clear()
        out = fn(jnp.ones(3))
        jax.block_until_ready(out)
        jax.effects_barrier()
        assert len(calls) == expected
    assert run(jnp.ones(3)).nfe == expected


def test_step_formulas_trajectory_and_grid():
    """One hand-computed update per method; trajectory and grid shapes and endpoints."""
    with enable_x64(True):
        x0, t0, t1, steps = jnp.array([[0.5, -1.0, 2.0]]), 1.0, 0.2, 4
        h = (t1 - t0) / steps
        xe, xm, xa = (np.asarray(x0),) * 3
        ua_prev = None
        for k in range(steps):
            t = t0 + k * h
            xe = xe + h * np.cos(t) * xe
            xm = xm + h * np.cos(t + h / 2) * (xm + h / 2 * np.cos(t) * xm)
            ua = np.cos(t) * xa
            xa = xa + h * (ua if ua_prev is None else 1.5 * ua - 0.5 * ua_prev)
            ua_prev = ua
        for method, want in [("euler", xe), ("midpoint", xm), ("ab2", xa)]:
            sol = samplers.integrate(u_cos, x0, method=method, steps=steps, t_start=t0, t_end=t1,
                                     return_trajectory=True)
            np.testing.assert_allclose(sol.x, want, rtol=1e-13)
            assert sol.trajectory.shape == (steps + 1, *x0.shape)
            np.testing.assert_array_equal(sol.trajectory[0], x0)
            np.testing.assert_array_equal(sol.trajectory[-1], sol.x)
            np.testing.assert_allclose(sol.times, t0 + h * np.arange(steps + 1), rtol=1e-14)
            assert sol.times.shape == (steps + 1,)
            assert float(sol.times[0]) == t0 and float(sol.times[-1]) == t1
        sol = samplers.integrate(u_cos, x0, method="euler", steps=steps, t_start=t0)
        assert sol.trajectory is None and float(sol.times[-1]) == 0.0


def test_per_example_grids_match_separate_runs():
    """(B,) start/end times integrate each example on its own grid."""
    with enable_x64(True):
        x = jnp.array([[1.0, 2.0], [-1.0, 0.5], [3.0, -3.0]])
        t_start, t_end = jnp.array([1.0, 0.6, 0.3]), jnp.array([0.0, 0.1, 0.2])

        def u(x, t):  # t has shape (B,)
            return jnp.cos(t)[:, None] * x

        for method in samplers.METHODS:
            sol = samplers.integrate(u, x, method=method, steps=5, t_start=t_start, t_end=t_end)
            assert sol.times.shape == (6, 3)
            for i in range(3):
                one = samplers.integrate(u_cos, x[i], method=method, steps=5,
                                         t_start=float(t_start[i]), t_end=float(t_end[i]))
                np.testing.assert_allclose(sol.x[i], one.x, rtol=1e-13)


def test_bad_arguments_raise():
    x = jnp.ones(2)
    with pytest.raises(ValueError, match="unknown sampler 'rk4'"):
        samplers.integrate(u_cos, x, method="rk4", steps=4, t_start=1.0)
    with pytest.raises(ValueError, match="unknown sampler"):
        samplers.nfe("heun", 4)
    for steps in (0, -3, 2.5, None):
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            samplers.integrate(u_cos, x, method="euler", steps=steps, t_start=1.0)
    assert math.isclose(float(samplers.time_grid(4, 1.0, 0.0)[1]), 0.75)


@pytest.mark.parametrize("method", samplers.METHODS)
def test_tracked_speed_is_each_examples_largest_velocity(method):
    """dx/dt = -x forward in time from x0 decays, so the largest |u| is |x0|'s largest component; a NaN velocity
    shows as NaN for its own example only."""
    x0 = jnp.array([[1.0, -3.0], [0.5, 0.25], [2.0, 1.0]])

    def u(x, t):
        return jnp.where(x[:, :1] == 2.0, jnp.nan, -x)  # the third example's field is broken

    sol = samplers.integrate(u, x0, method=method, steps=8, t_start=0.0, t_end=1.0, track_speed=True)
    np.testing.assert_allclose(sol.max_speed[:2], [3.0, 0.5], rtol=1e-6)
    assert np.isnan(sol.max_speed[2])
    untracked = samplers.integrate(u, x0, method=method, steps=8, t_start=0.0, t_end=1.0)
    assert untracked.max_speed is None
    np.testing.assert_array_equal(untracked.x[:2], sol.x[:2])
