r"""An ASE calculator for irrepnet's energy models: energy, forces and, where defined, stress.

The models out through ASE, as MACE and NequIP ship theirs: any :class:`~irrepnet.models.energy.EnergyModel`
(bare, or the :class:`~irrepnet.train.NormalizedModel` a checkpoint holds) becomes an
``ase.calculators.calculator.Calculator``, so that ASE's molecular dynamics, optimisers and
phonon tools run on it. For the atoms :math:`\{(x_i, Z_i)\}` of an ``ase.Atoms`` object it returns

.. math::

    E = \sum_i \varepsilon_i(\{x_j\}, \{Z_j\}), \qquad F_i = -\frac{\partial E}{\partial x_i}, \qquad
    \sigma = \frac{1}{V}\frac{\partial E}{\partial \epsilon}\Big|_{\epsilon = 0}

in the model's units (eV, eV/Å and eV/Å\ :sup:`3` for models trained on ASE data); the stress
:math:`\sigma` only when the model writes ``stress`` and the atoms are periodic, in ASE's sign
and Voigt order ``xx yy zz yz xz xy``.

Each atomic number is mapped to the one-hot of the species the model was trained on (in the
order of the checkpoint's task, e.g. ``H C N O`` for the molecules task); an element outside
that list is a one-line ``ValueError`` naming it and the trained species. The cell and the
periodic flags go into the batch (``cell (1, 3, 3)``, ``pbc (1, 3)``) for models whose graph
construction reads them.

Neighbour list
--------------
The model builds its own graph inside ``forward`` (:class:`~irrepnet.nn.GraphConstruction`),
so the graph is rebuilt at every call: there is no Verlet skin. A skin would need a graph of
radius :math:`r + \text{skin}`, which changes the function of models whose aggregation is not a
plain sum of messages that vanish at the cutoff (a mean over neighbours counts the extra
edges), so it is left out rather than made right for some models only. What it could save
is small: building the radius graph (:meth:`~irrepnet.nn.GraphConstruction.topology`) took
0.76 ms of tfn's 17.0 ms call on CH4 (20 edges) and 2.3 ms of 32.8 ms on periodic Cu 32
(384 edges), 0.72 of 10.1 and 2.2 of 21.7 ms for mace: 4-10% of a step (CPU time, float64,
one thread). Full graphs of the same atoms are already reused (the layer's topology cache);
``benchmarks/md_stability.py`` reports the cost of a step for every model.

ASE is optional: :class:`IrrepnetCalculator` is created on first access of the name (PEP 562),
and without ASE that access raises :class:`~irrepnet.optional.MissingDependencyError` with
``pip install 'irrepnet[ase]'``; ``import irrepnet.calculator`` itself needs only torch.

Shapes/irreps
-------------
``N`` atoms. In: ``atoms.positions (N, 3)`` Å, ``atoms.numbers (N,)``, ``atoms.cell (3, 3)``,
``atoms.pbc (3,)``. Batch: ``pos (N, 3)`` 1o, ``species_onehot (N, k)`` kx0e, ``batch (N,)``,
``num_nodes (1,)``, ``cell (1, 3, 3)``, ``pbc (1, 3)``. Out: ``energy`` float, ``forces (N, 3)``,
``stress (6,)`` (float64 numpy, ASE's convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import keys as K

if TYPE_CHECKING:  # pragma: no cover - for static tools; the class itself is made on first use
    from ase.calculators.calculator import Calculator as _AseCalculator

    class IrrepnetCalculator(_AseCalculator):  # noqa: D101
        ...


#: what the error says to run when ASE is missing
INSTALL = "pip install 'irrepnet[ase]'"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _ase_calculator_module():
    from .optional import require

    return require("ase.calculators.calculator", feature="the ASE calculator", package="ase", install=INSTALL)


def resolve_dtype(dtype) -> torch.dtype:
    """``torch.float32``/``torch.float64`` from a dtype or its name; anything else is a ``ValueError``."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def species_indices(numbers: Sequence[int] | np.ndarray, species: Sequence[str]) -> np.ndarray:
    """Index of each atomic number in ``species`` (chemical symbols, the model's one-hot order).

    An element outside ``species`` raises a one-line ``ValueError`` that names it, where it
    first occurs, and the species the model was trained on.
    """
    from ase.data import atomic_numbers, chemical_symbols

    lookup = np.full(len(chemical_symbols), -1, dtype=np.int64)
    for i, symbol in enumerate(species):
        if symbol not in atomic_numbers:
            raise ValueError(f"species {symbol!r} is not a chemical symbol; the species list is {list(species)}")
        lookup[atomic_numbers[symbol]] = i
    numbers = np.asarray(numbers, dtype=np.int64)
    bad = (numbers < 0) | (numbers >= len(lookup))
    idx = np.where(bad, -1, lookup[np.clip(numbers, 0, len(lookup) - 1)])
    if (idx < 0).any():
        first = int(np.flatnonzero(idx < 0)[0])
        z = int(numbers[first])
        name = chemical_symbols[z] if 0 <= z < len(chemical_symbols) else f"Z={z}"
        missing = sorted({chemical_symbols[int(n)] for n in numbers[idx < 0] if 0 <= n < len(chemical_symbols)})
        raise ValueError(
            f"element {name} (atom {first}; elements {missing} in all) is not one the model was trained on; "
            f"it knows {list(species)}"
        )
    return idx


