"""Registered models. Importing this package registers every built-in model.

One file per family; each file registers its builders with
:func:`irrepnet.registry.register_model`.
"""

from . import baselines_nn, egnn, physical  # noqa: F401
