"""Small fake copies of the official dataset files, in their exact formats, with known pixels and labels.

- CIFAR-10: ``cifar-10-binary.tar.gz`` (label byte + R, G, B planes per record) and
  ``cifar-10-python.tar.gz`` (Python 2 pickles, protocol 2, as the originals were written: py2
  strings, a ``numpy.core.multiarray._reconstruct`` array), both of the same images.
- CelebA: ``img_align_celeba.zip`` of 178x218 JPEGs and the four CRLF-terminated text lists.
- LSUN bedroom: ``bedroom_{train,val}_lmdb.zip`` holding LMDB databases of JPEGs keyed by hex ids.
"""

import io
import os
import pickle
import struct
import tarfile
import zipfile

import numpy as np
import PIL.Image

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_PER_BATCH = 3  # images per batch file: 15 train, 3 test
CELEBA_SPLITS = (8, 2, 2)  # train, validation, test
LSUN_SPLITS = {"train": 8, "val": 2}


def cifar_images(seed: int = 0, per_batch: int = CIFAR_PER_BATCH):
    """``{batch file stem: (labels (n,) uint8, images (n, 32, 32, 3) uint8)}`` of the fake CIFAR-10."""
    rng = np.random.default_rng(seed)
    stems = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {
        s: (
            rng.integers(0, 10, per_batch).astype(np.uint8),
            rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8),
        )
        for s in stems
    }


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def write_cifar_binary(directory, seed: int = 0, per_batch: int = CIFAR_PER_BATCH) -> str:
    path = os.path.join(directory, "cifar-10-binary.tar.gz")
    with tarfile.open(path, "w:gz") as archive:
        for stem, (labels, images) in cifar_images(seed, per_batch).items():
            planes = images.transpose(0, 3, 1, 2).reshape(len(labels), 3072)
            _add(
                archive,
                f"cifar-10-batches-bin/{stem}.bin",
                np.concatenate([labels[:, None], planes], 1).tobytes(),
            )
        _add(archive, "cifar-10-batches-bin/batches.meta.txt", ("\n".join(CIFAR_NAMES) + "\n\n").encode())
        _add(archive, "cifar-10-batches-bin/readme.html", b"<html></html>")
    return path


def _py2_str(data: bytes) -> bytes:
    """A Python 2 ``str`` as protocol 2 writes it (SHORT_BINSTRING or BINSTRING)."""
    if len(data) < 256:
        return pickle.SHORT_BINSTRING + bytes([len(data)]) + data
    return pickle.BINSTRING + struct.pack("<i", len(data)) + data


def _py2_int(value: int) -> bytes:
    return pickle.BININT1 + bytes([value]) if 0 <= value < 256 else pickle.BININT + struct.pack("<i", value)


def _py2_value(value) -> bytes:
    if isinstance(value, bytes):
        return _py2_str(value)
    if isinstance(value, int):
        return _py2_int(value)
    if isinstance(value, list):
        return pickle.EMPTY_LIST + pickle.MARK + b"".join(_py2_value(v) for v in value) + pickle.APPENDS
    # a 2-D uint8 array, as numpy 1.x under Python 2 pickles it
    shape = pickle.MARK + b"".join(_py2_int(n) for n in value.shape) + pickle.TUPLE
    dtype = (
        pickle.GLOBAL
        + b"numpy\ndtype\n"
        + _py2_str(b"u1")
        + _py2_int(0)
        + _py2_int(1)
        + pickle.TUPLE3
        + pickle.REDUCE
        + pickle.MARK
        + _py2_int(3)
        + _py2_str(b"|")
        + pickle.NONE * 3
        + pickle.BININT
        + struct.pack("<i", -1)
        + pickle.BININT
        + struct.pack("<i", -1)
        + _py2_int(0)
        + pickle.TUPLE
        + pickle.BUILD
    )
    return (
        pickle.GLOBAL
        + b"numpy.core.multiarray\n_reconstruct\n"
        + pickle.GLOBAL
        + b"numpy\nndarray\n"
        + _py2_int(0)
        + pickle.TUPLE1
        + _py2_str(b"b")
        + pickle.TUPLE3
        + pickle.REDUCE
        + pickle.MARK
        + _py2_int(1)
        + shape
        + dtype
        + pickle.NEWFALSE
        + _py2_str(value.tobytes())
        + pickle.TUPLE
        + pickle.BUILD
    )


def py2_pickle(mapping: dict) -> bytes:
    """``mapping`` (bytes keys) pickled the way Python 2's cPickle.dump(..., protocol=2) writes it."""
    body = b"".join(_py2_str(k) + _py2_value(v) for k, v in mapping.items())
    return pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.MARK + body + pickle.SETITEMS + pickle.STOP


