"""The irreps-aware interface: modules that declare what they read and write.

Every layer and model is an :class:`IrrepsModule`: it declares ``irreps_in`` (the
fields it reads, each with its :class:`e3nn.o3.Irreps`, or ``None`` for
non-geometric fields such as ``edge_index``) and ``irreps_out`` (the fields it
writes). ``forward`` takes a batch dict and returns a new dict. Layers return the
input fields plus what they wrote, so they chain; a *model* (:class:`IrrepsModel`)
returns only its named outputs.

Because the declaration is data, composition is checked before any tensor flows:
:class:`IrrepsSequential` verifies at construction that each field a module reads
was provided (by the inputs or an earlier module) with the same irreps, and raises
:class:`IrrepsMismatchError` naming the field and both irreps otherwise. The
equivariance audit (:mod:`irrepnet.equivariance`) uses the same declaration to
transform inputs and outputs, so it needs no model-specific code.

Shapes/irreps
-------------
A field of irreps ``I`` has shape ``(rows, I.dim)``; ``rows`` is nodes, edges or
graphs according to :func:`irrepnet.keys.field_kind`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from e3nn import o3

from .irreps import IrrepsDict, IrrepsLike, as_irreps_dict, format_irreps, format_irreps_dict


class IrrepsMismatchError(ValueError):
    """A module reads a field with other irreps than the ones it was written with."""

    def __init__(self, field_name: str, expected, got, reader: str = "", writer: str = ""):
        self.field_name, self.expected, self.got = field_name, expected, got
        where = f" by {reader}" if reader else ""
        source = f" (written by {writer})" if writer else ""
        super().__init__(
            f"irreps mismatch for field {field_name!r}: read{where} as {format_irreps(expected)}, "
            f"but provided as {format_irreps(got)}{source}. Change one side so they agree."
        )


class MissingFieldError(KeyError):
    """A module reads a field nobody provides."""

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0])


class Symmetry(str, enum.Enum):
    """Symmetry group a model claims for its outputs, checked by the audit.

    ``E(3)``: rotations, reflections and translations; ``SE(3)``: rotations and
    translations only; ``none``: no geometric claim (baselines).
    """

    E3 = "E(3)"
    SE3 = "SE(3)"
    NONE = "none"

    @property
    def rotation(self) -> bool:
        return self in (Symmetry.E3, Symmetry.SE3)

    @property
    def reflection(self) -> bool:
        return self is Symmetry.E3

    @property
    def translation(self) -> bool:
        return self in (Symmetry.E3, Symmetry.SE3)

    @classmethod
    def parse(cls, value) -> Symmetry:
        if isinstance(value, Symmetry):
            return value
        for s in cls:
            if str(value).upper().replace(" ", "") in (s.value.upper(), s.name):
                return s
        raise ValueError(f"unknown symmetry {value!r}; use one of {[s.value for s in cls]}")


class IrrepsModule(torch.nn.Module):
    """Base class of every layer and model: a dict-in, dict-out module with irreps.

    Subclasses call ``_init_irreps`` in their constructor (or pass
    ``irreps_in``/``irreps_out`` to ``__init__``) and implement ``forward(data)``.

    Attributes
    ----------
    irreps_in : dict[str, Irreps | None]
        fields read.
    irreps_out : dict[str, Irreps | None]
        fields written.
    """

    irreps_in: IrrepsDict
    irreps_out: IrrepsDict

    def __init__(
        self, irreps_in: Mapping[str, IrrepsLike] | None = None, irreps_out: Mapping[str, IrrepsLike] | None = None
    ):
        super().__init__()
        self._init_irreps(irreps_in, irreps_out)

    def _init_irreps(self, irreps_in=None, irreps_out=None) -> None:
        self.irreps_in = as_irreps_dict(irreps_in)
        self.irreps_out = as_irreps_dict(irreps_out)

    def check_inputs(self, provided: Mapping[str, o3.Irreps | None], writers: Mapping[str, str] | None = None) -> None:
        """Raise if ``provided`` (field -> irreps) cannot feed this module."""
        writers = writers or {}
        for name, ir in self.irreps_in.items():
            if name not in provided:
                raise MissingFieldError(
                    f"{self._short_name()} reads field {name!r} ({format_irreps(ir)}) but it is not provided; "
                    f"available fields: {format_irreps_dict(provided)}"
                )
            if provided[name] != ir:
                raise IrrepsMismatchError(name, ir, provided[name], self._short_name(), writers.get(name, "the inputs"))

    def _short_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        return f"{format_irreps_dict(self.irreps_in)} -> {format_irreps_dict(self.irreps_out)}"


class IrrepsSequential(IrrepsModule):
    """Chain of layers, checked at construction.

    Parameters
    ----------
    *modules : IrrepsModule
        applied in order; each receives everything provided so far.
    irreps_in : dict
        the fields the chain is given (e.g. ``{"pos": "1o", "batch": None}``).
    """

    def __init__(self, *modules: IrrepsModule, irreps_in: Mapping[str, IrrepsLike]):
        super().__init__()
        provided = as_irreps_dict(irreps_in)
        writers: dict[str, str] = {}
        written: IrrepsDict = {}
        for i, m in enumerate(modules):
            if not isinstance(m, IrrepsModule):
                raise TypeError(
                    f"module {i} ({type(m).__name__}) is not an IrrepsModule; wrap it or subclass IrrepsModule"
                )
            m.check_inputs(provided, writers)
            for name, ir in m.irreps_out.items():
                provided[name] = ir
                written[name] = ir
                writers[name] = f"module {i} ({type(m).__name__})"
        self.layers = torch.nn.ModuleList(modules)
        read = {}
        given = as_irreps_dict(irreps_in)
        for m in modules:
            for name in m.irreps_in:
                if name in given and name not in read:
                    read[name] = given[name]
        self._init_irreps(read, written)

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for m in self.layers:
            data = m(data)
        return data


@dataclass
class TaskSpec:
    """What a task gives a model and what it asks for; builders read this.

    Attributes
    ----------
    name : str
        task name (``"twelve_body"``, ``"nbody"``...).
    inputs : dict
        node/graph fields available to the model with their irreps, e.g.
        ``{"pos": "1o", "vel_history": "2x1o", "charge": "0e"}``.
    target : str
        output field the task trains on (``"displacement"``).
    num_nodes : int or None
        fixed node count, or ``None`` when graphs vary in size.
    """

    name: str
    inputs: Mapping[str, IrrepsLike]
    target: str
    num_nodes: int | None = None
    extras: dict[str, object] = field(default_factory=dict)

    def __post_init__(self):
        self.inputs = as_irreps_dict(self.inputs)


def cast_inputs(model: IrrepsModule, data: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``data`` with the floating fields ``model`` reads cast to the dtype of its parameters.

    Batches often come in float64 (the numpy simulators) while models train in
    float32; casting the declared inputs once at the door makes a model usable on
    either, with outputs in the model's dtype. Parameter-free models get ``data`` as is.
    """
    param = next(model.parameters(), None)
    if param is None:
        return dict(data)
    out = dict(data)
    for name in model.irreps_in:
        v = out.get(name)
        if v is not None and v.is_floating_point() and v.dtype != param.dtype:
            out[name] = v.to(param.dtype)
    return out


