"""Import the published TensorFlow Synful models (``synful import-tf``).

:mod:`.wire`, :mod:`.sstable` and :mod:`.bundle` read a TensorFlow V2 checkpoint without
TensorFlow; :mod:`.published` reads a published setup's config files; :mod:`.original` knows
the original network's variables; :mod:`.importer` puts them together.
"""

from .bundle import TFCheckpoint
from .importer import import_tf_checkpoint

__all__ = ["TFCheckpoint", "import_tf_checkpoint"]