def atoms_batch(atoms, species: Sequence[str], *, dtype=torch.float64, device="cpu") -> dict[str, torch.Tensor]:
    """The batch of one graph that an energy model reads for ``atoms`` (see the module's Shapes).

    ``cell`` and ``pbc`` are always written; a non-periodic graph has ``pbc`` all ``False``
    (and whatever cell ASE holds, often zeros), which graph constructions ignore.
    """
    idx = torch.as_tensor(species_indices(atoms.numbers, species), device=device)
    n = len(atoms)
    return {
        K.POS: torch.as_tensor(np.asarray(atoms.positions), dtype=dtype, device=device),
        K.SPECIES_ONEHOT: torch.nn.functional.one_hot(idx, len(species)).to(dtype),
        K.BATCH: torch.zeros(n, dtype=torch.long, device=device),
        K.NUM_NODES: torch.tensor([n], dtype=torch.long, device=device),
        K.CELL: torch.as_tensor(np.asarray(atoms.cell[:]), dtype=dtype, device=device).reshape(1, 3, 3),
        K.PBC: torch.as_tensor(np.asarray(atoms.pbc, dtype=bool), device=device).reshape(1, 3),
    }


def model_species(checkpoint: dict[str, Any], path=None) -> list[str]:
    """The species list (one-hot order) recorded in a checkpoint's task metadata."""
    task = checkpoint.get("meta", {}).get("task", {})
    species = task.get("species")
    if not species:
        raise ValueError(
            f"checkpoint {path or ''} of task {task.get('name')!r} records no species list; the ASE calculator "
            "needs a model of atoms (an energy task such as molecules)"
        )
    return [str(s) for s in species]


