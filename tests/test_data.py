"""Input pipelines: a tiny TFDS dataset built offline (no TensorFlow), digits, toy2d."""

import json
import shutil
import time

import numpy as np
import PIL.Image
import pytest

from helpers import N_TINY, prepare_tiny_images
from kacjax.data import build_input, image_ops, prefetch, sample_toy2d, toy2d_modes

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return prepare_tiny_images(tmp_path_factory.mktemp("tfds"))


def tiny_cfg(data_dir, **overrides):
    return {"name": "cifar10", "tfds_name": "kacjax_tiny_images", "data_dir": str(data_dir), **overrides}


def ids(batch):
    """Example ids from channel 0 of a batch of tiny images."""
    return np.rint((batch["x"][:, 0, 0, 0] + 1.0) * 127.5).astype(int)


def flipped(batch):
    """Rows whose channel-1 ramp falls left to right."""
    return batch["x"][:, 0, 0, 1] > batch["x"][:, 0, -1, 1]


def test_tiny_tfds_values_shapes_dtypes(tiny_dir):
    data = build_input(tiny_cfg(tiny_dir), global_batch_size=8, seed=0)
    assert (data.shape, data.num_classes, data.num_examples, data.steps_per_epoch) == ((32, 32, 3), 10, 40, 5)
    batch = data.batch(0)
    assert batch["x"].shape == (8, 32, 32, 3) and batch["x"].dtype == np.float32
    assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
    assert batch["x"].min() >= -1.0 and batch["x"].max() <= 1.0
    np.testing.assert_array_equal(batch["label"], ids(batch) % 10)


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_shards_partition_the_global_batch(tiny_dir, process_count):
    whole = build_input(tiny_cfg(tiny_dir), global_batch_size=8, seed=3)
    shards = [
        build_input(tiny_cfg(tiny_dir), global_batch_size=8, seed=3,
                    process_index=p, process_count=process_count)
        for p in range(process_count)
    ]
    assert shards[0].local_batch_size == 8 // process_count
    for step in (0, 4, 7):
        parts = [shard.batch(step) for shard in shards]
        part_ids = np.concatenate([ids(part) for part in parts])
        assert len(set(part_ids)) == 8  # disjoint
        np.testing.assert_array_equal(np.concatenate([part["x"] for part in parts]), whole.batch(step)["x"])


def test_each_epoch_visits_examples_at_most_once(tiny_dir):
    data = build_input(tiny_cfg(tiny_dir), global_batch_size=8, seed=1)
    epochs = [np.concatenate([ids(data.batch(e * 5 + j)) for j in range(5)]) for e in range(2)]
    for seen in epochs:
        assert sorted(seen) == list(range(N_TINY))  # full coverage, no repeats
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled
    data = build_input(tiny_cfg(tiny_dir), global_batch_size=12, seed=1)
    seen = np.concatenate([ids(data.batch(j)) for j in range(data.steps_per_epoch)])
    assert data.steps_per_epoch == 3 and len(set(seen)) == 36


def test_batches_are_deterministic(tiny_dir):
    first = build_input(tiny_cfg(tiny_dir), global_batch_size=8, seed=5)
    again = build_input(tiny_cfg(tiny_dir), global_batch_size=8, seed=5)
    other = build_input(tiny_cfg(tiny_dir), global_batch_size=8, seed=6)
    for step in (0, 9, 123):
        np.testing.assert_array_equal(first.batch(step)["x"], again.batch(step)["x"])
    assert not np.array_equal(ids(first.batch(0)), ids(other.batch(0)))


def test_flips_happen_and_are_deterministic(tiny_dir):
    data = build_input(tiny_cfg(tiny_dir), global_batch_size=8, seed=0)
    flips = np.concatenate([flipped(data.batch(step)) for step in range(10)])
    assert 0.25 < flips.mean() < 0.75
    np.testing.assert_array_equal(flipped(data.batch(3)), flipped(data.batch(3)))
    plain = build_input(tiny_cfg(tiny_dir, random_flip=False), global_batch_size=8, seed=0)
    assert not any(flipped(plain.batch(step)).any() for step in range(10))
    np.testing.assert_array_equal(ids(plain.batch(3)), ids(data.batch(3)))
    mirrored = flipped(data.batch(3))[:, None, None, None]  # flipped rows are exact mirror images
    unflipped = plain.batch(3)["x"]
    np.testing.assert_array_equal(data.batch(3)["x"], np.where(mirrored, unflipped[:, :, ::-1], unflipped))


def test_iterate_prefetches_the_same_batches(tiny_dir):
    data = build_input(tiny_cfg(tiny_dir), global_batch_size=8, seed=0)
    stream = data.iterate(3)
    for step in (3, 4, 5):
        np.testing.assert_array_equal(next(stream)["x"], data.batch(step)["x"])
    stream.close()


def test_prefetch_reraises_errors():
    def produce(step):
        if step == 2:
            raise RuntimeError("boom")
        return step

    stream = prefetch.prefetch(produce, 0)
    assert [next(stream), next(stream)] == [0, 1]
    with pytest.raises(RuntimeError, match="boom"):
        next(stream)


def test_missing_dataset_fails_fast_with_instructions(tmp_path):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as error:
        build_input({"name": "cifar10", "data_dir": str(tmp_path)}, global_batch_size=8, seed=0)
    assert time.monotonic() - start < 5.0
    message = str(error.value)
    assert str(tmp_path) in message
    assert f"kacjax-prepare cifar10 --source DIR_OF_OFFICIAL_FILES --data_dir {tmp_path}" in message


