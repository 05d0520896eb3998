"""``build_input``: a data config -> an :class:`~kacjax.data.pipeline.Input`.

Accepted keys of ``data_cfg`` per dataset (``name`` is always required; unknown keys
are rejected, to catch typos). Defaults in brackets; docs/data.md has the details.

``'digits'``: ``split`` ['all'] ('all' | 'train' | 'test'), ``random_flip`` [False].
``'toy2d'``: ``target`` ['gaussians9'] ('gaussians9' | 'rings' | 'checkerboard'),
  ``mode_std`` [0.01], ``random_flip`` [False] (must stay False).
``'cifar10'``, ``'celeb_a'``, ``'lsun/bedroom'``: ``data_dir`` [None: $TFDS_DATA_DIR or
  ~/tensorflow_datasets], ``split`` ['train'], ``image_size`` [None: the dataset's own,
  32 / 64 / 256; any other value is an error], ``random_flip`` [True], ``tfds_name``
  [None: the dataset name; another prepared builder read the same way],
  ``num_threads`` [8] (image decoding threads).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kacjax.data import indexing, toy2d
from kacjax.data.pipeline import Input
from kacjax.data.sources import ArraySource, Toy2dSource

_DIGITS_KEYS = {"split": "all", "random_flip": False}
_TOY2D_KEYS = {"target": "gaussians9", "mode_std": 0.01, "random_flip": False}
_IMAGE_KEYS = {
    "data_dir": None,
    "split": "train",
    "image_size": None,
    "random_flip": True,
    "tfds_name": None,
    "num_threads": 8,
}
IMAGE_NAMES = ("cifar10", "celeb_a", "lsun/bedroom")
_DIGITS_SHAPE = (8, 8, 1)  # kacjax.data.digits' images, known without importing scikit-learn (2 s)
NAMES = ("digits", "toy2d") + IMAGE_NAMES


def _options(data_cfg: Mapping[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` overridden by ``data_cfg``; ``ValueError`` on keys outside ``defaults``."""
    unknown = sorted(set(data_cfg.keys()) - set(defaults) - {"name"})
    if unknown:
        raise ValueError(
            f"unknown data_cfg keys {unknown} for dataset {data_cfg['name']!r}; "
            f"allowed: {['name', *defaults]}"
        )
    return {key: data_cfg.get(key, default) for key, default in defaults.items()}


def _source(name: str, options: dict[str, Any]):
    # Dataset modules are imported on first use: sklearn takes ~2 s to import, tfds ~1 s.
    if name == "digits":
        from kacjax.data import digits

        x, label = digits.load_digits(options["split"])
        return ArraySource(x, label, digits.NUM_CLASSES)
    if name == "toy2d":
        return Toy2dSource(options["target"], float(options["mode_std"]))
    from kacjax.data import tfds_source

    return tfds_source.TfdsImageSource(
        tfds_source.IMAGE_DATASETS[name],
        data_dir=options["data_dir"],
        split=options["split"],
        image_size=options["image_size"],
        tfds_name=options["tfds_name"],
        num_threads=options["num_threads"],
    )


def check_data_config(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Checks the dataset name and its keys without reading any data; returns the options.

    Raises ``ValueError`` for an unknown dataset, an unknown key or an impossible toy2d
    target; a missing prepared image dataset is found only by :func:`build_input`.
    """
    name = data_cfg["name"]
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; known: {NAMES}")
    options = _options(data_cfg, {"digits": _DIGITS_KEYS, "toy2d": _TOY2D_KEYS}.get(name, _IMAGE_KEYS))
    if name == "toy2d":
        toy2d.check_args(options["target"], float(options["mode_std"]))
    return options


def example_shape(data_cfg: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape of one example of the configured dataset, read from the config alone (no data)."""
    options = check_data_config(data_cfg)
    name = data_cfg["name"]
    if name == "digits":
        return _DIGITS_SHAPE
    if name == "toy2d":
        return Toy2dSource.shape
    from kacjax.data import tfds_source

    size = options["image_size"] or tfds_source.IMAGE_DATASETS[name].image_size
    return (size, size, 3)


def build_source(data_cfg: Mapping[str, Any]):
    """The dataset itself (``read(indices)``, ``num_examples``, ``shape``, ``num_classes``), unshuffled
    and unflipped: what FID reference statistics are computed from."""
    return _source(data_cfg["name"], check_data_config(data_cfg))


def build_input(
    data_cfg: Mapping[str, Any],
    *,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> Input:
    """The input of this process (see :class:`~kacjax.data.pipeline.Input`).

    Args:
      data_cfg: ``ml_collections.ConfigDict`` or dict; keys listed in this module's docstring.
      global_batch_size: examples per step over all processes; divisible by ``process_count``.
      seed: integer >= 0; fixes the epoch orders, flips and generated data.
      process_index, process_count: this process and the number of processes
        (``jax.process_index()``, ``jax.process_count()``).

    Raises:
      ValueError: bad keys or values, batch not divisible or larger than the dataset,
        prepared data that does not match the config.
      FileNotFoundError: an image dataset not prepared in ``data_dir`` (never downloads).
    """
    name = data_cfg["name"]
    options = check_data_config(data_cfg)
    # Fail on the batch layout before loading any data.
    indexing.check_nonnegative(seed=seed)
    indexing.process_rows(global_batch_size, process_index, process_count)
    return Input(
        _source(name, options),
        global_batch_size=global_batch_size,
        seed=seed,
        process_index=process_index,
        process_count=process_count,
        random_flip=bool(options["random_flip"]),
    )