def _new_class():
    calc_mod = _ase_calculator_module()
    from ase.stress import full_3x3_to_voigt_6_stress

    class IrrepnetCalculator(calc_mod.Calculator):
        """ASE calculator running an irrepnet energy model (see :mod:`irrepnet.calculator`).

        Parameters
        ----------
        model : torch.nn.Module
            an energy model: writes ``energy (G, 1)`` and ``forces (n, 3)`` (and ``stress
            (G, 3, 3)`` where it supports it) and reads ``pos`` and ``species_onehot``.
        species : sequence of str
            the chemical symbols of the model's one-hot, in order (a checkpoint records them).
        device : str or torch.device
            where the model runs (``"cpu"``, ``"cuda"``...).
        dtype : {"float64", "float32"}
            the precision the model is run in (its parameters are cast).
        **kwargs
            passed to ASE's ``Calculator`` (``label``, ``directory``...).

        Attributes
        ----------
        model : torch.nn.Module
            in eval mode, on ``device``, in ``dtype``.
        species : list of str
        """

        implemented_properties = ["energy", "free_energy", "forces", "stress"]
        default_parameters: dict[str, Any] = {}

        def __init__(self, model, species: Sequence[str], *, device="cpu", dtype="float64", **kwargs):
            if K.ENERGY not in getattr(model, "irreps_out", {}) or K.FORCES not in model.irreps_out:
                raise ValueError(
                    f"{type(model).__name__} writes {sorted(getattr(model, 'irreps_out', {}))}; the ASE calculator "
                    f"needs an energy model ({K.ENERGY!r} and {K.FORCES!r}), e.g. a checkpoint of the molecules task"
                )
            species = [str(s) for s in species]
            if len(set(species)) != len(species) or not species:
                raise ValueError(f"species must be distinct chemical symbols, at least one; got {species}")
            onehot = model.irreps_in.get(K.SPECIES_ONEHOT)
            if onehot is not None and onehot.dim != len(species):
                raise ValueError(
                    f"the model's {K.SPECIES_ONEHOT!r} has {onehot.dim} species but {len(species)} were given "
                    f"({species}); pass the species list it was trained with"
                )
            super().__init__(**kwargs)
            self.dtype = resolve_dtype(dtype)
            self.device = torch.device(device)
            self.model = model.to(device=self.device, dtype=self.dtype).eval()
            self.species = species
            self.has_stress = K.STRESS in model.irreps_out

        @classmethod
        def from_checkpoint(cls, path, device="cpu", dtype="float64", **kwargs):
            """The calculator of a checkpoint written by ``irrepnet train``/``bench`` (``best.pt``, ``last.pt``).

            The model is rebuilt in physical units (:func:`irrepnet.train.load_trained`) and run in
            ``dtype`` whatever precision it was trained in; its species come from the checkpoint.
            """
            from .train import load_trained

            model, ck = load_trained(path, device=str(device))
            return cls(model, model_species(ck, path), device=device, dtype=dtype, **kwargs)

        def batch(self, atoms) -> dict[str, torch.Tensor]:
            """The model's input for ``atoms`` (:func:`atoms_batch` in this calculator's dtype and device)."""
            return atoms_batch(atoms, self.species, dtype=self.dtype, device=self.device)

        def calculate(self, atoms=None, properties=("energy",), system_changes=calc_mod.all_changes):
            super().calculate(atoms, properties, system_changes)
            atoms = self.atoms
            if "stress" in properties and not (self.has_stress and atoms.pbc.all()):
                why = (
                    "the model computes no stress"
                    if not self.has_stress
                    else f"the atoms are not periodic ({atoms.pbc})"
                )
                raise calc_mod.PropertyNotImplementedError(f"stress: {why}")
            out = self.model(self.batch(atoms))
            energy = float(out[K.ENERGY].detach().double().sum())
            self.results["energy"] = self.results["free_energy"] = energy
            self.results["forces"] = out[K.FORCES].detach().double().cpu().numpy().reshape(len(atoms), 3)
            if self.has_stress and atoms.pbc.all() and K.STRESS in out:
                sigma = out[K.STRESS].detach().double().cpu().numpy().reshape(3, 3)
                self.results["stress"] = full_3x3_to_voigt_6_stress(sigma)

    IrrepnetCalculator.__module__ = __name__
    IrrepnetCalculator.__qualname__ = "IrrepnetCalculator"
    return IrrepnetCalculator


def __getattr__(name: str):
    if name == "IrrepnetCalculator":  # PEP 562: ASE is imported when the class is first asked for
        cls = _new_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["IrrepnetCalculator", "atoms_batch", "model_species", "resolve_dtype", "species_indices"]
