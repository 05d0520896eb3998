"""Every door of the command line: a command that cannot run prints one line, exits 2 and writes nothing;
one run per workdir (a live run refuses a second, a killed one does not); a full disk names the intact step.

The table runs the CLI's entry function in this process (hundreds of cases in seconds); a few real
``python -m kacjax`` runs show that the command itself behaves the same.
"""

import errno
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from ml_collections import ConfigDict
from orbax.checkpoint import handlers

import kacjax
from helpers import ROOT, user_env
from kacjax.cli import main as cli
from kacjax.configs.defaults import load_config
from kacjax.runtime import logs
from kacjax.training import workdir_lock
from kacjax.training.rundir import LOCK_FILE, latest_step

EXPERIMENTS = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.py")))
BAD = ("nan", "inf", "-2", "abc")
# a tiny teacher: the CLI trains it in seconds
TINY = ["--config", os.path.join(ROOT, "experiments", "toy2d.py:quick"), "--mode=train", "--config.model.hidden=16",
        "--config.model.depth=1", "--config.train.batch_size=16", "--config.train.warmup_steps=0",
        "--config.train.log_every=1", "--config.train.checkpoint_every=2"]


def _numeric_keys(config, prefix=""):
    """``(key, default)`` of every number and every tuple of numbers in ``config``."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for name, value in config.items():
        key = f"{prefix}{name}"
        if isinstance(value, ConfigDict):
            yield from _numeric_keys(value, f"{key}.")
        elif number(value) or (isinstance(value, tuple) and value and all(map(number, value))):
            yield key, value


def _override(key, default, bad):
    """``--config.key=bad``; for a tuple, its first element replaced by ``bad``."""
    if not isinstance(default, tuple):
        return f"--config.{key}={bad}"
    elements = ["'abc'" if bad == "abc" else bad, *map(repr, default[1:])]
    return f"--config.{key}=({','.join(elements)},)"


def _table():
    for path in EXPERIMENTS:
        name = os.path.basename(path)
        try:
            config = load_config(path)
        except Exception as err:  # noqa: BLE001 - reported by the case below
            yield pytest.param(path, None, repr(err), id=f"{name}-loads")
            continue
        for key, default in _numeric_keys(config):
            for bad in BAD:
                yield pytest.param(path, key, _override(key, default, bad), id=f"{name}-{key}={bad}")


def _cli(capfd, *args):
    """``(exit status, stderr, seconds)`` of the command line run in this process."""
    capfd.readouterr()
    start = time.monotonic()
    with pytest.raises(SystemExit) as stop:
        cli.run(["kacjax", *map(str, args)])
    return stop.value.code, capfd.readouterr().err, time.monotonic() - start


def _assert_refused(code, err, seconds, workdir=None, *, limit=10):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("kacjax: error: "), (code, err)
    assert "Traceback" not in err and seconds < limit, (err, seconds)
    assert workdir is None or not os.path.exists(workdir), os.listdir(workdir)
    return lines[0]


@pytest.mark.parametrize("source,match", [
    ("def get_config(:\n", "bad.py: line 1: invalid syntax"),
    ("def get_config():\n    raise RuntimeError('boom')\n", "bad.py: RuntimeError: boom"),
    ("x = 1\n", "bad.py defines no get_config(variant='')"),
    ("def get_config():\n    return {'train': {}}\n", "get_config() returned a dict; it must return an ml_collections"),
])
def test_a_config_file_that_does_not_load_is_refused_in_one_line(capfd, tmp_path, source, match):
    (tmp_path / "bad.py").write_text(source)
    workdir = tmp_path / "w"
    line = _assert_refused(*_cli(capfd, "--config", tmp_path / "bad.py", "--workdir", workdir), workdir)
    assert match in line, line


@pytest.mark.parametrize("path,key,override", list(_table()))
def test_every_bad_number_of_every_experiment_is_refused_in_one_line(capfd, tmp_path, path, key, override):
    assert key is not None, f"{path} does not load: {override}"
    workdir = tmp_path / "w"
    line = _assert_refused(*_cli(capfd, "--config", path, "--workdir", workdir, override), workdir)
    assert key in line, line


@pytest.mark.parametrize("args,match", [
    (["--config", "experiments/digits.py", "--config.train.bogus=3"],
     "unknown config key train.bogus; section train has b1, b2, batch_size, checkpoint_every,"),
    (["--config", "experiments/digits.py", "--config.trian.batch_size=3"],
     "the config has compare_noise, data, distill, evaluate"),
    (["--config", "experiments/digits.py", "--config.distill.train=3"], "distill.train is a section"),
    (["--config", "experiments/nope.py"], "no config file experiments/nope.py; experiments/ holds celeba64.py"),
    (["--config", "experiments/digits.py:bogus"], "experiments/digits.py: unknown variant 'bogus'; use ''"),
    (["--config", "experiments/digits.py", "--config.distill.student_steps=abc"], "holds integers like its default"),
    (["--config", "experiments/digits.py", "--config.distill.w_range=(0,nan)"], "distill.w_range[1] must be a finite"),
    (["--config", "experiments/digits.py", "--config.sample.stage=-2"], "sample.stage must be >= 0 or -1, got -2"),
    (["--config", "experiments/lsun_bedroom256.py:quick", "--config.model.ch_mult=(1,1,2,2,2,2)"],
     "GroupNorm up_64x64_block1/norm_in: 48 channels are not divisible by min(32, 48) = 32 groups; change model.ch"),
    (["--config", "experiments/cifar10.py:quick", "--config.model.attn_resolutions=(7,)"],
     "bad model config: attn_resolutions [7] are not present for 32x32 inputs"),
    (["--config", "experiments/digits.py", "--config.seed=18446744073709551616"], "seed must be below 4294967296"),
    (["--config", "experiments/digits.py", "--mode=sample", "--config.sample.w=1e38"],
     "sample.w must be below 1000.0, got 1e+38"),
    (["--config", "experiments/digits.py:guidance", "--config.distill.w_range=(0.0,5000.0)"],
     "distill.w_range[1] must be below 1000.0"),
    (["--config", "experiments/digits.py", "--config.sample.labels=99"],
     "sample.labels must be -1 (cycle the classes) or a class in [0, 10), got 99"),
    (["--config", "experiments/digits.py", "--config.train.num_steps=0"], "train.num_steps must be >= 1, got 0"),
    (["--config", "experiments/digits.py", "--config.model.ch_mult=(1,0)"], "ch_mult[1] must be an integer >= 1"),
    (["--config", "experiments/digits.py", "--config.model.num_heads=0"], "num_heads must be an integer >= 1"),
    (["--config", "experiments/digits.py", "--config.model.ch=0"], "ch must be an integer >= 1, got 0"),
    (["--config", "experiments/digits.py", "--config.model.num_res_blocks=-1"],
     "model.num_res_blocks must be >= 0, got -1"),
    (["--config", "experiments/toy2d.py", "--config.evaluate.methods=()"], "evaluate.methods must name at least one"),
    (["--config", "experiments/toy2d.py", "--mode=compare_guidance"], "compare_guidance scores digits"),
    (["--config", "experiments/digits.py", "--config.model.num_classes=3"], "the dataset has 10 classes"),
    (["--config", "experiments/digits.py", "--config.model.dtype=int32"], "dtype must be a float type"),
    (["--config", "experiments/digits.py", "--config.train.batch_size=4096"], "exceeds the dataset's 1797 examples"),
    (["--config", "experiments/digits.py", "--mode=distill"], "no teacher checkpoint in"),
    (["--config", "experiments/digits.py", "--mode=sample"], "no teacher checkpoint in"),
    (["--config", "experiments/digits.py", "--mode=bogus"], "flag --mode=bogus"),
    (["--config", "experiments/digits.py", "--bogus=1"], "Unknown command line flag 'bogus'"),
    (["--config", "experiments/digits.py", "extra"], "unexpected arguments ['extra']: kacjax takes only flags"),
    ([], "Flag --config must have a value"),
])
def test_bad_flags_and_configs_are_refused_in_one_line(capfd, tmp_path, monkeypatch, args, match):
    monkeypatch.chdir(ROOT)
    workdir = tmp_path / "w"
    assert match in _assert_refused(*_cli(capfd, *args, "--workdir", workdir), workdir)


def test_a_workdir_that_is_a_file_or_not_writable_is_refused(capfd, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    line = _assert_refused(*_cli(capfd, *TINY, "--workdir", afile))
    assert f"workdir {afile} is a file, not a directory" in line and afile.read_text() == "mine"
    line = _assert_refused(*_cli(capfd, *TINY, "--workdir", afile / "w"))
    assert f"workdir {afile / 'w'} cannot be written" in line
    assert "the workdir is empty" in _assert_refused(*_cli(capfd, *TINY, "--workdir="))
    assert os.listdir(tmp_path) == ["afile"]
    if os.geteuid() == 0:  # root writes into read-only directories, but not where the kernel refuses
        readonly, reason = "/sys/kacjax-test-workdir", "Operation not permitted"
    else:
        readonly, reason = tmp_path / "readonly", "Permission denied"
        readonly.mkdir(mode=0o500)
    line = _assert_refused(*_cli(capfd, *TINY, "--workdir", readonly))
    assert f"workdir {readonly} cannot be written ({reason}" in line
    assert not os.path.exists(readonly) or not os.listdir(readonly)


@pytest.mark.parametrize("args,match", [
    (["--config", "experiments/nope.py"], "no config file experiments/nope.py"),
    (["--config", "experiments/digits.py:bogus"], "unknown variant 'bogus'"),
    (["--config", "experiments/digits.py", "--config.train.bogus=3"], "unknown config key train.bogus; section train"),
])
def test_the_real_command_refuses_in_one_line(tmp_path, args, match):
    """The flag-parsing doors of ``python -m kacjax`` itself."""
    workdir = tmp_path / "w"
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "kacjax", *args, "--workdir", str(workdir)], cwd=ROOT,
                         env=user_env(), capture_output=True, text=True, timeout=120)
    assert match in _assert_refused(run.returncode, run.stderr, time.monotonic() - start, workdir)


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    """A workdir whose teacher the command line trained to step 2 (copy it before writing)."""
    workdir = tmp_path_factory.mktemp("tiny") / "w"
    with pytest.raises(SystemExit) as stop:
        cli.run(["kacjax", *TINY, "--workdir", str(workdir), "--config.train.num_steps=2"])
    assert stop.value.code is None
    return workdir


def _wait_for_holder(workdir, proc, log):
    lock = os.path.join(workdir, LOCK_FILE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(lock) and f'"pid": {proc.pid}' in open(lock).read():
            return
        time.sleep(0.1)
    log.seek(0)
    raise AssertionError(f"the holder never took the lock:\n{log.read()[-3000:]}")


def test_a_live_run_holds_its_workdir_a_killed_one_does_not_and_readers_never_wait(capfd, tmp_path, tiny_teacher):
    workdir = tmp_path / "w"
    shutil.copytree(tiny_teacher, workdir)
    log = open(tmp_path / "holder.log", "w+")
    holder = subprocess.Popen([sys.executable, "-m", "kacjax", *TINY, "--workdir", str(workdir),
                               "--config.train.num_steps=1000000", "--config.train.checkpoint_every=1000000"],
                              cwd=ROOT, env=user_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_holder(workdir, holder, log)
        line = _assert_refused(*_cli(capfd, *TINY, "--workdir", workdir, "--config.train.num_steps=2"))
        assert f"is in use by another run (host {socket.gethostname()}, process {holder.pid}, since " in line
        with pytest.raises(workdir_lock.WorkdirError, match=f"process {holder.pid}"):  # Python's door too
            kacjax.run(kacjax.load_config(TINY[1]), str(workdir), ("train",))
        assert kacjax.load(str(workdir)).step == 2  # a reader does not lock
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    code, err, _ = _cli(capfd, *TINY, "--workdir", workdir, "--config.train.num_steps=2")
    assert code is None, err
    assert json.load(open(workdir / LOCK_FILE))["pid"] == os.getpid()


def test_a_stale_lock_file_does_not_block_and_only_process_0_holds(tmp_path, monkeypatch, capsys):
    lock = tmp_path / LOCK_FILE
    lock.write_text(json.dumps({"host": "lost-host", "pid": 1, "since": "yesterday"}))
    with workdir_lock.hold(str(tmp_path)):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    with monkeypatch.context() as patch:  # a filesystem without locks: a warning, and the run goes on
        patch.setattr(workdir_lock.fcntl, "flock", no_locks)
        with workdir_lock.hold(str(tmp_path)):
            assert "has no file locks" in capsys.readouterr().err
    monkeypatch.setattr(workdir_lock.jax, "process_index", lambda: 1)
    with workdir_lock.hold(str(tmp_path / "other")):
        assert not (tmp_path / "other").exists()  # process 0 creates and holds it
    monkeypatch.setattr(workdir_lock.jax, "process_count", lambda: 2)
    monkeypatch.setattr(workdir_lock.parallel, "process_sum", lambda arrays: {"refused": 1})
    with pytest.raises(workdir_lock.WorkdirError, match="process 0 could not hold the workdir"):
        with workdir_lock.hold(str(tmp_path / "other")):
            pass


def test_deleting_the_lock_file_does_not_let_a_second_run_in(tmp_path):
    """The workdir itself is locked too: with ``run.lock`` deleted mid-run, a second run is still refused."""
    with workdir_lock.hold(str(tmp_path)):
        os.remove(tmp_path / LOCK_FILE)
        with pytest.raises(workdir_lock.WorkdirError, match="in use by another run, whose run.lock was deleted"):
            with workdir_lock.hold(str(tmp_path)):
                pass
    with workdir_lock.hold(str(tmp_path)):  # released with the run
        pass


def test_a_report_cut_short_by_a_full_disk_leaves_no_file_half_written_and_no_json_to_reuse(tmp_path):
    """A writer that fails half way (a full disk) leaves the files written before it whole, its own file
    absent (not empty), nothing partial, and no ``name.json``, which is what reports reuse."""
    from kacjax.evaluation.artifacts import write_report
    from kacjax.training.rundir import RunDir

    def full(path):
        with open(path, "w") as f:
            f.write("half a page")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    (tmp_path / "page.md").write_text("the last complete page")
    with pytest.raises(OSError):
        write_report(RunDir(str(tmp_path)), "r", {"x": 1}, table=([{"a": 1}], ["a"]), files={"page.md": full})
    assert sorted(os.listdir(tmp_path)) == ["page.md", "r.csv", "r.md"]
    assert (tmp_path / "page.md").read_text() == "the last complete page"
    write_report(RunDir(str(tmp_path)), "r", {"x": 1}, files={"page.md": lambda p: open(p, "w").write("new")})
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": 1} and (tmp_path / "page.md").read_text() == "new"


def test_a_full_disk_names_the_intact_step_and_the_rerun_resumes(capfd, tmp_path, monkeypatch, tiny_teacher):
    """Resumed at step 2, the save of step 4 finds the disk full in Orbax's save thread, as a real one would."""

    async def full(self, item, directory):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))

    workdir = tmp_path / "w"
    shutil.copytree(tiny_teacher, workdir)
    with monkeypatch.context() as patch:
        patch.setattr(handlers.JsonCheckpointHandler, "_save_fn", full)
        line = _assert_refused(*_cli(capfd, *TINY, "--workdir", workdir, "--config.train.num_steps=4"), limit=120)
    assert line == (f"kacjax: error: disk full while saving a checkpoint in {workdir / 'teacher'}: step 2 is the "
                    "last intact one; free space, then rerun to resume")
    code, err, _ = _cli(capfd, *TINY, "--workdir", workdir, "--config.train.num_steps=2")  # resumes at step 2
    assert code is None, err
    assert latest_step(str(workdir / "teacher")) == 2 and kacjax.load(str(workdir)).step == 2


