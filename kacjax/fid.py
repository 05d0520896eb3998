"""``kacjax.fid``, the public name of :mod:`kacjax.evaluation.fid` (FID and KID): the same module."""

import sys

from kacjax.evaluation import fid

sys.modules[__name__] = fid