def test_image_size_mismatches_are_errors(tiny_dir):
    with pytest.raises(ValueError, match="image_size 64"):
        build_input(tiny_cfg(tiny_dir, image_size=64), global_batch_size=8, seed=0)
    with pytest.raises(ValueError, match=r"\(32, 32, 3\).*\(218, 178, 3\)"):
        build_input(tiny_cfg(tiny_dir, name="celeb_a"), global_batch_size=8, seed=0)


def test_bad_batch_layouts_and_keys_are_errors(tiny_dir):
    with pytest.raises(ValueError, match="multiple of process_count"):
        build_input(tiny_cfg(tiny_dir), global_batch_size=10, seed=0, process_index=0, process_count=4)
    with pytest.raises(ValueError, match="exceeds the dataset size"):
        build_input(tiny_cfg(tiny_dir), global_batch_size=64, seed=0)
    with pytest.raises(ValueError, match="unknown data_cfg keys"):
        build_input(tiny_cfg(tiny_dir, ranom_flip=True), global_batch_size=8, seed=0)


def test_celeba_and_lsun_preprocessing():
    celeb = np.zeros((218, 178, 3), np.uint8)
    celeb[39:179, 19:159] = 255  # exactly the 140x140 centre crop
    out = np.asarray(image_ops.celeba_crop_resize(PIL.Image.fromarray(celeb), 64))
    assert out.shape == (64, 64, 3) and out.min() == 255
    bedroom = PIL.Image.fromarray(np.zeros((300, 400, 3), np.uint8))
    assert np.asarray(image_ops.shorter_side_centre_crop(bedroom, 256)).shape == (256, 256, 3)


def test_digits():
    data = build_input({"name": "digits"}, global_batch_size=128, seed=0, process_index=1, process_count=2)
    assert (data.num_examples, data.num_classes, data.shape) == (1797, 10, (8, 8, 1))
    batch = data.batch(0)
    assert batch["x"].shape == (64, 8, 8, 1) and batch["x"].dtype == np.float32
    assert batch["x"].min() == -1.0 and batch["x"].max() == 1.0
    assert batch["label"].dtype == np.int32 and set(batch["label"]) <= set(range(10))
    sizes = [build_input({"name": "digits", "split": s}, global_batch_size=8, seed=0).num_examples
             for s in ("train", "test")]
    assert sizes == [1617, 180]


def test_toy2d_gaussians9_concentrates_at_modes():
    points = sample_toy2d("gaussians9", 0, 9000, mode_std=0.01)
    assert points.shape == (9000, 2) and points.dtype == np.float32
    distances = np.linalg.norm(points[:, None] - toy2d_modes("gaussians9")[None], axis=-1)
    assert distances.min(axis=1).max() < 0.07
    counts = np.bincount(distances.argmin(axis=1), minlength=9)
    assert counts.min() > 850 and counts.max() < 1150
    radii = np.linalg.norm(sample_toy2d("rings", 0, 1000, mode_std=0.01), axis=-1)
    assert np.minimum(abs(radii - 0.5), abs(radii - 1.0)).max() < 0.07
    board = sample_toy2d("checkerboard", 0, 1000)
    assert np.abs(board).max() <= 1.0
    cells = np.floor((board + 1.0) / 0.5).astype(int)
    assert (cells.sum(axis=1) % 2 == 0).all() and len({tuple(c) for c in cells}) == 8


def test_toy2d_input():
    cfg = {"name": "toy2d", "target": "gaussians9", "mode_std": 0.01}
    whole = build_input(cfg, global_batch_size=16, seed=0)
    assert (whole.shape, whole.num_classes, whole.num_examples) == ((2,), None, None)
    parts = [build_input(cfg, global_batch_size=16, seed=0, process_index=p, process_count=2).batch(7)
             for p in range(2)]
    np.testing.assert_array_equal(np.concatenate([part["x"] for part in parts]), whole.batch(7)["x"])
    assert not np.array_equal(whole.batch(7)["x"], whole.batch(8)["x"])
    np.testing.assert_array_equal(whole.batch(7)["label"], np.zeros(16, np.int32))
    with pytest.raises(ValueError, match="random_flip"):
        build_input({**cfg, "random_flip": True}, global_batch_size=16, seed=0)


def _with_format(tiny_dir, tmp_path, **info_fields):
    shutil.copytree(tiny_dir / "kacjax_tiny_images", tmp_path / "kacjax_tiny_images")
    info_path = tmp_path / "kacjax_tiny_images" / "1.0.0" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info.update(info_fields)
    info_path.write_text(json.dumps(info))
    return tmp_path


def test_tfrecord_data_is_rejected_with_the_convert_command(tiny_dir, tmp_path):
    tfrecord = tiny_cfg(_with_format(tiny_dir, tmp_path, fileFormat="tfrecord"))
    with pytest.raises(ValueError, match="convert_format --dataset_version_dir=.* --out_file_format=array_record"):
        build_input(tfrecord, global_batch_size=8, seed=0)


def test_data_converted_by_tfds_convert_format_is_read(tiny_dir, tmp_path):
    """What `tfds convert_format` leaves: fileFormat tfrecord, array_record listed as an alternative."""
    converted = _with_format(tiny_dir, tmp_path, fileFormat="tfrecord",
                             alternativeFileFormats=["array_record"])
    data = build_input(tiny_cfg(converted), global_batch_size=8, seed=0)
    original = build_input(tiny_cfg(tiny_dir), global_batch_size=8, seed=0)
    np.testing.assert_array_equal(data.batch(3)["x"], original.batch(3)["x"])