def test_a_checkpoint_folder_made_unwritable_mid_run_is_one_line_and_the_rerun_resumes(capfd, tmp_path, monkeypatch,
                                                                                         tiny_teacher):
    """Resumed at step 2, the save of step 4 cannot move its finished step into place (the folder made
    read-only mid-run): one line naming the intact step, none of Orbax's tracebacks; the rerun resumes."""
    rename = os.rename

    def read_only(src, dst, *args, **kwargs):
        if ".orbax-checkpoint-tmp" in str(src):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(src))
        return rename(src, dst, *args, **kwargs)

    workdir = tmp_path / "w"
    shutil.copytree(tiny_teacher, workdir)
    with monkeypatch.context() as patch:
        patch.setattr(os, "rename", read_only)
        line = _assert_refused(*_cli(capfd, *TINY, "--workdir", workdir, "--config.train.num_steps=4"), limit=120)
    assert line == (f"kacjax: error: cannot write a checkpoint in {workdir / 'teacher'} "
                    f"({os.strerror(errno.EPERM)}): step 2 is the last intact one; make it writable, then rerun "
                    "to resume")
    code, err, _ = _cli(capfd, *TINY, "--workdir", workdir, "--config.train.num_steps=4")  # resumes at step 2
    assert code is None, err
    assert latest_step(str(workdir / "teacher")) == 4


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, ("disk full", "free space")),
                                         (errno.EACCES, ("cannot write", "make it writable"))])
def test_a_full_disk_or_an_unwritable_folder_under_the_metrics_is_one_line_too(capfd, tmp_path, monkeypatch,
                                                                               tiny_teacher, code, words):
    def fails(self, step):
        raise OSError(code, os.strerror(code), self.path)

    workdir = tmp_path / "w"
    shutil.copytree(tiny_teacher, workdir)
    monkeypatch.setattr(logs.MetricWriter, "discard_after", fails)
    line = _assert_refused(*_cli(capfd, *TINY, "--workdir", workdir, "--config.train.num_steps=4"), limit=120)
    assert line == (f"kacjax: error: {words[0]}: [Errno {code}] {os.strerror(code)}: "
                    f"'{workdir / 'teacher' / 'metrics.jsonl'}'; {words[1]}, then rerun to resume")
