"""What every layer above the data runs on: progress lines and metric files on process 0
(:mod:`~kacjax.runtime.logs`) and the devices, the ``('data',)`` mesh and moving rows between
hosts and devices (:mod:`~kacjax.runtime.parallel`)."""
