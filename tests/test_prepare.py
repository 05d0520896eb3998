"""kacjax-prepare: fake official files in their exact formats -> TFDS array_record -> read by kacjax and TFDS.

Every pixel and label round-trips; CelebA's crop and LSUN's resize match an independent resampler;
bad sources are refused in one line with nothing written; a rerun does nothing; an interrupted run
leaves nothing that reads as prepared; each dataset's ``:quick`` config trains a step on its data.
"""

import io
import json
import os
import tarfile
import zipfile

from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import official_fakes as fakes
from helpers import ROOT
from kacjax.cli import prepare as prepare_cli
from kacjax.data import build_source
from kacjax.data.prepare import official, prepare, prepared_dir


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A folder of every fake official file, and what they hold."""
    folder = tmp_path_factory.mktemp("official")
    fakes.write_cifar_binary(folder)
    (folder / "python_only").mkdir()
    fakes.write_cifar_python(folder / "python_only")
    celeba = fakes.write_celeba(folder)
    lsun = fakes.write_lsun(folder)
    return {"dir": str(folder), "celeba": celeba, "lsun": lsun}


@pytest.fixture(scope="module")
def prepared(sources, tmp_path_factory):
    """The three datasets prepared by ``kacjax-prepare`` into one data folder."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    for name in ("cifar10", "celeb_a", "lsun/bedroom"):
        prepare(name, sources["dir"], data_dir, log=lambda _: None)
    return data_dir


def _records(path, split):
    import tensorflow_datasets as tfds

    source = tfds.builder_from_directory(path).as_data_source(
        split=split, decoders={"image": tfds.decode.SkipDecoding()}
    )
    return [source[i] for i in range(len(source))]


def pil_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """An independent float resampler with PIL's bilinear filter: a triangle whose support widens by
    the scale when shrinking, horizontal pass first, each pass rounded to uint8."""

    def along(x, size, axis):
        n = x.shape[axis]
        scale = n / size
        support = max(scale, 1.0)
        out = []
        for i in range(size):
            centre = (i + 0.5) * scale
            lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n)
            weights = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) + 0.5 - centre) / support))
            out.append(np.tensordot(weights / weights.sum(), np.take(x, np.arange(lo, hi), axis), (0, axis)))
        return np.clip(np.rint(np.stack(out, axis)), 0, 255)

    return along(along(image.astype(np.float64), width, 1), height, 0).astype(np.uint8)


def test_cifar10_every_pixel_and_label_from_either_archive(sources, prepared, tmp_path):
    other = prepare("cifar10", os.path.join(sources["dir"], "python_only"), str(tmp_path), log=lambda _: None)
    originals = fakes.cifar_images()
    train = [originals[f"data_batch_{i}"] for i in range(1, 6)]
    expected = {
        "train": (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])),
        "test": originals["test_batch"],
    }
    for path in (prepared_dir("cifar10", prepared), other):
        info = json.load(open(os.path.join(path, "dataset_info.json")))
        assert info["fileFormat"] == "array_record" and info["version"] == "3.0.2"
        assert open(os.path.join(path, "label.labels.txt")).read().split() == fakes.CIFAR_NAMES
        for split, (labels, images) in expected.items():
            records = _records(path, split)
            index = [int(r["id"].decode().split("_")[1]) for r in records]
            assert sorted(index) == list(range(len(labels)))
            data_dir = os.path.dirname(os.path.dirname(path))
            x, label = build_source({"name": "cifar10", "data_dir": data_dir, "split": split}).read(
                np.arange(len(records))
            )
            np.testing.assert_array_equal(label, labels[index])
            np.testing.assert_array_equal(x, images[index].astype(np.float32) / np.float32(127.5) - 1)


def test_the_layout_is_tfds_own(prepared):
    """TFDS's registered builders read the folders, with their own features and label names."""
    import tensorflow_datasets as tfds

    for name, counts in (
        ("cifar10", {"train": 15, "test": 3}),
        ("celeb_a", dict(zip(("train", "validation", "test"), fakes.CELEBA_SPLITS))),
        ("lsun/bedroom", {"train": 8, "validation": 2}),
    ):
        builder = tfds.builder(name, data_dir=prepared)
        assert builder.is_prepared() and str(builder.version) == os.path.basename(
            prepared_dir(name, prepared)
        )
        assert {s: i.num_examples for s, i in builder.info.splits.items()} == counts
        ours = tfds.builder_from_directory(prepared_dir(name, prepared)).info.features
        assert ours.to_json() == tfds.builder(name).info.features.to_json()  # TFDS's code, no data
        assert set(tfds.data_source(name, data_dir=prepared, download=False)) == set(counts)
    assert tfds.builder("cifar10", data_dir=prepared).info.features["label"].names == fakes.CIFAR_NAMES


