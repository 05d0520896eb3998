"""The installed package: the ``kacjax`` command and ``import kacjax`` from a directory of the
user's own, with a config file of the user's own (CI runs this on the built wheel too: ``.ci/oldest``)."""

import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import user_env

USER_CONFIG = '''
from kacjax.configs.defaults import base_config


def get_config(variant=""):
    c = base_config()
    c.pipeline = ("train", "sample")
    c.data = dict(name="toy2d", target="gaussians9", mode_std=0.01)
    c.model = dict(name="mlp", hidden=16, depth=2, time_scale=1.0, num_classes=None)
    c.train.update(batch_size=32, num_steps=6, log_every=3, checkpoint_every=3, warmup_steps=0)
    c.sample.update(method="euler", steps=4, num=16)
    return c
'''


@pytest.mark.compat
def test_the_kacjax_command_trains_and_samples_from_a_directory_of_its_own(tmp_path):
    command = shutil.which("kacjax", path=os.path.dirname(sys.executable))
    assert command, "the kacjax console script is not installed beside this Python"
    (tmp_path / "my_config.py").write_text(USER_CONFIG)
    run = subprocess.run([command, "--config", "my_config.py", "--workdir", "run"], cwd=tmp_path, env=user_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    (samples,) = glob.glob(str(tmp_path / "run" / "samples" / "*.npz"))
    with np.load(samples) as f:
        x = f[f.files[0]]
    assert x.shape == (16, 2) and np.all(np.isfinite(x))
    where = subprocess.run([sys.executable, "-c", "import kacjax; print(kacjax.__file__)"], cwd=tmp_path,
                           env=user_env(), capture_output=True, text=True, check=True).stdout.strip()
    import kacjax

    assert where == kacjax.__file__  # the package this suite tests, found from a directory of the user's own