class IrrepsModel(IrrepsModule):
    """A model: reads task inputs, returns only its named outputs.

    Subclasses set ``symmetry`` (the claim the audit checks) and, when not
    permutation equivariant (e.g. an MLP on flattened coordinates),
    ``permutation_equivariant = False``.
    """

    symmetry: Symmetry = Symmetry.NONE
    permutation_equivariant: bool = True

    def __init__(self, irreps_in=None, irreps_out=None, symmetry=None):
        super().__init__(irreps_in, irreps_out)
        if symmetry is not None:
            self.symmetry = Symmetry.parse(symmetry)

    @property
    def output_fields(self) -> Sequence[str]:
        return tuple(self.irreps_out)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, symmetry={self.symmetry.value}"


class SequentialModel(IrrepsModel):
    """A model made of layers: an :class:`IrrepsSequential` chain that returns only ``outputs``.

    The shortest way to turn composed layers into a registrable model; the chain is
    checked at construction (every field read is provided with the same irreps), and
    ``outputs`` must be fields the chain writes.

    Parameters
    ----------
    *layers : IrrepsModule
        applied in order.
    irreps_in : dict
        the task's inputs (``task.inputs``); the model declares the subset its layers read.
    outputs : sequence of str
        the fields returned (e.g. ``["displacement"]``).
    symmetry : Symmetry or str
        the claim the audit checks (``"E(3)"``, ``"SE(3)"`` or ``"none"``).

    Shapes/irreps
    -------------
    as declared by the layers: ``irreps_in`` is what they read of the task's inputs,
    ``irreps_out`` the ``outputs`` as the layers write them.
    """

    def __init__(
        self, *layers: IrrepsModule, irreps_in: Mapping[str, IrrepsLike], outputs: Sequence[str], symmetry="E(3)"
    ):
        chain = IrrepsSequential(*layers, irreps_in=irreps_in)
        missing = [o for o in outputs if o not in chain.irreps_out]
        if missing:
            raise MissingFieldError(
                f"SequentialModel: no layer writes output(s) {missing}; the layers write {sorted(chain.irreps_out)}"
            )
        super().__init__(chain.irreps_in, {o: chain.irreps_out[o] for o in outputs}, symmetry=symmetry)
        self.chain = chain

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.chain(cast_inputs(self, data))
        return {o: out[o] for o in self.irreps_out}
