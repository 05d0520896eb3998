"""The command line (:mod:`~kacjax.cli.main`), the table of modes and their one validation
(:mod:`~kacjax.cli.modes`), the config as the command line builds it
(:mod:`~kacjax.cli.config_values`), and the ``compare_guidance`` mode, which distils chains
before it reports (:mod:`~kacjax.cli.compare_guidance`). The config defaults are in
:mod:`kacjax.configs`."""
