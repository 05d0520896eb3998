"""Command-line entry point: ``kacjax --config CONFIG.py --workdir DIR [--mode MODE]``.

Modes: ``train`` (the teacher), ``distill`` (the student chain), ``sample`` (PNG grid
and .npz from a checkpoint), ``evaluate`` (the experiment's metrics and figures; FID and
KID on image datasets), ``fid_stats`` (the FID reference statistics of the dataset),
``compare_guidance`` (a guidance-conditioned student against fixed-``w`` ones, digits), and
``all`` (the config's ``pipeline``, in order). Override any config value with
``--config.section.key=value``; pick a config variant with ``CONFIG.py:quick``.
Every mode resumes from what ``workdir`` already holds. A command that cannot run (a bad flag,
config file, variant, key or value; a workdir that is a file, not writable or held by a live run)
prints one line, ``kacjax: error: ...``, and exits with status 2 having written nothing; a full
disk ends a run the same way, naming the last intact checkpoint.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import NoReturn, Optional, Sequence

import jax
from absl import app, flags, logging

from kacjax.cli import config_values
from kacjax.runtime import logs, parallel

flags.DEFINE_string("config", None, "Experiment config file and variant: experiments/NAME.py[:VARIANT]; override "
                    "its values with --config.section.key=value.")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
flags.DEFINE_enum("mode", "all", ["all", "train", "distill", "sample", "evaluate", "fid_stats", "compare_guidance"],
                  "What to run (fid_stats: the FID reference statistics of the config's dataset; compare_guidance: "
                  "a guidance-conditioned chain against fixed-w chains, on digits).")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (TPU pods, SLURM, or the flags below).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for --distributed without autodetection.")
flags.DEFINE_integer("num_processes", None, "Number of processes, for --distributed without autodetection.")
flags.DEFINE_integer("process_id", None, "This process's index, for --distributed without autodetection.")
flags.DEFINE_integer(
    "heartbeat_timeout", 100,
    "With --distributed: seconds without a heartbeat after which a process counts as lost and the others "
    "abort (exit non-zero); rerun to resume from the last checkpoint (docs/scaling.md).")
flags.DEFINE_string(
    "compilation_cache", "", "Persistent XLA compilation cache directory, e.g. ~/.cache/kacjax/xla ('' disables)."
)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def _refuse(err) -> NoReturn:
    """The one line a command that cannot run prints, and exit status 2."""
    print(f"kacjax: error: {' '.join(str(err).split())}", file=sys.stderr, flush=True)
    sys.exit(2)


def _parse_flags(argv: Sequence[str]) -> list:
    FLAGS.unparse_flags()  # a second run in one process starts from the defaults
    try:
        return FLAGS(argv)
    except flags.Error as err:
        _refuse(err)


def _init_jax() -> None:
    parallel.size_cpu_thread_pools()  # fake CPU devices: before the backend exists
    if FLAGS.compilation_cache:
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(FLAGS.compilation_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    if FLAGS.distributed:  # must come before anything touches a backend
        jax.distributed.initialize(
            coordinator_address=FLAGS.coordinator_address,
            num_processes=FLAGS.num_processes,
            process_id=FLAGS.process_id,
            heartbeat_timeout_seconds=FLAGS.heartbeat_timeout,
        )
    logs.info(
        f"JAX {jax.__version__} on {jax.default_backend()}: process {jax.process_index()} of "
        f"{jax.process_count()}, {jax.local_device_count()} local / {jax.device_count()} global devices"
    )


def main(argv, overrides: Sequence[tuple] = ()) -> None:
    """Runs the command line's modes with ``overrides`` (``(key, raw value)`` pairs) applied to the config."""
    logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines off the console
    if len(argv) > 1:
        _refuse(f"unexpected arguments {argv[1:]}: kacjax takes only flags (see --help)")
    try:
        config = config_values.load(FLAGS.config, overrides)
    except config_values.ConfigError as err:
        _refuse(err)
    _init_jax()
    from kacjax.cli.modes import run_pipeline
    from kacjax.training.checkpoint import is_disk_full, is_unwritable
    from kacjax.training.loop import NonFiniteError, TrainingInterrupted

    modes = tuple(config.pipeline) if FLAGS.mode == "all" else (FLAGS.mode,)
    try:
        run_pipeline(config, FLAGS.workdir, modes)
    except TrainingInterrupted as stop:
        logging.warning("%s", stop)
        sys.exit(128 + stop.signum)
    except (ValueError, FileNotFoundError, NonFiniteError) as err:
        _refuse(err)
    except OSError as err:  # a full disk or an unwritable folder under another write than a checkpoint's
        if is_disk_full(err):
            _refuse(f"disk full: {err}; free space, then rerun to resume")
        if is_unwritable(err):
            _refuse(f"cannot write: {err}; make it writable, then rerun to resume")
        raise


def run(argv: Optional[Sequence[str]] = None) -> None:
    """Console-script entry point; ``argv`` (default ``sys.argv``) as the command line, program name first."""
    argv, overrides = config_values.split_overrides(sys.argv if argv is None else argv)
    app.run(functools.partial(main, overrides=overrides), argv=argv, flags_parser=_parse_flags)
