"""Image datasets read from a prepared TFDS directory: array_record files, random access.

Nothing here downloads or needs TensorFlow: the prepared directory
``<data_dir>/<tfds_name>/<version>/`` (the highest version present; made by ``kacjax-prepare``
or ``tfds build``, or converted by ``tfds convert_format``) is opened with
``tfds.builder_from_directory`` and read with ``as_data_source`` from its array_record files.
Images are decoded with PIL in a thread pool, preprocessed to ``image_size x image_size x 3``
and scaled to ``[-1, 1]``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pathlib
import re
from collections.abc import Callable

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from kacjax.data import image_ops

_VERSION_DIR = re.compile(r"^\d+\.\d+\.\d+$")


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """How one image dataset is stored and turned into training images.

    Attributes:
      tfds_name: TFDS builder name (with config), also its directory under ``data_dir``.
      image_size: side of the square training images (pixels).
      stored_shape: shape of the prepared ``'image'`` feature, ``None`` where it varies.
      conditional: whether the ``'label'`` feature is used (else labels are 0 and
        ``num_classes`` is None).
      preprocess: ``(PIL RGB image, image_size) -> image_size x image_size PIL image``.
    """

    tfds_name: str
    image_size: int
    stored_shape: tuple[int | None, ...]
    conditional: bool
    preprocess: Callable[[PIL.Image.Image, int], PIL.Image.Image]


IMAGE_DATASETS = {
    "cifar10": ImageDataset("cifar10", 32, (32, 32, 3), True, image_ops.unchanged),
    "celeb_a": ImageDataset("celeb_a", 64, (218, 178, 3), False, image_ops.celeba_crop_resize),
    "lsun/bedroom": ImageDataset(
        "lsun/bedroom", 256, (None, None, 3), False, image_ops.shorter_side_centre_crop
    ),
}


def default_data_dir() -> pathlib.Path:
    """``$TFDS_DATA_DIR`` if set, else ``~/tensorflow_datasets``."""
    return pathlib.Path(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def prepare_instructions(tfds_name: str, data_dir: pathlib.Path) -> str:
    """The one command that prepares ``tfds_name`` into ``data_dir`` (text for error messages)."""
    name = next((n for n, d in IMAGE_DATASETS.items() if d.tfds_name == tfds_name), None)
    if name is None:
        return f"prepare it with tfds (`tfds build {tfds_name} --file_format=array_record`); see docs/data.md"
    return (f"prepare it from the official files (docs/data.md lists them) with: "
            f"kacjax-prepare {name} --source DIR_OF_OFFICIAL_FILES --data_dir {data_dir}")


def find_prepared(data_dir: pathlib.Path, tfds_name: str) -> pathlib.Path:
    """The highest ``<data_dir>/<tfds_name>/<X.Y.Z>`` holding ``dataset_info.json``.

    Raises ``FileNotFoundError`` (with preparation instructions) if there is none.
    """
    root = data_dir / tfds_name
    versions = [
        path
        for path in (root.iterdir() if root.is_dir() else ())
        if _VERSION_DIR.match(path.name) and (path / "dataset_info.json").is_file()
    ]
    if not versions:
        raise FileNotFoundError(
            f"dataset {tfds_name!r} is not prepared in {data_dir} (no {root}/<version>/dataset_info.json); "
            + prepare_instructions(tfds_name, data_dir)
        )
    return max(versions, key=lambda path: tuple(int(part) for part in path.name.split(".")))


def _compatible(stored: tuple, expected: tuple) -> bool:
    return len(stored) == len(expected) and all(e is None or s == e for s, e in zip(stored, expected))


class TfdsImageSource:
    """An :class:`~kacjax.data.sources.IndexedSource` over a prepared TFDS image dataset."""

    def __init__(
        self,
        dataset: ImageDataset,
        *,
        data_dir: str | os.PathLike | None,
        split: str,
        image_size: int | None,
        tfds_name: str | None,
        num_threads: int,
    ):
        """Opens the data; fails at once on a config/data mismatch or missing data.

        Args:
          dataset: which dataset and how to preprocess it (:data:`IMAGE_DATASETS`).
          data_dir: TFDS data directory; None means :func:`default_data_dir`.
          split: TFDS split string, e.g. ``'train'`` or ``'train[:90%]'``.
          image_size: must equal ``dataset.image_size`` (None accepts it).
          tfds_name: builder name to read instead of ``dataset.tfds_name`` (tests, variants).
          num_threads: threads decoding and resizing images.
        """
        if image_size is not None and image_size != dataset.image_size:
            raise ValueError(
                f"image_size {image_size} does not match {dataset.tfds_name!r}, which is "
                f"{dataset.image_size}x{dataset.image_size}"
            )
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        tfds_name = tfds_name or dataset.tfds_name
        data_dir = pathlib.Path(data_dir).expanduser() if data_dir else default_data_dir()
        builder = tfds.builder_from_directory(str(find_prepared(data_dir, tfds_name)))
        info = builder.info
        if tfds.core.FileFormat.ARRAY_RECORD not in info.available_file_formats():
            raise ValueError(
                f"{builder.data_dir} is in {info.file_format.value} format only; random access needs "
                f"array_record: convert it (TensorFlow needed) with: tfds convert_format "
                f"--dataset_version_dir={builder.data_dir} --out_file_format=array_record"
            )
        needed = ("image", "label") if dataset.conditional else ("image",)
        missing = [key for key in needed if key not in info.features.keys()]
        if missing:
            raise ValueError(f"prepared {tfds_name!r} in {builder.data_dir} lacks features {missing}")
        stored_shape = tuple(info.features["image"].shape)
        if not _compatible(stored_shape, dataset.stored_shape):
            raise ValueError(
                f"prepared {tfds_name!r} in {builder.data_dir} has images of shape {stored_shape}, "
                f"but {dataset.tfds_name!r} at image_size {dataset.image_size} expects "
                f"{dataset.stored_shape}"
            )
        self.num_classes = info.features["label"].num_classes if dataset.conditional else None
        self.shape = (dataset.image_size, dataset.image_size, 3)
        self._dataset = dataset
        self._records = builder.as_data_source(  # array_record, also where it is an alternative format
            split=split, decoders={"image": tfds.decode.SkipDecoding()}, file_format="array_record"
        )
        self.num_examples = len(self._records)
        self._pool = concurrent.futures.ThreadPoolExecutor(num_threads, "kacjax-decode")

    def read(self, indices: np.ndarray, flip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Examples ``indices`` as ``(x (n, S, S, 3) float32 in [-1, 1], label (n,) int32)``, rows where
        ``flip`` (bool ``(n,)``) is set mirrored left-right.

        Each image is decoded, preprocessed, flipped and scaled by a thread of the pool, straight into
        its row: nothing but the record reads runs serially.
        """
        records = self._records.__getitems__([int(i) for i in indices])
        flip = np.zeros(len(records), bool) if flip is None else flip
        x = np.empty((len(records), *self.shape), np.float32)

        def fill(i: int) -> None:
            image = image_ops.decode_rgb(records[i]["image"])
            image = self._dataset.preprocess(image, self._dataset.image_size)
            if flip[i]:
                image = image.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)
            x[i] = image_ops.to_signed_unit(np.asarray(image))

        list(self._pool.map(fill, range(len(records))))  # list(): re-raises a thread's error here
        if self.num_classes is None:
            return x, np.zeros(len(records), np.int32)
        return x, np.array([record["label"] for record in records], np.int32)
