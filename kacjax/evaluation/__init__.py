"""Sampling trained models and judging the samples: generation (:mod:`~kacjax.evaluation.sampling`),
the notebook :class:`~kacjax.evaluation.generator.Generator`, metrics, the ``sample`` mode
(:mod:`~kacjax.evaluation.write_samples`) and the ``evaluate`` mode's reports."""
