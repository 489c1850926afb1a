"""Registered models. Importing this package registers every built-in model.

One file per family; each file registers its builders with
:func:`irrepnet.registry.register_model`.
"""

from . import physical  # noqa: F401
from . import e3nn_models, tfn  # noqa: F401
from . import baselines_nn, egnn  # noqa: F401
from . import se3_transformer  # noqa: F401
from . import segnn  # noqa: F401
from . import peers  # noqa: F401  (registers the peers; their packages are imported only to build them)
