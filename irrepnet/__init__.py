"""irrepnet: E(3)/SE(3)-equivariant networks behind one irreps-aware interface.

The public API is re-exported here; submodules hold one concern each
(``keys``, ``batch``, ``irreps``, ``interface``, ``registry``, ``graph``,
``scatter``, ``equivariance``, ``data``, ``models``).
"""

__version__ = "0.1.0"

from . import keys  # noqa: F401
from .batch import check_batch, collate  # noqa: F401
from .equivariance import AuditReport, TensorModule, audit, audit_all  # noqa: F401
from .interface import (  # noqa: F401
    IrrepsMismatchError,
    IrrepsModel,
    IrrepsModule,
    IrrepsSequential,
    MissingFieldError,
    SequentialModel,
    Symmetry,
    TaskSpec,
)
from .registry import build_model, get_model_entry, list_models, register_model  # noqa: F401
