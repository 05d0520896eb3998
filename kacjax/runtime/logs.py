"""Metrics to JSON lines, the console and (when installed) TensorBoard.

Only process 0 writes. Each record is one line of ``metrics.jsonl``:
``{"step": int, "name": value, ...}``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax


def info(message: str) -> None:
    """Prints a progress line on process 0 (absl logging is left to libraries)."""
    if jax.process_index() == 0:
        print(f"[kacjax {time.strftime('%H:%M:%S')}] {message}", flush=True)


def warn(message: str) -> None:
    """Prints a warning on process 0's stderr: something went wrong and was worked around."""
    if jax.process_index() == 0:
        print(f"[kacjax {time.strftime('%H:%M:%S')}] WARNING: {message}", file=sys.stderr, flush=True)


def _tensorboard_writer(logdir: str):
    """A TF-free TensorBoard event writer, or None when tensorboard is not installed."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        return None
    events = EventFileWriter(logdir)

    def write(step: int, scalars: dict) -> None:
        values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
        events.add_event(event_pb2.Event(step=step, wall_time=time.time(), summary=summary_pb2.Summary(value=values)))
        events.flush()

    return write


def _record(line: str):
    """One ``metrics.jsonl`` record, or None for a blank line or one cut short."""
    try:
        return json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None


class MetricWriter:
    """Writes scalar metrics for a run whose outputs live in ``logdir``."""

    def __init__(self, logdir: str, *, prefix: str = ""):
        self.enabled = jax.process_index() == 0
        self.prefix = prefix
        self.path = os.path.join(logdir, "metrics.jsonl")
        self._tensorboard = None
        if self.enabled:
            os.makedirs(logdir, exist_ok=True)
            self._tensorboard = _tensorboard_writer(os.path.join(logdir, "tensorboard"))

    def discard_after(self, step: int) -> None:
        """Drops records past ``step`` (a run resumed from a checkpoint at ``step`` logs them again) and a
        last line cut short by a kill or a full disk; the file is replaced whole, never left half written."""
        if not self.enabled or not os.path.exists(self.path):
            return
        with open(self.path) as f:
            kept = [line.rstrip("\n") + "\n" for line in f if (record := _record(line)) and record["step"] <= step]
        partial = self.path + ".partial"
        with open(partial, "w") as f:
            f.writelines(kept)
        os.replace(partial, self.path)

    def write(self, step: int, scalars: dict, *, console: str = "") -> None:
        """Records ``scalars`` (name -> number) at ``step``; ``console`` is an extra note."""
        if not self.enabled:
            return
        scalars = {k: float(v) for k, v in scalars.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **scalars}) + "\n")
        if self._tensorboard is not None:
            self._tensorboard(step, scalars)
        shown = " ".join(f"{k}={v:.4g}" for k, v in scalars.items())
        info(f"{self.prefix} step {step} {shown} {console}")
