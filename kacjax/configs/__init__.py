"""The config defaults every experiment in ``experiments/`` starts from (:mod:`~kacjax.configs.defaults`,
with :func:`~kacjax.configs.defaults.load_config`) and the shared recipe of the image experiments
(:mod:`~kacjax.configs.images`); the command line and the experiments import them."""
