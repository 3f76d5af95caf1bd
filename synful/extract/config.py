"""The extraction settings of the stage's modules: :class:`synful.settings.extract.ExtractConfig`.

The model lives in :mod:`synful.settings.extract` (torch-, numpy- and scipy-free) because the
command line builds ``synful extract``'s options from it.
"""

from ..settings.extract import ExtractConfig, ExtractRun

__all__ = ["ExtractConfig", "ExtractRun"]
