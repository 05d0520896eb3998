"""Training machinery: the train state, the resumable loop, Orbax checkpoints, the run directory
(:mod:`~kacjax.training.rundir`), the one setup path (:mod:`~kacjax.training.setup`), the steps
(:mod:`~kacjax.training.steps`), and the ``train`` and ``distill`` modes
(:func:`kacjax.training.teacher.train`, :func:`kacjax.training.distill.distill`). Logging and the
device mesh are below it, in :mod:`kacjax.runtime`."""
