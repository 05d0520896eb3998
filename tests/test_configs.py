"""Every variant of every experiment config: listed here, its data keys overridable from the command
line, its pipeline validated, and its model initialised and taking one jitted training step.

The step runs on one device at batch 1 on random examples of the config's shape: no data is read
(validation reads none either; the image configs' validation needs the FID weights installed).
The full-size image UNets (a minute or more a step on 2 CPU cores) and the image ``:quick`` variants,
which train on prepared data elsewhere, are traced through initialisation and the step instead
(``jax.eval_shape``: every shape, no compilation).
"""

import glob
import math
import os
import re

import jax
import numpy as np
import pytest

from helpers import ROOT
from kacjax.cli import config_values
from kacjax.cli.modes import validate
from kacjax.configs.defaults import load_config
from kacjax.data import Input, example_shape
from kacjax.data.sources import ArraySource
from kacjax.runtime import parallel
from kacjax.training import setup

# each experiment's variants, as its get_config lists them
VARIANTS = {"toy2d": ("", "quick", "flight2", "compare_noise"),
            "digits": ("", "guidance", "flight2", "flight4", "compare_noise", "quick"),
            "cifar10": ("", "distillkac", "quick"), "celeba64": ("", "quick"),
            "lsun_bedroom256": ("", "quick")}
# traced, not run: the full-size UNets (a minute or more a step on 2 cores), the quick image variants,
# which take real steps on prepared data in test_multihost.py (cifar10) and test_prepare.py (the others),
# the noise comparisons, whose base step is the default variant's (validate checks each of their runs),
# digits' quick variant, which trains for real in test_cli.py and test_notebooks.py, and its flights, the
# default variant's step with the flight noise that test_flight.py and test_distill.py run (compiling the
# digits UNet's step is 20 s each here)
TRACED = {"cifar10.py", "cifar10.py:distillkac", "celeba64.py", "lsun_bedroom256.py",
          "cifar10.py:quick", "celeba64.py:quick", "lsun_bedroom256.py:quick", "toy2d.py:compare_noise",
          "digits.py:compare_noise", "digits.py:quick", "digits.py:flight2", "digits.py:flight4"}
SPECS = [f"{name}.py" + (f":{variant}" if variant else "") for name, variants in VARIANTS.items()
         for variant in variants]


def _path(spec: str) -> str:
    return os.path.join(ROOT, "experiments", spec)


def test_every_experiment_and_variant_is_listed():
    """An unknown variant's error lists them all: a new one must be added to VARIANTS (and so tested)."""
    files = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "experiments", "*.py"))}
    assert files == set(VARIANTS)
    for name, variants in VARIANTS.items():
        with pytest.raises(ValueError, match="unknown variant") as err:
            load_config(_path(f"{name}.py:bogus"))
        assert set(re.findall(r"'([^']*)'", str(err.value).split("; use ", 1)[1])) == set(variants), err.value


def _documented_data_keys() -> dict:
    """Dataset name -> the ``data`` keys docs/data.md documents for it (its ``* `key` [default]`` items)."""
    keys, names = {}, ()
    for line in open(os.path.join(ROOT, "docs", "data.md")):
        if line.startswith("#"):
            heading = line.partition(":")[0]
            names = re.findall(r"`([^`]+)`", heading) if line.startswith("### ") else ()
            keys.update({name: set() for name in names})
        for name in names:
            keys[name].update(re.findall(r"^\* `(\w+)` \[", line))
    return keys


def _another(value) -> str:
    """A command-line value of ``value``'s type that differs from it."""
    if isinstance(value, bool):
        return str(not value)
    if isinstance(value, (int, float)):
        return str(value + 1)
    return f"{value}_other" if isinstance(value, str) else "7"


@pytest.mark.parametrize("spec", SPECS)
def test_every_documented_data_key_can_be_overridden(spec):
    documented = _documented_data_keys()
    config = config_values.load(_path(spec))
    assert set(config.data) - {"name"} == documented[config.data.name]
    for key in sorted(documented[config.data.name]):
        overridden = config_values.load(_path(spec), [(f"data.{key}", _another(config.data[key]))])
        assert overridden.data[key] != config.data[key], key
    with pytest.raises(config_values.ConfigError, match="unknown config key data.bogus; section data has"):
        config_values.load(_path(spec), [("data.bogus", "1")])


def test_the_dataset_decides_the_data_keys_whatever_the_order():
    overrides = [("data.target", "rings"), ("data.name", "toy2d")]
    config = config_values.load(_path("toy2d.py"), overrides)
    assert (config.data.target, config.data.mode_std, config.data.random_flip) == ("rings", 0.01, False)
    with pytest.raises(config_values.ConfigError, match="unknown dataset 'mnist'"):
        config_values.load(_path("toy2d.py"), [("data.name", "mnist")])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The three image datasets, prepared by kacjax-prepare from fake official files (validation reads them:
    the FID modes check which data their reference statistics belong to)."""
    import official_fakes

    from kacjax.data.prepare import prepare

    source, prepared = tmp_path_factory.mktemp("official"), tmp_path_factory.mktemp("tfds")
    for write in (official_fakes.write_cifar_binary, official_fakes.write_celeba, official_fakes.write_lsun):
        write(source)
    for name in ("cifar10", "celeb_a", "lsun/bedroom"):
        prepare(name, str(source), str(prepared), log=lambda _: None)
    return str(prepared)


@pytest.mark.parametrize("spec", SPECS)
def test_every_variant_validates_and_takes_a_training_step(spec, data_dir):
    config = config_values.load(_path(spec))
    if "data_dir" in config.data:  # the fake prepared data hold 15 examples: batches of 8 fit them and 8 devices
        config.data.data_dir = data_dir
        config.train.batch_size = config.distill.train.batch_size = 8
    validate(config, config.pipeline)  # against all (8 fake) devices, as the command line does
    shape, num_classes = example_shape(config.data), config.model.get("num_classes")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, *shape)).astype(np.float32)
    data = Input(ArraySource(x, rng.integers(0, num_classes or 1, 1).astype(np.int32), num_classes),
                 global_batch_size=1, seed=0)
    batch = parallel.shard_batch(data.batch(0), parallel.make_mesh(jax.devices()[:1]))

    def one_step(batch):
        run = setup.teacher_run(config, devices=jax.devices()[:1], data=data)
        return run.train_step(run.state, batch)

    if spec in TRACED:
        state, metrics = jax.eval_shape(one_step, batch)
        assert state.step.shape == () and metrics["loss"].shape == metrics["grad_norm"].shape == ()
        return
    state, metrics = one_step(batch)
    assert int(state.step) == 1 and int(metrics["skipped"]) == 0, metrics
    for name in ("loss", "grad_norm"):  # a real update (with warm-up, its learning rate is still 0)
        assert math.isfinite(float(metrics[name])) and float(metrics[name]) > 0, metrics
