"""Optional packages: one error type that says what is missing and how to install it.

irrepnet's core needs torch, e3nn and numpy; a few features need more (ASE for the
molecules task, torch-scatter/torch-cluster/vesin for compiled backends, tensorboard
for training curves, the peers' packages for their models). When such a feature is
asked for and its package does not import, the library raises
:class:`MissingDependencyError`, an :class:`ImportError` (so ``except ImportError``
in user code keeps working) whose message is one line ending in the install command;
the CLI prints that line as ``irrepnet: error: ...`` with exit status 2.

This module imports nothing heavy: the CLI reads it before torch is loaded.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingDependencyError(ImportError):
    """An optional package that a requested feature needs is not importable.

    Attributes
    ----------
    package : str
        The distribution to install (``"ase"``, ``"tensorboard"``...).
    install : str
        The command that installs it (``"pip install ase"``).
    """

    def __init__(self, message: str, *, package: str, install: str):
        super().__init__(message, name=package)
        self.package = package
        self.install = install


def require(module: str, *, feature: str, package: str | None = None, install: str | None = None) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingDependencyError`.

    Parameters
    ----------
    module : str
        The module to import (``"ase.calculators.emt"``).
    feature : str
        What needs it, as the user asked for it (``"the molecules task"``); it starts
        the error message.
    package : str, optional
        The distribution that provides it (default: ``module``'s top level, ``_`` as ``-``).
    install : str, optional
        The install command (default ``pip install PACKAGE``).

    Returns
    -------
    module
        The imported module.
    """
    package = package or module.split(".")[0].replace("_", "-")
    install = install or f"pip install {package}"
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # OSError is not caught: a compiled package built against another torch is a broken
        # install, and its own message says more than "not installed" would.
        raise MissingDependencyError(
            f"{feature} needs {package}, which is not installed ({exc}); install it with: {install}",
            package=package,
            install=install,
        ) from None
