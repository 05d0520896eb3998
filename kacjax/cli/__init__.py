"""The command line (:mod:`~kacjax.cli.main`), its modes and their one validation
(:mod:`~kacjax.cli.modes`), and the config defaults experiments start from
(:mod:`~kacjax.cli.defaults`, :mod:`~kacjax.cli.image_configs`)."""
