"""Several processes forming one JAX cluster on this machine (gloo collectives), and faults.

2 processes x 2 fake CPU devices against 1 process x 4 devices, with the same global batch
and seed: the same teacher, students and report; checkpoints move between the two layouts;
only process 0 writes. A process killed with SIGKILL makes the others exit non-zero through
JAX's coordination service within the heartbeat timeout, and the rerun resumes. A kill in
the middle of checkpoint saves leaves the previous checkpoint usable.
"""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
import pytest

import kacjax
from helpers import ROOT, free_port, user_env

pytestmark = pytest.mark.slow


def _steps(directory) -> list:
    return sorted(int(p) for p in os.listdir(directory) if p.isdigit()) if os.path.isdir(directory) else []


def _launch(workdir, args, *, processes: int, devices: int, heartbeat: int = 100, env_extra=None):
    """Starts the kacjax CLI as ``processes`` processes of ``devices`` fake CPU devices each."""
    env = user_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", **(env_extra or {}))
    cmd = [sys.executable, "-m", "kacjax", *args, "--workdir", str(workdir), "--compilation_cache="]
    if processes == 1:
        return [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    port = free_port()
    return [subprocess.Popen([*cmd, "--distributed", f"--coordinator_address=127.0.0.1:{port}",
                              f"--num_processes={processes}", f"--process_id={i}", f"--heartbeat_timeout={heartbeat}"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in range(processes)]


def _wait(procs) -> list:
    """The outputs of ``procs``, read all at once (none blocks on a full pipe); all must succeed."""
    with ThreadPoolExecutor(len(procs)) as pool:
        outputs = list(pool.map(lambda p: p.communicate(timeout=900)[0], procs))
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-2500:] for o in outputs)
    return outputs


def _run(workdir, args, *, processes: int, devices: int, env_extra=None) -> list:
    return _wait(_launch(workdir, args, processes=processes, devices=devices, env_extra=env_extra))


def _leaves(workdir, stage=0):
    return [np.asarray(x) for x in jax.tree.leaves(kacjax.load(str(workdir), stage).params)]


def _assert_same(a, b, atol=1e-6):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=atol)


TOY = ["--config", "experiments/toy2d.py:quick", "--mode=train", "--config.train.batch_size=64",
       "--config.train.log_every=2", "--config.train.checkpoint_every=2"]


def test_two_processes_train_like_one_and_checkpoints_move_between_layouts(tmp_path):
    """Teacher: 2 x 2 equals 1 x 4; a 2-process checkpoint resumes in 1 process and the other way round.
    (Each pair of runs at once: compiling is most of a run, on one core.)"""
    outputs = _wait(_launch(tmp_path / "multi", [*TOY, "--config.train.num_steps=4"], processes=2, devices=2)
                    + _launch(tmp_path / "single", [*TOY, "--config.train.num_steps=4"], processes=1, devices=4))
    assert "process 0 of 2, 2 local / 4 global devices" in outputs[0]
    assert "teacher step" not in outputs[1]  # only process 0 logs
    _assert_same(_leaves(tmp_path / "multi"), _leaves(tmp_path / "single"))
    lines = (tmp_path / "multi" / "teacher" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]  # one writer
    # resume each layout's step-4 checkpoint in the other layout, to step 8: the same result either
    # way (that a resume equals an uninterrupted run is tests/test_train.py's kill-and-resume test)
    _wait(_launch(tmp_path / "multi", [*TOY, "--config.train.num_steps=8"], processes=1, devices=4)
          + _launch(tmp_path / "single", [*TOY, "--config.train.num_steps=8"], processes=2, devices=2))
    assert kacjax.load(str(tmp_path / "multi")).step == kacjax.load(str(tmp_path / "single")).step == 8
    _assert_same(_leaves(tmp_path / "multi"), _leaves(tmp_path / "single"))


# The digits quick pipeline (teacher, 8 -> 4 -> 1 chain, samples, report) with a small MLP, fast to compile.
DIGITS_MLP = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("digits", {os.path.join(ROOT, "experiments", "digits.py")!r})
digits = importlib.util.module_from_spec(spec)
spec.loader.exec_module(digits)

def get_config():
    c = digits.get_config("quick")
    c.model = dict(name="mlp", hidden=32, depth=2, time_scale=1.0, num_classes=10)
    c.train.update(num_steps=12, batch_size=32, log_every=6, checkpoint_every=6)
    c.distill.update(train_steps=(4, 4))
    c.distill.train.update(batch_size=32, checkpoint_every=4)
    c.evaluate.update(num_samples=40)
    return c
