"""Training machinery: the train state, the resumable loop, Orbax checkpoints, data parallelism, the run
directory (:mod:`~kacjax.training.rundir`), the one setup path (:mod:`~kacjax.training.setup`), the
steps (:mod:`~kacjax.training.steps`), and the ``train`` and ``distill`` modes
(:mod:`~kacjax.training.teacher`, :mod:`~kacjax.training.distill`)."""
