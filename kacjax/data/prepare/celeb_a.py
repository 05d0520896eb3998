"""CelebA (aligned and cropped) from its official files, without unpacking the image archive.

``img_align_celeba.zip`` holds ``img_align_celeba/000001.jpg`` ... (202,599 JPEGs of 178x218);
``list_eval_partition.txt`` assigns each to train (0), validation (1) or test (2); the
attribute, landmark and identity lists fill the other features of TFDS's builder, whose example
generation runs unchanged on them. Each JPEG is stored as it comes (its header is checked).
"""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from collections.abc import Mapping

import PIL.Image
import tensorflow_datasets as tfds
from tensorflow_datasets.datasets.celeb_a import celeb_a_dataset_builder as tfds_celeb_a

from kacjax.data.prepare.official import Log, SourceError, report_checksum, require

VERSION = str(tfds_celeb_a.Builder.VERSION)  # the version TFDS's builder writes
IMAGE_SIZE = (178, 218)  # (width, height)
_ANNOTATIONS = {
    "list_eval_partition": "list_eval_partition.txt",
    "list_attr_celeba": "list_attr_celeba.txt",
    "landmarks_celeba": "list_landmarks_align_celeba.txt",
    "identity_celeba": "identity_CelebA.txt",
}
_SPLITS = {tfds.Split.TRAIN: 0, tfds.Split.VALIDATION: 1, tfds.Split.TEST: 2}
_HEADED = ("list_attr_celeba", "landmarks_celeba")  # a count line and a header line before the rows


class ZipImages(Mapping):
    """``file name -> JPEG bytes`` read from the zip on demand, each checked to be a 178x218 JPEG."""

    def __init__(self, path: str):
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise SourceError(f"{path} is not a readable zip ({err})") from None
        self._path = path
        self._members = {os.path.basename(n): n for n in self._zip.namelist() if n.lower().endswith(".jpg")}

    def __getitem__(self, name: str) -> bytes:
        try:
            data = self._zip.read(self._members[name])
            with PIL.Image.open(io.BytesIO(data)) as image:
                kind, size = image.format, image.size
        except Exception as err:  # a damaged member: zlib, CRC, PIL errors
            raise SourceError(f"{self._path}: {name} is not a readable JPEG ({type(err).__name__})") from None
        if kind != "JPEG" or size != IMAGE_SIZE:
            raise SourceError(f"{self._path}: {name} is a {kind} of {size[0]}x{size[1]}, not a 178x218 JPEG")
        return data

    def __iter__(self):
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __enter__(self) -> ZipImages:
        return self

    def __exit__(self, *exc) -> None:
        self._zip.close()


def _rows(path: str, headed: bool) -> dict[str, list[str]]:
    """The rows of an annotation list, ``file name -> values``, checked to be integers of one width."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise SourceError(f"{path} is not a readable CelebA list ({err})") from None
    if not text.endswith("\n"):  # TFDS's reader drops a last line without one
        raise SourceError(f"{path} is cut short: it does not end with a line break")
    lines = [line.split() for line in text.splitlines() if line.strip()]
    rows = lines[2:] if headed else lines
    widths = {len(r) for r in rows}
    if headed and (len(lines) < 2 or lines[0] != [str(len(rows))] or {len(lines[1]) + 1} != widths):
        raise SourceError(f"{path} does not start with its row count and a header naming every column")
    if not rows or len(widths) != 1 or not all(v.lstrip("-").isdigit() for r in rows for v in r[1:]):
        raise SourceError(f"{path} has rows that are not a file name and integers")
    return {r[0]: r[1:] for r in rows}


class Builder(tfds_celeb_a.Builder, skip_registration=True):
    """TFDS's CelebA builder (same info, features, keys and records) fed from local files."""

    name = tfds_celeb_a.Builder.name

    def __init__(self, *, annotations: dict, images: ZipImages, **kwargs):
        self._annotations, self._images = annotations, images
        super().__init__(**kwargs)

    @classmethod
    def _get_pkg_dir_path(cls):  # TFDS's README and citation, not this module's folder
        return tfds_celeb_a.Builder._get_pkg_dir_path()

    def _split_generators(self, dl_manager):
        del dl_manager
        return [
            tfds.core.SplitGenerator(
                name=split,
                gen_kwargs={
                    "file_id": file_id,
                    "downloaded_dirs": self._annotations,
                    "downloaded_images": self._images,
                },
            )
            for split, file_id in _SPLITS.items()
        ]


@contextlib.contextmanager
def builder(source_dir: str, data_dir: str, log: Log):
    """The builder of the official files in ``source_dir``, checked (nothing written yet)."""
    zip_path = require(source_dir, "img_align_celeba.zip")
    annotations = {key: require(source_dir, name) for key, name in _ANNOTATIONS.items()}
    for path in (zip_path, *annotations.values()):
        report_checksum(path, log)
    with ZipImages(zip_path) as images:
        yield _checked(images, annotations, zip_path, data_dir, log)


def _checked(images: ZipImages, annotations: dict, zip_path: str, data_dir: str, log: Log) -> Builder:
    """The builder, once every image of the partition has its annotations and its JPEG in the zip."""
    partition = _rows(annotations["list_eval_partition"], headed=False)
    splits = [int(values[0]) for values in partition.values()]
    if set(splits) - set(_SPLITS.values()):
        raise SourceError(f"{annotations['list_eval_partition']} assigns splits other than 0, 1, 2")
    for key, path in [
        *((k, p) for k, p in annotations.items() if k != "list_eval_partition"),
        ("", zip_path),
    ]:
        present = images if not key else _rows(path, key in _HEADED)
        missing = set(partition) - set(present)
        if missing:
            raise SourceError(f"{path} lacks {len(missing)} of the partition's images, e.g. {min(missing)}")
    log(
        f"read {zip_path}: {len(images)} images; "
        + ", ".join(f"{split} {splits.count(file_id)}" for split, file_id in _SPLITS.items())
    )
    return Builder(annotations=annotations, images=images, data_dir=data_dir, file_format="array_record")