def test_celeba_keeps_the_jpeg_bytes_and_crops_like_an_independent_resampler(sources, prepared):
    files = list(sources["celeba"].items())  # id order: landmarks hold 60 + position
    path = prepared_dir("celeb_a", prepared)
    for split, file_id in (("train", 0), ("validation", 1), ("test", 2)):
        records = _records(path, split)
        position = [int(r["landmarks"]["lefteye_x"]) - 60 for r in records]
        assert sorted(position) == [p for p, (_, (s, _)) in enumerate(files) if s == file_id]
        for record, p in zip(records, position):
            assert record["image"] == files[p][1][1]  # the original JPEG, byte for byte
            assert record["identity"]["Identity_No"] == 1000 + p
            assert record["attributes"]["Bald"] == ((p + 4) % 3 == 0)
        x, label = build_source({"name": "celeb_a", "data_dir": prepared, "split": split}).read(
            np.arange(len(records))
        )
        assert x.shape == (len(records), 64, 64, 3) and not label.any()
        for row, p in zip(x, position):
            decoded = np.asarray(PIL.Image.open(io.BytesIO(files[p][1][1])).convert("RGB"))
            expected = pil_bilinear(decoded[39:179, 19:159], 64, 64)
            got = np.rint((row + 1) * 127.5)
            assert np.abs(got - expected).max() <= 1 and np.abs(got - expected).mean() < 0.05


def test_lsun_keeps_the_bytes_and_resizes_like_an_independent_resampler(sources, prepared):
    path = prepared_dir("lsun/bedroom", prepared)
    for split, stem in (("train", "train"), ("validation", "val")):
        originals = sources["lsun"][stem]
        records = _records(path, split)
        ids = [r["id"].decode() for r in records]
        assert sorted(ids) == sorted(originals)
        assert all(r["image"] == originals[i] for r, i in zip(records, ids))
        x, _ = build_source({"name": "lsun/bedroom", "data_dir": prepared, "split": split}).read(
            np.arange(len(records))
        )
        for row, i in zip(x, ids):
            decoded = np.asarray(PIL.Image.open(io.BytesIO(originals[i])).convert("RGB"))
            height, width = decoded.shape[:2]
            ratio = 256 / min(height, width)
            resized = pil_bilinear(decoded, round(width * ratio), round(height * ratio))
            top, left = (resized.shape[0] - 256) // 2, (resized.shape[1] - 256) // 2
            expected = resized[top : top + 256, left : left + 256]
            got = np.rint((row + 1) * 127.5)
            assert np.abs(got - expected).max() <= 1 and np.abs(got - expected).mean() < 0.05


def test_a_rerun_does_nothing_and_the_scratch_is_gone(sources, prepared, capsys):
    path = prepared_dir("lsun/bedroom", prepared)
    before = {f: os.stat(os.path.join(path, f)).st_mtime_ns for f in os.listdir(path)}
    prepare_cli.run(
        ["lsun/bedroom", "--source", os.path.join(sources["dir"], "missing"), "--data_dir", prepared]
    )
    assert "already prepared" in capsys.readouterr().out
    assert {f: os.stat(os.path.join(path, f)).st_mtime_ns for f in os.listdir(path)} == before
    assert not os.listdir(os.path.join(prepared, "downloads", "extracted"))  # the unpacked LMDBs are removed


def test_checksums_are_tfds_registered_ones():
    """The official checksums agree with those TFDS registers for its own builders."""
    import tensorflow_datasets as tfds

    root = os.path.dirname(tfds.__file__)
    registered = {}
    for table in ("url_checksums/cifar10.txt", "url_checksums/lsun.txt", "datasets/celeb_a/checksums.tsv"):
        for line in open(os.path.join(root, table)):
            url, _, digest, *name = line.split()
            registered[name[0] if name else os.path.basename(url)] = digest
    for name, file in official.FILES.items():
        if name != "cifar-10-python.tar.gz":  # TFDS reads the binary version only
            assert registered[name] == file.sha256, name


def test_the_official_file_is_recognised(sources, monkeypatch):
    path = os.path.join(sources["dir"], "list_eval_partition.txt")
    lines = []
    official.report_checksum(path, lines.append)
    assert "WARNING: not the official" in lines[-1]
    monkeypatch.setitem(
        official.FILES,
        "list_eval_partition.txt",
        official.OfficialFile("list_eval_partition.txt", official.sha256_of(path), "here"),
    )
    official.report_checksum(path, lines.append)
    assert lines[-1].endswith("list_eval_partition.txt (the official file)")


def _refused(capsys, name, source, data_dir):
    with pytest.raises(SystemExit) as stop:
        prepare_cli.run([name, "--source", str(source), "--data_dir", str(data_dir)])
    err = capsys.readouterr().err  # TFDS's progress bars, then the one line
    assert stop.value.code == 2 and err.count("error") == 1 and err.endswith("\n")
    err = err.splitlines()[-1]
    assert err.startswith("kacjax-prepare: error: ")
    assert not (data_dir / name.split("/")[0]).exists() or not any(
        (data_dir / name).glob("[0-9]*")
    )  # nothing prepared
    return err


