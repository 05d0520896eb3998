"""Command-line entry point: ``kacjax --config CONFIG.py --workdir DIR [--mode MODE]``.

Modes: ``train`` (the teacher), ``distill`` (the student chain), ``sample`` (PNG grid
and .npz from a checkpoint), ``evaluate`` (the experiment's metrics and figures; FID and
KID on image datasets), ``fid_stats`` (the FID reference statistics of the dataset),
``compare_guidance`` (a guidance-conditioned student against fixed-``w`` ones, digits), and
``all`` (the config's ``pipeline``, in order). Override any config value with
``--config.section.key=value``; pick a config variant with ``CONFIG.py:quick``.
Every mode resumes from what ``workdir`` already holds.
"""

from __future__ import annotations

import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from kacjax.training import logs, parallel

config_flags.DEFINE_config_file("config", None, "Experiment config file (experiments/*.py).", lock_config=True)
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


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines off the console
    _init_jax()
    from kacjax.cli.modes import run_pipeline
    from kacjax.training.loop import NonFiniteError, TrainingInterrupted

    config, workdir = FLAGS.config, FLAGS.workdir
    modes = tuple(config.pipeline) if FLAGS.mode == "all" else (FLAGS.mode,)
    try:
        run_pipeline(config, workdir, modes)
    except TrainingInterrupted as stop:
        logging.warning("%s", stop)
        sys.exit(128 + stop.signum)
    except (ValueError, FileNotFoundError, NonFiniteError) as err:
        print(f"kacjax: error: {err}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    """Console-script entry point."""
    app.run(main)
