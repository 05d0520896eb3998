"""``kacjax.samplers``, the public name of :mod:`kacjax.core.samplers` (ODE samplers): the same module."""

import sys

from kacjax.core import samplers

sys.modules[__name__] = samplers