def _copy_sources(sources, target, names):
    import shutil

    target.mkdir()
    for n in names:
        shutil.copy(os.path.join(sources["dir"], n), target / n)
    return target


CELEBA_FILES = (
    "img_align_celeba.zip",
    "list_eval_partition.txt",
    "list_attr_celeba.txt",
    "list_landmarks_align_celeba.txt",
    "identity_CelebA.txt",
)


def test_missing_and_malformed_sources_are_refused_in_one_line(sources, tmp_path, capsys):
    data_dir = tmp_path / "tfds"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "cifar-10-binary.tar.gz or cifar-10-python.tar.gz not found" in _refused(
        capsys, "cifar10", empty, data_dir
    )
    assert "bedroom_train_lmdb.zip or bedroom_train_lmdb not found" in _refused(
        capsys, "lsun/bedroom", empty, data_dir
    )
    unwritable = _refused(capsys, "cifar10", sources["dir"], Path("/sys/kacjax"))  # /sys refuses root too
    assert "cannot write into /sys/kacjax" in unwritable
    # a cut-short archive
    cut = _copy_sources(sources, tmp_path / "cut", [])
    raw = open(os.path.join(sources["dir"], "cifar-10-binary.tar.gz"), "rb").read()
    (cut / "cifar-10-binary.tar.gz").write_bytes(raw[: len(raw) // 2])
    assert "not a readable .tar.gz" in _refused(capsys, "cifar10", cut, data_dir)
    # a CelebA list without one of the images
    celeba = _copy_sources(sources, tmp_path / "celeba", CELEBA_FILES)
    lines = (celeba / "list_attr_celeba.txt").read_text().splitlines(keepends=True)
    (celeba / "list_attr_celeba.txt").write_text(str(len(lines) - 3) + "\r\n" + "".join(lines[1:-1]))
    assert "list_attr_celeba.txt lacks 1 of the partition's images" in _refused(
        capsys, "celeb_a", celeba, data_dir
    )
    assert not (data_dir / "celeb_a").exists()


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = (
        b"\x80\x02cos\nsystem\nX"
        + len(f"touch {marker}").to_bytes(4, "little")
        + f"touch {marker}".encode()
        + b"\x85R."
    )
    folder = tmp_path / "evil"
    folder.mkdir()
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as archive:
        for member in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(evil)
            archive.addfile(info, io.BytesIO(evil))
    assert "asks for os.system" in _refused(capsys, "cifar10", folder, tmp_path / "tfds")
    assert not marker.exists()


def test_a_bad_image_mid_write_leaves_nothing_prepared_and_a_rerun_cleans_up(sources, tmp_path, capsys):
    celeba = _copy_sources(sources, tmp_path / "celeba", CELEBA_FILES)
    with zipfile.ZipFile(celeba / "img_align_celeba.zip") as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members[sorted(members)[3]] = b"not an image"
    with zipfile.ZipFile(celeba / "img_align_celeba.zip", "w") as archive:
        for n, data in members.items():
            archive.writestr(n, data)
    data_dir = tmp_path / "tfds"
    assert "000004.jpg is not a readable JPEG" in _refused(capsys, "celeb_a", celeba, data_dir)
    assert not any((data_dir / "celeb_a").glob("*2.1.0*")) if (data_dir / "celeb_a").exists() else True
    # a kill leaves TFDS's incomplete folder behind: the next run removes it and prepares
    stale = data_dir / "celeb_a" / "incomplete.ABC123_2.1.0"
    stale.mkdir(parents=True)
    lines = []
    prepare("celeb_a", sources["dir"], str(data_dir), log=lines.append)
    assert not stale.exists() and any("left by an interrupted preparation" in line for line in lines)
    assert (data_dir / "celeb_a" / "2.1.0" / "dataset_info.json").is_file()


# one device, no checkpoint: mostly compiling; cifar10.py:quick trains (8 devices, with checkpoints) on
# prepared data in test_multihost.py (its FID test)
@pytest.mark.slow
@pytest.mark.parametrize("config", ["celeba64.py:quick", "lsun_bedroom256.py:quick"])
def test_quick_config_trains_a_step_on_prepared_data(config, prepared):
    import jax

    from kacjax.cli.modes import validate
    from kacjax.configs.defaults import load_config
    from kacjax.runtime import parallel
    from kacjax.training import setup

    c = load_config(os.path.join(ROOT, "experiments", config))
    c.data.data_dir = prepared
    c.train.batch_size = 2  # the quick config's pipeline and network at its resolution, the least compute
    validate(c, ("train",), devices=jax.devices()[:1])
    run = setup.teacher_run(c, devices=jax.devices()[:1])  # the config's own input over the prepared data
    batch = run.data.batch(0)
    assert batch["x"].shape == (c.train.batch_size, *run.data.shape) and run.data.num_examples == 8
    state, metrics = run.train_step(run.state, parallel.shard_batch(batch, run.mesh))
    assert int(state.step) == 1 and int(metrics["skipped"]) == 0
    assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
