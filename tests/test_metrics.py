"""Tests of kacjax.evaluation.metrics (distances, the digits judge) against closed forms and constructed cases."""

import numpy as np
import pytest
from scipy.stats import norm

from kacjax.evaluation.metrics import digits_judge, distances


def _normal(seed, n, d, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def _energy_distance_1d_unit_normals(mu):
    """Energy distance of N(0, 1) and N(mu, 1): 2 E|Z| - 2 E|X - X'|, Z ~ N(mu, 2)."""
    s = np.sqrt(2.0)
    e_abs_z = s * np.sqrt(2 / np.pi) * np.exp(-mu**2 / (2 * s**2)) + mu * (1 - 2 * norm.cdf(-mu / s))
    return 2 * e_abs_z - 4 / np.sqrt(np.pi)


def test_energy_distance_same_distribution_is_near_zero():
    assert abs(distances.energy_distance(_normal(0, 2000, 3), _normal(1, 1500, 3))) < 5e-3


@pytest.mark.parametrize("mu", [0.5, 1.0, 2.0])
def test_energy_distance_matches_closed_form_1d(mu):
    # Standard error at n = 2000 is about 0.035 (measured over seeds).
    estimate = distances.energy_distance(_normal(0, 2000, 1), _normal(1, 2000, 1, mu))
    assert estimate == pytest.approx(_energy_distance_1d_unit_normals(mu), abs=0.1)


def test_energy_distance_grows_with_shift():
    x = _normal(0, 1000, 4)
    values = [distances.energy_distance(x, _normal(1, 1000, 4, s)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert np.all(np.diff(values) > 0)


def test_sliced_wasserstein_isotropic_shift_2d():
    # W2 along direction theta is |mu . theta|; E_theta cos^2 = 1/2 in 2-D, so SW2 = |mu|/sqrt(2).
    mu = np.array([3.0, 4.0])
    value = distances.sliced_wasserstein(_normal(0, 3000, 2), _normal(1, 2000, 2, mu),
                                       num_projections=1000, seed=0)
    assert value == pytest.approx(5.0 / np.sqrt(2.0), rel=0.05)


def test_sliced_wasserstein_exact_for_empirical_1d_with_unequal_sizes():
    # {0, 1} vs {0, 0.5, 1}: quantile steps on [0,1/3), [1/3,1/2), [1/2,2/3), [2/3,1]
    # differ by 0, 0.5, 0.5, 0 -> W2^2 = (1/6 + 1/6) * 0.25.
    value = distances.sliced_wasserstein(np.array([[0.0], [1.0]]), np.array([[0.0], [0.5], [1.0]]),
                                       num_projections=3)
    assert value == pytest.approx(np.sqrt(0.25 / 3))


def test_sliced_wasserstein_is_symmetric_and_zero_on_itself():
    x, y = _normal(0, 300, 5), _normal(1, 200, 5, 1.0)
    assert distances.sliced_wasserstein(x, x) == pytest.approx(0.0, abs=1e-12)
    assert distances.sliced_wasserstein(x, y) == pytest.approx(distances.sliced_wasserstein(y, x))


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert distances.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected)


def test_frechet_distance_zero_for_identical_singular_covariance():
    features = _normal(0, 5, 8)  # 5 points in 8-D: rank-deficient covariance
    mu, sigma = distances.feature_statistics(features)
    assert mu.shape == (8,) and sigma.shape == (8, 8)
    assert distances.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


def test_mode_coverage_constructed():
    modes = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    samples = np.array([[0.1, 0.0], [0.0, -0.2], [9.9, 0.1],  # 2 hits on mode 0, 1 on mode 1
                        [5.0, 5.0], [0.0, 13.0]])             # 2 misses; mode 2, 3 uncovered
    result = distances.mode_coverage(samples, modes, radius=0.5)
    np.testing.assert_array_equal(result["counts"], [2, 1, 0, 0])
    assert result["coverage"] == pytest.approx(0.5)
    assert result["high_quality_fraction"] == pytest.approx(3 / 5)
    assert distances.mode_coverage(samples, modes, radius=0.5, min_count=2)["coverage"] == 0.25


@pytest.fixture(scope="module")
def judge():
    return digits_judge.build_digits_judge()


def test_digits_judge_on_real_and_noise(judge):
    assert judge.test_images.shape[1:] == (8, 8, 1)
    assert judge.test_images.min() >= -1 and judge.test_images.max() <= 1
    assert judge.features(judge.test_images).shape == (len(judge.test_images), 64)
    assert judge.accuracy(judge.test_images, judge.test_labels) > 0.9

    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, judge.test_images.shape)
    assert judge.accuracy(noise, judge.test_labels) < 0.3
    real_fd, noise_fd = judge.frechet(judge.test_images), judge.frechet(noise)
    assert real_fd < 25.0  # about 9 at n = 180 (the finite-sample bias dominates)
    assert noise_fd > 20 * real_fd


def test_digits_judge_is_cached_and_fd_sees_missing_classes(judge):
    assert digits_judge.build_digits_judge() is judge
    threes = judge.train_images[judge.train_labels == 3]
    assert judge.frechet(threes) > 20 * judge.frechet(judge.test_images)
