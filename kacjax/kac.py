"""``kacjax.kac``, the public name of :mod:`kacjax.core.kac` (the 1-D Kac process): the same module."""

import sys

from kacjax.core import kac

sys.modules[__name__] = kac
