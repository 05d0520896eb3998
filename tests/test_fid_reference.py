"""FID reference statistics tied to the prepared data they are of (:mod:`kacjax.data.identity`): reused
for the same data only, recomputed for other data, an explicit file of other data refused before any work.

Two preparations of the tiny TFDS dataset under the same name, with different pixels; statistics of
their first 8 images on one device.
"""

import os
import shutil
import time

import jax
import numpy as np
import pytest

from helpers import ROOT, prepare_tiny_images
from kacjax.cli import main as cli
from kacjax.configs.defaults import load_config
from kacjax.data.identity import describe, identity
from kacjax.evaluation import modes
from kacjax.evaluation.metrics import fid
from kacjax.evaluation.reports import fid_reference
from kacjax.runtime import parallel

QUICK = os.path.join(ROOT, "experiments", "cifar10.py:quick")
TINY = ["--config.data.tfds_name=kacjax_tiny_images", "--config.evaluate.batch_size=8",
        "--config.evaluate.kid_features=8"]  # the command line reads the whole split (refused before reading)


def _config(data_dir, **evaluate):
    c = load_config(QUICK)
    c.data.update(tfds_name="kacjax_tiny_images", data_dir=str(data_dir), split="train[:8]")
    c.evaluate.update(batch_size=8, kid_features=8, **evaluate)
    return c


