"""LSUN bedroom from ``bedroom_{train,val}_lmdb.zip`` or their unpacked folders, read with ``lmdb``.

Each archive holds an LMDB database, ``bedroom_<split>_lmdb/data.mdb``, of encoded images keyed by
their id. A zip is unpacked next to the prepared data first (``<data_dir>/downloads/extracted/``,
removed when done: LMDB reads only from disk). Examples follow the database's key order and carry
TFDS's keys and ids, and each image's bytes are stored as they come (their header is checked).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import zipfile

import PIL.Image
import tensorflow_datasets as tfds
from tensorflow_datasets.image import lsun as tfds_lsun

from kacjax.data.prepare.official import Log, SourceError, report_checksum, require

CONFIG = "bedroom"
VERSION = str(tfds_lsun.Lsun.builder_configs[CONFIG].version)  # the version TFDS's builder writes
MIN_SIDE = 256  # LSUN's images were scaled to a shorter side of 256 pixels
_SPLITS = {tfds.Split.TRAIN: "train", tfds.Split.VALIDATION: "val"}


def _database(path: str) -> str:
    """The folder of the LMDB in ``path`` (a folder holding ``data.mdb``)."""
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        raise SourceError(f"{path} holds no data.mdb: not an LSUN LMDB folder")
    return path


def _unzip(zip_path: str, scratch: str, log: Log) -> str:
    """Unpacks the LMDB folder of ``zip_path`` into ``scratch``; returns that folder."""
    folder = os.path.basename(zip_path)[: -len(".zip")]
    try:
        with zipfile.ZipFile(zip_path) as archive:
            member = f"{folder}/data.mdb"
            if member not in archive.namelist():
                raise SourceError(f"{zip_path} lacks {member}")
            log(f"unpacking {member} ({archive.getinfo(member).file_size / 2**30:.2f} GiB) into {scratch}")
            archive.extract(member, scratch)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise SourceError(f"{zip_path} is not a readable zip ({err})") from None
    return os.path.join(scratch, folder)


def _records(database: str):
    """``(key bytes, value bytes)`` of the LMDB in ``database``, in key order."""
    import lmdb

    try:
        env = lmdb.open(database, readonly=True, lock=False, readahead=False, subdir=True)
    except lmdb.Error as err:
        raise SourceError(f"{database}/data.mdb is not a readable LMDB ({err})") from None
    with env, env.begin(buffers=False) as txn:
        yield from txn.cursor()


def _image(key: bytes, value: bytes, database: str) -> bytes:
    try:
        with PIL.Image.open(io.BytesIO(value)) as image:
            size = image.size
    except Exception as err:  # anything PIL raises on bytes that are not an image
        raise SourceError(
            f"{database}: entry {key!r} is not a readable image ({type(err).__name__})"
        ) from None
    if min(size) < MIN_SIDE:
        raise SourceError(
            f"{database}: entry {key!r} is {size[0]}x{size[1]}, smaller than {MIN_SIDE} on a side"
        )
    return value


class Builder(tfds_lsun.Lsun, skip_registration=True):
    """TFDS's LSUN builder, config ``bedroom`` (same info, features, keys and ids), fed from local LMDBs."""

    name = tfds_lsun.Lsun.name

    def __init__(self, *, databases: dict, **kwargs):
        self._databases = databases
        super().__init__(config=CONFIG, **kwargs)

    def _split_generators(self, dl_manager):
        del dl_manager
        return [
            tfds.core.SplitGenerator(
                name=split, gen_kwargs={"extracted_dir": self._databases[split], "file_path": ""}
            )
            for split in _SPLITS
        ]

    def _generate_examples(self, extracted_dir, file_path):
        del file_path
        for index, (key, value) in enumerate(_records(extracted_dir)):
            yield index, {"id": key.decode("utf-8"), "image": _image(key, value, extracted_dir)}


@contextlib.contextmanager
def builder(source_dir: str, data_dir: str, log: Log):
    """The builder of the LMDBs in ``source_dir`` (zips unpacked into a scratch folder removed on exit)."""
    scratch = os.path.join(data_dir, "downloads", "extracted", "kacjax_lsun_bedroom")
    databases = {}
    try:
        for split, stem in _SPLITS.items():
            path = require(source_dir, f"bedroom_{stem}_lmdb.zip", f"bedroom_{stem}_lmdb")
            report_checksum(path, log)
            databases[split] = _database(_unzip(path, scratch, log) if path.endswith(".zip") else path)
        yield Builder(databases=databases, data_dir=data_dir, file_format="array_record")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
