"""The official source files of each dataset, their checksums, and checking a source folder.

Checksums are those TFDS registers for its own builders (``tensorflow_datasets/url_checksums``
and ``datasets/celeb_a/checksums.tsv``), except ``cifar-10-python.tar.gz``, which TFDS does not
use (its sha256 is the one Keras checks). A file whose sha256 differs is used with a warning:
mirrors recompress archives without changing their content.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable

Log = Callable[[str], None]


class SourceError(ValueError):
    """A source file is missing or malformed: nothing was written."""


@dataclasses.dataclass(frozen=True)
class OfficialFile:
    """One official file: its name, its sha256, and where it is published."""

    name: str
    sha256: str
    url: str


_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive: Img/, Eval/, Anno/)"
_LSUN_URL = "http://dl.yf.io/lsun/scenes/ (or the LSUN GitHub download.py)"

FILES = {
    f.name: f
    for f in (
        OfficialFile(
            "cifar-10-binary.tar.gz",
            "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            _CIFAR_URL,
        ),
        OfficialFile(
            "cifar-10-python.tar.gz",
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            _CIFAR_URL,
        ),
        OfficialFile(
            "img_align_celeba.zip",
            "46fb89443c578308acf364d7d379fe1b9efb793042c0af734b6112e4fd3a8c74",
            _CELEBA_URL,
        ),
        OfficialFile(
            "list_eval_partition.txt",
            "fc955bcb3ef8fbdf7d5640d9a8693a8431b5f2ee291a5c1449a1549e7e073fe7",
            _CELEBA_URL,
        ),
        OfficialFile(
            "list_attr_celeba.txt",
            "f0e5da289d5ccf75ffe8811132694922b60f2af59256ed362afa03fefba324d0",
            _CELEBA_URL,
        ),
        OfficialFile(
            "list_landmarks_align_celeba.txt",
            "6c02a87569907f6db2ba99019085697596730e8129f67a3d61659f198c48d43b",
            _CELEBA_URL,
        ),
        OfficialFile(
            "identity_CelebA.txt",
            "c6143857c3e2630ac2da9f782e9c1232e5e59be993a9d44e8a7916c78a6158c0",
            _CELEBA_URL,
        ),
        OfficialFile(
            "bedroom_train_lmdb.zip",
            "a15644c2e7153106867f0adb3491fc41224102d1f01b24494fb47d9f5d1f174e",
            _LSUN_URL,
        ),
        OfficialFile(
            "bedroom_val_lmdb.zip",
            "5d022e781b241c25ec2e1f1f769afcdb8091d7fd58362667aec03137b8114b12",
            _LSUN_URL,
        ),
    )
}


def sha256_of(path: str, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require(source_dir: str, *names: str) -> str:
    """The path of the first of ``names`` present in ``source_dir`` (files or folders).

    Raises :class:`SourceError` naming them all and where they are published when none is.
    """
    for name in names:
        path = os.path.join(source_dir, name)
        if os.path.exists(path):
            return path
    official = FILES.get(names[0]) or FILES.get(names[0] + ".zip")
    where = f" (from {official.url})" if official else ""
    raise SourceError(f"{' or '.join(names)} not found in {source_dir}{where}")


def report_checksum(path: str, log: Log) -> None:
    """Logs the sha256 of an official file and whether it is the official one (a folder: only its name)."""
    name = os.path.basename(path)
    if os.path.isdir(path):
        log(f"{name}/: an unpacked folder, no official checksum to compare")
        return
    size = os.path.getsize(path)
    if size > 2**30:
        log(f"computing the sha256 of {name} ({size / 2**30:.1f} GiB)")
    digest = sha256_of(path)
    if digest == FILES[name].sha256:
        log(f"sha256 {digest}  {name} (the official file)")
    else:
        log(
            f"sha256 {digest}  {name} -- WARNING: not the official {FILES[name].sha256}; used as it is "
            "(mirrors recompress archives; check the counts below)"
        )