def write_cifar_python(directory, seed: int = 0, per_batch: int = CIFAR_PER_BATCH) -> str:
    path = os.path.join(directory, "cifar-10-python.tar.gz")
    with tarfile.open(path, "w:gz") as archive:
        for stem, (labels, images) in cifar_images(seed, per_batch).items():
            batch = {
                b"batch_label": stem.encode(),
                b"labels": [int(v) for v in labels],
                b"data": images.transpose(0, 3, 1, 2).reshape(len(labels), 3072),
                b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
            }
            _add(archive, f"cifar-10-batches-py/{stem}", py2_pickle(batch))
        meta = {
            b"num_cases_per_batch": per_batch,
            b"label_names": [n.encode() for n in CIFAR_NAMES],
            b"num_vis": 3072,
        }
        _add(archive, "cifar-10-batches-py/batches.meta", py2_pickle(meta))
    return path


def _jpeg(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    PIL.Image.fromarray(pixels).save(out, format="JPEG", quality=95)
    return out.getvalue()


def _smooth_image(rng, height: int, width: int) -> np.ndarray:
    """Gradients plus noise: an image whose resizing is not trivial."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def write_celeba(directory, seed: int = 0, counts=CELEBA_SPLITS) -> dict:
    """Writes the five official CelebA files with ``counts`` (train, validation, test) images;
    returns ``{file name: (split, JPEG bytes)}`` in id order."""
    rng = np.random.default_rng(seed)
    files = {f"{i:06d}.jpg": _jpeg(_smooth_image(rng, 218, 178)) for i in range(1, sum(counts) + 1)}
    names = list(files)
    splits = [0] * counts[0] + [1] * counts[1] + [2] * counts[2]
    with zipfile.ZipFile(os.path.join(directory, "img_align_celeba.zip"), "w") as archive:
        for name, data in files.items():
            archive.writestr(f"img_align_celeba/{name}", data)

    def write(name, lines):
        with open(os.path.join(directory, name), "w", newline="") as f:
            f.write("".join(line + "\r\n" for line in lines))

    attrs = (
        "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
        "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair "
        "Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face "
        "Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
        "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
    )
    marks = " ".join(f"{part}_{axis}" for part in ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")
                     for axis in "xy")
    write("list_eval_partition.txt", [f"{n} {s}" for n, s in zip(names, splits)])
    write(
        "list_attr_celeba.txt",
        [str(len(names)), attrs]
        + [
            f"{n} " + " ".join("1" if (i + j) % 3 == 0 else "-1" for j in range(40))
            for i, n in enumerate(names)
        ],
    )
    write(
        "list_landmarks_align_celeba.txt",
        [str(len(names)), marks]
        + [f"{n}  " + "  ".join(str(60 + i + j) for j in range(10)) for i, n in enumerate(names)],
    )
    write("identity_CelebA.txt", [f"{n} {1000 + i}" for i, n in enumerate(names)])
    return {n: (s, files[n]) for n, s in zip(names, splits)}


def write_lsun(directory, seed: int = 0, counts=LSUN_SPLITS) -> dict:
    """Writes ``bedroom_{train,val}_lmdb.zip`` with ``counts`` images; returns ``{split: {id: JPEG}}``."""
    import lmdb

    rng = np.random.default_rng(seed)
    out = {}
    for split, count in counts.items():
        folder = os.path.join(directory, f"bedroom_{split}_lmdb")
        # (height, width): the shorter side 256 as in LSUN, and some larger, to exercise the resize
        sizes = [
            [
                (256, 256 + int(rng.integers(0, 160))),
                (256 + int(rng.integers(1, 100)), 256),
                (300, 340 + int(rng.integers(0, 60))),
            ][i % 3]
            for i in range(count)
        ]
        images = {
            bytes(rng.integers(0, 256, 20, dtype=np.uint8)).hex(): _jpeg(_smooth_image(rng, h, w))
            for h, w in sizes
        }
        with (
            lmdb.open(folder, map_size=sum(map(len, images.values())) * 2 + (1 << 24)) as env,
            env.begin(write=True) as txn,
        ):
            for key, value in images.items():
                txn.put(key.encode(), value)
        with zipfile.ZipFile(folder + ".zip", "w") as archive:
            for name in ("data.mdb", "lock.mdb"):
                archive.write(os.path.join(folder, name), f"bedroom_{split}_lmdb/{name}")
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)
        out[split] = images
    return out
