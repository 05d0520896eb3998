"""The math of Kac flows, with no I/O: the 1-D Kac process (:mod:`~kacjax.core.kac`), random flights
(:mod:`~kacjax.core.flight`), line-Kac and Gaussian noise (:mod:`~kacjax.core.line`,
:mod:`~kacjax.core.gaussian`) behind one noise seam (:mod:`~kacjax.core.noise`), the flow and its
flow-matching target (:mod:`~kacjax.core.flow`), ODE samplers (:mod:`~kacjax.core.samplers`) and
classifier-free guidance in velocity space (:mod:`~kacjax.core.guidance`).

Nothing here imports another part of kacjax: models, data, training and evaluation build on it.
"""
