"""The digits judge: a small classifier of 8x8 digits that scores generated digits.

NumPy in float64; takes NumPy or JAX images of shape ``(n, 8, 8, 1)`` (any shape with 64
values per image is accepted) with pixel values in ``[-1, 1]``. ``build_digits_judge`` caches
its classifier in memory.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import numpy as np

from kacjax.evaluation.metrics.distances import feature_statistics, frechet_distance

if TYPE_CHECKING:
    from sklearn.neural_network import MLPClassifier


def _flat_digits(images) -> np.ndarray:
    images = np.asarray(images, np.float64)
    if images.size != len(images) * 64:
        raise ValueError(f"expected (n, 8, 8, 1) images, got {images.shape}")
    return images.reshape(len(images), 64)


def _hidden_features(classifier: MLPClassifier, images) -> np.ndarray:
    return np.maximum(_flat_digits(images) @ classifier.coefs_[0] + classifier.intercepts_[0], 0.0)


@dataclasses.dataclass(frozen=True, eq=False)
class DigitsJudge:
    """A small MLP classifier of 8x8 digits, used to score generated digits.

    ``accuracy`` checks class-conditional samples against their requested labels; ``frechet``
    is an FID analogue ("FD-digits"): the Frechet distance between the Gaussians fitted to the
    64-d hidden features (``relu(x W1 + b1)``) of the images and of the real training digits.
    Like FID it is biased upwards for small sample sizes: compare values at equal ``n``.

    Build it with ``DigitsJudge.fit(seed)`` or the cached ``build_digits_judge(seed)``. The
    classifier is trained on the fixed 90% ``'train'`` split of ``kacjax.data.digits``; its
    ``'test'`` split (the other 10%) is kept in ``test_images`` / ``test_labels``.
    """

    classifier: MLPClassifier
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    reference_mu: np.ndarray
    reference_sigma: np.ndarray

    @classmethod
    def fit(cls, seed: int = 0) -> DigitsJudge:
        """Trains the judge (about 0.3 s): MLP with 64 ReLU units, L-BFGS, deterministic.

        ``seed`` sets the network's initialisation; the data split is fixed.
        """
        # Imported here: scikit-learn takes seconds to import and only the judge needs it.
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits

        from kacjax.data.digits import load_digits

        (x_tr, y_tr), (x_te, y_te) = load_digits("train"), load_digits("test")
        classifier = MLPClassifier(hidden_layer_sizes=(64,), solver="lbfgs", alpha=1e-3,
                                   max_iter=300, random_state=seed)
        with threadpool_limits(1):  # same result on any machine; avoids BLAS thread contention
            classifier.fit(_flat_digits(x_tr), y_tr)
        mu, sigma = feature_statistics(_hidden_features(classifier, x_tr))
        return cls(classifier, x_tr, y_tr, x_te, y_te, mu, sigma)

    def features(self, images) -> np.ndarray:
        """First-hidden-layer activations ``relu(x W1 + b1)``: ``(n, 8, 8, 1) -> (n, 64)``."""
        return _hidden_features(self.classifier, images)

    def predict(self, images) -> np.ndarray:
        """Predicted classes, ``(n, 8, 8, 1) -> (n,)`` ints in 0..9."""
        return self.classifier.predict(_flat_digits(images))

    def accuracy(self, images, labels) -> float:
        """Fraction of ``images`` classified as their requested ``labels`` (shape ``(n,)``)."""
        return float(np.mean(self.predict(images) == np.asarray(labels)))

    def frechet(self, images) -> float:
        """FD-digits of ``images`` (n >= 2) against the real training digits' feature statistics."""
        mu, sigma = feature_statistics(self.features(images))
        return frechet_distance(mu, sigma, self.reference_mu, self.reference_sigma)


@functools.lru_cache(maxsize=None)
def build_digits_judge(seed: int = 0) -> DigitsJudge:
    """``DigitsJudge.fit(seed)``, trained once per process and seed."""
    return DigitsJudge.fit(seed)