"""


def test_two_processes_distill_and_evaluate_like_one(tmp_path):
    """The whole digits pipeline (teacher, two stages, samples, report) on 2 x 2 and on 1 x 4, both at
    once (compiling is most of it, one core each); parameters agree to float32 rounding of the
    cross-process sums."""
    (tmp_path / "digits_mlp.py").write_text(DIGITS_MLP)
    args = ["--config", str(tmp_path / "digits_mlp.py")]
    _wait(_launch(tmp_path / "multi", args, processes=2, devices=2)
          + _launch(tmp_path / "single", args, processes=1, devices=4))
    for stage in (0, 1, 2):
        _assert_same(_leaves(tmp_path / "multi", stage), _leaves(tmp_path / "single", stage), atol=1e-5)
    multi = json.load(open(tmp_path / "multi" / "nfe_report.json"))["rows"]
    single = json.load(open(tmp_path / "single" / "nfe_report.json"))["rows"]
    assert [r["model"] for r in multi] == [r["model"] for r in single]
    for a, b in zip(multi, single):
        assert a["fd_digits"] == pytest.approx(b["fd_digits"], rel=1e-3)
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-9)
    assert sorted(os.listdir(tmp_path / "multi" / "samples")) == sorted(os.listdir(tmp_path / "single" / "samples"))


def test_two_processes_evaluate_fid_like_one(tmp_path):
    """FID evaluation and reference statistics of CIFAR-10 prepared by kacjax-prepare from fake official
    files, on 2 x 2 and on 1 x 4: each process generates and embeds its own rows and the float64 sums
    are added across processes. (The CIFAR-10 quick config's training step on prepared data.)"""
    import shutil

    from official_fakes import write_cifar_binary

    from kacjax.data.prepare import prepare

    (tmp_path / "official").mkdir()
    write_cifar_binary(tmp_path / "official")
    data_dir = tmp_path / "tfds"
    prepare("cifar10", str(tmp_path / "official"), str(data_dir), log=lambda _: None)
    args = ["--config", "experiments/cifar10.py:quick", f"--config.data.data_dir={data_dir}"]
    _run(tmp_path / "single", [*args, "--mode=train"], processes=1, devices=4)
    shutil.copytree(tmp_path / "single", tmp_path / "multi")
    # both at once, each making its own reference statistics
    _wait([proc for name, processes, devices in (("single", 1, 4), ("multi", 2, 2))
           for proc in _launch(tmp_path / name, [*args, "--mode=evaluate"], processes=processes, devices=devices,
                               env_extra={"KACJAX_CACHE_DIR": str(tmp_path / f"cache_{name}")})])
    single = json.load(open(tmp_path / "single" / "fid_report.json"))["rows"]
    multi = json.load(open(tmp_path / "multi" / "fid_report.json"))["rows"]
    assert len(single) == len(multi) == 1 and multi[0]["num_samples"] == 16
    assert multi[0]["fid"] == pytest.approx(single[0]["fid"], rel=1e-4)
    assert multi[0]["kid"] == pytest.approx(single[0]["kid"], rel=1e-3, abs=1e-5)
    stats = [np.load(tmp_path / f"cache_{name}" / "fid_stats" / os.listdir(tmp_path / f"cache_{name}" / "fid_stats")[0])
             for name in ("single", "multi")]
    np.testing.assert_allclose(stats[0]["mu"], stats[1]["mu"], rtol=1e-5, atol=1e-6)


def test_a_killed_process_stops_the_others_and_the_rerun_resumes(tmp_path):
    """SIGKILL of process 1: process 0 exits non-zero within the heartbeat timeout (10 s here,
    well inside 2 minutes) instead of hanging; rerunning resumes from the last checkpoint."""
    args = [*TOY, "--config.train.num_steps=100000", "--config.train.checkpoint_every=10",
            "--config.train.log_every=10"]
    procs = _launch(tmp_path, args, processes=2, devices=2, heartbeat=10)
    teacher = tmp_path / "teacher"
    deadline = time.time() + 300
    while time.time() < deadline and not _steps(teacher) and all(p.poll() is None for p in procs):
        time.sleep(0.5)
    assert _steps(teacher), "no checkpoint before the kill:\n" + procs[0].stdout.read()[-2000:]
    procs[1].send_signal(signal.SIGKILL)
    killed = time.time()
    try:
        procs[0].wait(timeout=120)
    finally:
        for p in procs:
            p.kill()
    assert procs[0].returncode != 0
    print(f"process 0 exited with status {procs[0].returncode} {time.time() - killed:.1f} s after the kill")
    assert time.time() - killed < 120
    last = _steps(teacher)[-1]
    _run(tmp_path, [*TOY, f"--config.train.num_steps={last + 10}", "--config.train.checkpoint_every=10"],
         processes=2, devices=2)
    assert _steps(teacher)[-1] == last + 10
    logged = [json.loads(line)["step"] for line in (teacher / "metrics.jsonl").read_text().splitlines()]
    assert logged == sorted(set(logged)) and logged[-1] == last + 10  # each step logged once, in order


def test_kills_during_checkpoint_saves_leave_a_usable_checkpoint(tmp_path):
    """A checkpoint every step keeps a save in flight almost all the time; SIGKILL at three
    moments, then every time the newest checkpoint loads and the rerun finishes where a run
    without kills ends."""
    args = [*TOY, "--config.train.num_steps=60", "--config.train.checkpoint_every=1",
            "--config.train.keep_checkpoints=2"]
    teacher = tmp_path / "kills" / "teacher"
    for delay in (0.3, 0.9, 1.7):
        (proc,) = _launch(tmp_path / "kills", args, processes=1, devices=1)
        while proc.poll() is None and not _steps(teacher):
            time.sleep(0.05)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert kacjax.load(str(tmp_path / "kills")).step in _steps(teacher)  # loads, falling back if need be
    _run(tmp_path / "kills", args, processes=1, devices=1)
    _run(tmp_path / "clean", args, processes=1, devices=1)
    _assert_same(_leaves(tmp_path / "kills"), _leaves(tmp_path / "clean"))
