"""Registered models. Importing this package registers every built-in model.

One file per family; each file registers its builders with
:func:`irrepnet.registry.register_model`.
"""

from . import (  # noqa: F401  # noqa: F401
    baselines_nn,
    e3nn_models,
    egnn,
    mace,
    peers,  # noqa: F401  (registers the peers; their packages are imported only to build them)
    physical,  # noqa: F401
    se3_transformer,  # noqa: F401
    segnn,  # noqa: F401
    tfn,
)