def _fid_stats(config) -> str:
    """The ``fid_stats`` mode as the command line runs it (checked first), on one device."""
    one = jax.devices()[:1]
    modes.check_fid_stats_config(config, parallel.make_mesh(one))
    return modes.fid_stats(config, "unused", devices=one)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """``(data a, data b, cache dir, statistics file of a, of b)``: each made once by ``fid_stats``."""
    root = tmp_path_factory.mktemp("fid_reference")
    a, b = prepare_tiny_images(root / "a"), prepare_tiny_images(root / "b", pixel_seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KACJAX_CACHE_DIR", str(root / "cache"))
        stats_a, stats_b = _fid_stats(_config(a)), _fid_stats(_config(b))
    return a, b, root / "cache", stats_a, stats_b


@pytest.fixture
def computations(monkeypatch, made):
    """Counts the statistics computed (each whole pass over the data), with ``made``'s cache."""
    monkeypatch.setenv("KACJAX_CACHE_DIR", str(made[2]))
    calls = []
    real = fid_reference.accumulate
    monkeypatch.setattr(fid_reference, "accumulate", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_the_identity_names_the_preparation_not_its_place(made, tmp_path):
    a, b = made[:2]
    data = {"name": "cifar10", "tfds_name": "kacjax_tiny_images"}
    ident_a, ident_b = identity(dict(data, data_dir=str(a))), identity(dict(data, data_dir=str(b)))
    assert ident_a["num_examples"] == 40 and ident_a["version"] == "1.0.0" and ident_a["image_size"] == 32
    assert {k for k in ident_a if ident_a[k] != ident_b[k]} == {"fingerprint"}
    shutil.copytree(a, tmp_path / "copy")
    assert identity(dict(data, data_dir=str(tmp_path / "copy"))) == ident_a  # a copy is the same data
    assert identity(dict(data, data_dir=str(a), split="train[:8]"))["num_examples"] == 8
    shard = next((tmp_path / "copy" / "kacjax_tiny_images" / "1.0.0").glob("*.array_record-*"))
    content = bytearray(shard.read_bytes())
    content[-1] ^= 1  # one byte of the index at the end, same size
    shard.write_bytes(bytes(content))
    assert identity(dict(data, data_dir=str(tmp_path / "copy")))["fingerprint"] != ident_a["fingerprint"]
    with pytest.raises(FileNotFoundError, match="tfds build"):
        identity(dict(data, data_dir=str(tmp_path / "nothing")))


def test_two_preparations_of_one_dataset_get_their_own_statistics(made):
    a, b, _, stats_a, stats_b = made
    assert stats_a != stats_b and os.path.dirname(stats_a) == os.path.dirname(stats_b)
    mu_a, _, meta_a = fid.load_statistics(stats_a)
    mu_b, _, meta_b = fid.load_statistics(stats_b)
    assert meta_a["data"] == identity(_config(a).data) and meta_b["data"] == identity(_config(b).data)
    assert meta_a["count"] == meta_b["count"] == 8
    assert np.abs(mu_a - mu_b).max() > 1e-3  # statistics of a were not reused for b


def test_cached_statistics_are_reused_for_their_data_only(made, computations, capsys):
    a, _, cache, stats_a, stats_b = made
    mu_a = fid.load_statistics(stats_a)[0]
    assert _fid_stats(_config(a)) == stats_a and computations == []
    shutil.copy(stats_a, cache / "kept.npz")
    try:
        shutil.copy(stats_b, stats_a)  # a file of other data under a's name: recomputed, with the reason
        capsys.readouterr()
        assert _fid_stats(_config(a)) == stats_a and computations == [1]
        assert "not of the data in use" in capsys.readouterr().out
        np.testing.assert_allclose(fid.load_statistics(stats_a)[0], mu_a, rtol=1e-6, atol=1e-6)
    finally:
        shutil.copy(cache / "kept.npz", stats_a)


def test_an_explicit_file_of_the_data_in_use_is_used_as_is(made, computations):
    a, _, _, stats_a, _ = made
    assert _fid_stats(_config(a, reference_stats=stats_a)) == stats_a and computations == []


def test_an_explicit_file_of_other_data_is_refused_naming_both(made, computations, tmp_path):
    a, b, _, stats_a, _ = made
    mesh = parallel.make_mesh(jax.devices()[:1])
    for check in (modes.check_fid_stats_config, modes.check_evaluate_config):
        with pytest.raises(ValueError, match="evaluate.reference_stats") as refused:
            check(_config(b, reference_stats=stats_a), mesh)
        assert describe(identity(_config(a).data)) in str(refused.value)
        assert describe(identity(_config(b).data)) in str(refused.value)
    mu, sigma, meta = fid.load_statistics(stats_a)
    old = tmp_path / "old.npz"  # written before the data were recorded
    np.savez(old, mu=mu, sigma=sigma, meta=np.asarray(__import__("json").dumps(
        {k: v for k, v in meta.items() if k != "data"})))
    with pytest.raises(ValueError, match="unrecorded data"):
        modes.check_fid_stats_config(_config(a, reference_stats=str(old)), mesh)
    assert computations == []


def _cli(capfd, *args):
    capfd.readouterr()
    start = time.monotonic()
    with pytest.raises(SystemExit) as stop:
        cli.run(["kacjax", "--config", QUICK, *map(str, args)])
    lines = capfd.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(lines) == 1 and lines[0].startswith("kacjax: error: "), lines
    assert time.monotonic() - start < 10
    return lines[0]


def test_the_command_line_refuses_missing_data_and_other_data_before_any_work(made, computations, capfd,
                                                                             tmp_path):
    a, b, cache, stats_a, _ = made
    before = sorted(os.listdir(cache / "fid_stats"))
    line = _cli(capfd, "--workdir", tmp_path / "w", "--mode=fid_stats", *TINY,
                f"--config.data.data_dir={tmp_path / 'nowhere'}")  # even with statistics in the cache
    assert "is not prepared" in line and "tfds build" in line
    line = _cli(capfd, "--workdir", tmp_path / "w", "--mode=evaluate", *TINY, f"--config.data.data_dir={b}",
                f"--config.evaluate.reference_stats={stats_a}")
    whole_b = _config(b)
    del whole_b.data.split
    assert stats_a in line and describe(identity(whole_b.data)) in line
    assert sorted(os.listdir(cache / "fid_stats")) == before and not (tmp_path / "w").exists()
    assert computations == []
