"""The step-indexed input: the batch of training step ``s`` is a pure function of
``(seed, s, process_index)``, so training resumes exactly from the step alone."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from kacjax.data import indexing, prefetch
from kacjax.data.sources import GeneratedSource, IndexedSource


class Input:
    """This process's share of the global training batches.

    Step ``s`` draws a global batch of ``global_batch_size`` examples (see
    :mod:`kacjax.data.indexing`), the same whatever the process count; process ``p``
    gets rows ``[p * L, (p + 1) * L)`` of it, ``L = global_batch_size // process_count``.
    """

    def __init__(
        self,
        source: IndexedSource | GeneratedSource,
        *,
        global_batch_size: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
        random_flip: bool = False,
    ):
        """``random_flip`` mirrors each image (NHWC) left-right with probability 1/2."""
        indexing.check_nonnegative(seed=seed)
        self._rows = indexing.process_rows(global_batch_size, process_index, process_count)
        if source.num_examples is not None:
            indexing.steps_per_epoch(source.num_examples, global_batch_size)  # validates the size
        if random_flip and (len(source.shape) != 3 or source.num_examples is None):
            raise ValueError(f"random_flip needs a dataset of images (H, W, C), but examples have shape "
                             f"{source.shape}{'' if source.num_examples else ' and are generated'}")
        self._source = source
        self._seed = int(seed)
        self._global_batch_size = global_batch_size
        self._random_flip = random_flip

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-example shape, e.g. ``(32, 32, 3)`` or ``(2,)``."""
        return self._source.shape

    @property
    def num_classes(self) -> int | None:
        """Number of classes, or None for unconditional data (labels are then 0)."""
        return self._source.num_classes

    @property
    def num_examples(self) -> int | None:
        """Dataset size, or None for an infinite generated stream."""
        return self._source.num_examples

    @property
    def steps_per_epoch(self) -> int | None:
        """``num_examples // global_batch_size``, or None for an infinite stream."""
        if self.num_examples is None:
            return None
        return indexing.steps_per_epoch(self.num_examples, self._global_batch_size)

    @property
    def local_batch_size(self) -> int:
        """Rows per process: ``global_batch_size // process_count``."""
        return self._rows.stop - self._rows.start

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows of step ``step`` (an integer >= 0).

        Returns ``{'x': float32 (local_batch, *shape), 'label': int32 (local_batch,)}``;
        images are NHWC in ``[-1, 1]``.
        """
        indexing.check_nonnegative(step=step)
        if self._source.num_examples is None:
            x, label = self._source.generate(self._seed, step, self._global_batch_size)
            return {"x": x[self._rows], "label": label[self._rows]}
        indices = indexing.step_indices(self._seed, step, self._source.num_examples, self._global_batch_size)
        flip = None
        if self._random_flip:
            flip = indexing.flip_mask(self._seed, step, self._global_batch_size)[self._rows]
        x, label = self._source.read(indices[self._rows], flip)  # the source flips, image by image
        return {"x": x, "label": label}

    def iterate(self, start_step: int = 0, buffer_size: int = 2) -> Iterator[dict[str, np.ndarray]]:
        """``batch(start_step), batch(start_step + 1), ...``, prefetched by a background thread."""
        indexing.check_nonnegative(start_step=start_step)
        return prefetch.prefetch(self.batch, start_step, buffer_size)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """Same as ``iterate(0)``."""
        return self.iterate(0)
