"""irrepnet: E(3)/SE(3)-equivariant networks behind one irreps-aware interface.

The public API is re-exported here; submodules hold one concern each
(``keys``, ``batch``, ``irreps``, ``interface``, ``registry``, ``graph``,
``scatter``, ``equivariance``, ``data``, ``models``).
"""

__version__ = "0.1.0"

import logging
from importlib import import_module as _import_module
from importlib.util import find_spec as _find_spec
from typing import TYPE_CHECKING

from . import keys  # noqa: F401  (light: names only)

# Messages go through `logging`, one logger per module under "irrepnet"; the handlers are
# the application's (the CLI's -v/-q, or logging.basicConfig). A library adds only this null
# handler: without it, Python's last-resort handler would print irrepnet's warnings to
# stderr in programs that chose not to configure logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())

# The API below is imported on first use (PEP 562), not with the package: ``import
# irrepnet`` and the CLI's ``--help`` then start without torch and e3nn (seconds).
# ``irrepnet.audit``, ``from irrepnet import audit`` and ``irrepnet.models`` work as before.
_EXPORTS = {
    "check_batch": "batch",
    "collate": "batch",
    "AuditReport": "equivariance",
    "TensorModule": "equivariance",
    "audit": "equivariance",
    "audit_all": "equivariance",
    "IrrepsMismatchError": "interface",
    "IrrepsModel": "interface",
    "IrrepsModule": "interface",
    "IrrepsSequential": "interface",
    "MissingFieldError": "interface",
    "SequentialModel": "interface",
    "Symmetry": "interface",
    "TaskSpec": "interface",
    "build_model": "registry",
    "get_model_entry": "registry",
    "list_models": "registry",
    "register_model": "registry",
}
# the API as the eager imports made it public (the docs' API page lists exactly these)
__all__ = [*_EXPORTS]

if TYPE_CHECKING:  # static tools see the eager imports
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


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_import_module(f".{_EXPORTS[name]}", __name__), name)
    elif not name.startswith("_") and _find_spec(f"{__name__}.{name}") is not None:
        value = _import_module(f".{name}", __name__)  # a submodule: irrepnet.models, irrepnet.data...
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__():
    return sorted(
        {n for n in globals() if not n.startswith("_") and n not in ("TYPE_CHECKING", "logging")}
        | set(_EXPORTS)
        | {"__version__"}
    )
