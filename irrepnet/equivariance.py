"""The equivariance audit: does a module keep the symmetry it claims?

For a module ``f`` with declared ``irreps_in``/``irreps_out`` and a batch ``x``,
each check draws a group element ``g`` and measures

.. math::  \\varepsilon = \\max |f(g \\cdot x) - g \\cdot f(x)|,
           \\qquad \\varepsilon_{rel} = \\varepsilon / \\max |g \\cdot f(x)|

per output field (the reported figures are the worst field and trial), where ``g`` acts on each field through its
irreps (:func:`irrepnet.irreps.irreps_D`):

- ``rotation``: a Haar-random proper rotation ``R``;
- ``reflection``: the improper ``-R`` (rotation times inversion);
- ``translation``: ``t`` added to position fields (:data:`irrepnet.keys.POSITION_FIELDS`),
  inputs and outputs alike; other fields are translation invariant;
- ``permutation``: nodes shuffled within each graph; node fields permuted,
  ``edge_index`` relabelled, graph and edge fields left in place.

Periodic data (the batch holds ``cell``): rotations and reflections act on the
positions and on the lattice vectors (the rows of ``cell``, three ``1o`` vectors)
together; a translation moves every position by ``t`` and then wraps each periodic
graph's atoms back into its cell, so each atom also moves by a lattice vector of its
own, :math:`x_i \\mapsto x_i + t + n_i C`. A model that sees the images through
``edge_vec`` (:func:`irrepnet.graph.edge_vectors`) gives the same invariant outputs,
and position outputs move the same way; one that ignores the cell shifts does not.
``pbc`` and the integer shifts are left as they are.

A check *passes* when ``rel_error <= tolerance(dtype)``; it is only judged when the
module claims it (``symmetry`` and ``permutation_equivariant``), otherwise it is
reported with ``passed = None``. Like ``e3nn.util.test``, tolerances depend on the
dtype; they are relative so that they do not depend on the output scale.

Shapes/irreps
-------------
Any batch dict; fields with irreps ``I`` must have shape ``(rows, I.dim)``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch

from . import keys as K
from .interface import IrrepsModule, Symmetry
from .irreps import irreps_D, random_rotation

CHECKS = ("rotation", "reflection", "translation", "permutation")

#: relative tolerance per dtype. float64 networks sit near 1e-15; float32 near 1e-7
#: to 1e-6 after a few layers of tensor products, so 1e-4 leaves room for depth
#: while any real symmetry break (errors of order 1e-2 to 1) is far above both.
DEFAULT_TOLERANCES = {torch.float32: 1e-4, torch.float64: 1e-9}


@dataclass
class CheckResult:
    """One check of an audit (rotation, reflection, translation, permutation): its error and verdict."""

    check: str
    claimed: bool
    abs_error: float
    rel_error: float
    tolerance: float
    passed: bool | None  # None when the symmetry is not claimed
    per_field: dict[str, float] = field(default_factory=dict)  # abs error per output field


@dataclass
class AuditReport:
    """The result of :func:`audit`: the module, its claimed symmetry, the dtype and every check."""

    module: str
    symmetry: str
    dtype: str
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        """True when every claimed check passed."""
        return all(c.passed is not False for c in self.checks)

    def __getitem__(self, check: str) -> CheckResult:
        for c in self.checks:
            if c.check == check:
                return c
        raise KeyError(f"no check {check!r} in this report; checks: {[c.check for c in self.checks]}")

    def to_dict(self) -> dict:
        return {
            "module": self.module,
            "symmetry": self.symmetry,
            "dtype": self.dtype,
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
        }

    def __str__(self) -> str:
        lines = [
            f"equivariance audit of {self.module} (claims {self.symmetry}) in {self.dtype}",
            f"  {'check':<12} {'claimed':<8} {'abs err':>10} {'rel err':>10} {'tol':>8}  result",
        ]
        for c in self.checks:
            verdict = {True: "pass", False: "FAIL", None: "(not claimed)"}[c.passed]
            lines.append(
                f"  {c.check:<12} {str(c.claimed):<8} {c.abs_error:10.2e} {c.rel_error:10.2e} "
                f"{c.tolerance:8.0e}  {verdict}"
            )
        return "\n".join(lines)


def claimed_checks(module: torch.nn.Module) -> dict[str, bool]:
    """Which checks ``module`` claims, from its ``symmetry`` and ``permutation_equivariant``."""
    sym = Symmetry.parse(getattr(module, "symmetry", Symmetry.NONE))
    return {
        "rotation": sym.rotation,
        "reflection": sym.reflection,
        "translation": sym.translation,
        "permutation": bool(getattr(module, "permutation_equivariant", True)),
    }


def _rows(data: Mapping[str, torch.Tensor]) -> int:
    for name, v in data.items():
        if K.is_registered(name) and K.field_kind(name) == K.NODE:
            return v.shape[0]
    raise ValueError("the audit needs at least one node field in the batch (e.g. 'pos')")


def _act(fields: Mapping[str, torch.Tensor], irreps: Mapping, R: torch.Tensor) -> dict[str, torch.Tensor]:
    """Apply the O(3) element ``R`` to every field that has irreps."""
    out = dict(fields)
    for name, ir in irreps.items():
        if ir is None and name in K.CARTESIAN_TENSOR_FIELDS and name in out:  # (G, 3, 3): R T R^T
            Rt = R.to(dtype=out[name].dtype, device=out[name].device)
            out[name] = Rt @ out[name] @ Rt.T
            continue
        if ir is None or name not in out:
            continue
        x = out[name]
        if x.shape[-1] != ir.dim:
            raise ValueError(f"field {name!r} has last dimension {x.shape[-1]} but its irreps {ir} have dim {ir.dim}")
        D = irreps_D(ir, R).to(dtype=x.dtype, device=x.device)
        out[name] = x @ D.T
    return out


def _act_cell(fields: Mapping[str, torch.Tensor], R: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rotate (or reflect) the lattice vectors with the positions: each row of ``cell`` is a ``1o`` vector."""
    if K.CELL not in fields:
        return dict(fields)
    cell = fields[K.CELL]
    return {**fields, K.CELL: cell @ R.to(dtype=cell.dtype, device=cell.device).T}


def _wrap_into_cells(fields: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Atoms of periodic graphs moved into their cells: ``(fields, move)``, ``move (n, 3)`` lattice vectors.

    Every position field moves by its node's ``move``; ``None`` when no graph is periodic.
    """
    from .batch import ensure_batch
    from .graph._periodic import check_cell, is_periodic, lattice_basis, wrap

    if not is_periodic(fields):
        return dict(fields), None
    layout = ensure_batch(fields)
    pos, batch = layout[K.POS], layout[K.BATCH]
    cell, pbc = check_cell(layout[K.CELL], layout[K.PBC], layout[K.NUM_NODES].numel(), pos.device)
    wrapped, _ = wrap(pos.detach(), batch, lattice_basis(cell.detach(), pbc), pbc)
    move = wrapped.to(pos.dtype) - pos.detach()
    return _translate(fields, K.POSITION_FIELDS, move), move


def _translate(fields: Mapping[str, torch.Tensor], names, t: torch.Tensor) -> dict[str, torch.Tensor]:
    out = dict(fields)
    for name in names:
        if name in out and name in K.POSITION_FIELDS:
            out[name] = out[name] + t.to(out[name])
    return out


def _permutation(data: Mapping[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """A random permutation of nodes that keeps each node in its own graph."""
    n = _rows(data)
    batch = data.get(K.BATCH)
    if batch is None:
        return torch.randperm(n, generator=gen)
    # Sort by (graph, random key): nodes stay in their graph's contiguous block.
    key = torch.rand(n, generator=gen, dtype=torch.float64) + batch.cpu().to(torch.float64) * 2.0
    return torch.argsort(key).to(batch.device)


def _permute(fields: Mapping[str, torch.Tensor], perm: torch.Tensor, relabel: bool) -> dict[str, torch.Tensor]:
    out = {}
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel(), device=perm.device)
    for name, v in fields.items():
        if name == K.EDGE_INDEX and relabel:
            out[name] = inv[v]  # node perm[k] is now node k
        elif K.is_registered(name) and K.field_kind(name) == K.NODE:
            out[name] = v[perm]
        else:
            out[name] = v
    return out


def _error(got: Mapping[str, torch.Tensor], want: Mapping[str, torch.Tensor], names) -> tuple:
    """Worst absolute and relative error over output fields; each field is scaled by its own size."""
    per_field, worst_rel = {}, 0.0
    for name in names:
        if name not in got and name not in want:  # an output only some batches have (stress on periodic ones)
            continue
        a, b = got[name].detach().to(torch.float64), want[name].detach().to(torch.float64)
        if a.shape != b.shape:
            raise ValueError(
                f"output {name!r} changed shape under the transformation: {tuple(b.shape)} -> {tuple(a.shape)}"
            )
        err = float((a - b).abs().max()) if a.numel() else 0.0
        scale = float(b.abs().max()) if b.numel() else 0.0
        per_field[name] = err
        if err > 0:  # an identically zero output compared exactly has no relative error
            worst_rel = max(worst_rel, err / max(scale, 1e-30))
    return max(per_field.values(), default=0.0), worst_rel, per_field


def audit(
    module: IrrepsModule,
    data: Mapping[str, torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    checks: Sequence[str] = CHECKS,
    trials: int = 2,
    seed: int = 0,
    tolerances: Mapping[torch.dtype, float] | None = None,
    translation_scale: float = 5.0,
    rotations: Sequence[torch.Tensor] | None = None,
) -> AuditReport:
    """Audit ``module`` on ``data`` in ``dtype``; the module itself is not modified.

    Parameters
    ----------
    module : IrrepsModule
        anything with ``irreps_in``/``irreps_out`` dicts and a dict forward.
    data : dict
        a batch containing at least the fields in ``module.irreps_in``.
    dtype : torch.dtype
        the module and the floating fields are cast to it (on a copy).
    checks : sequence of str
        subset of ``("rotation", "reflection", "translation", "permutation")``.
    trials : int
        random group elements per check; the worst is reported.
    rotations : sequence of (3, 3) tensors, optional
        use these matrices (det +1 for ``rotation``, -1 for ``reflection``)
        instead of random ones; for comparisons with other tools.
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown audit checks {unknown}; choose from {list(CHECKS)}")
    for attr in ("irreps_in", "irreps_out"):
        if not isinstance(getattr(module, attr, None), Mapping):
            raise TypeError(
                f"{type(module).__name__} has no {attr} dict; wrap single-tensor e3nn modules with "
                "irrepnet.equivariance.TensorModule"
            )
    tol = {**DEFAULT_TOLERANCES, **(tolerances or {})}.get(dtype)
    if tol is None:
        raise ValueError(f"no tolerance for dtype {dtype}; pass tolerances={{{dtype}: ...}}")
    missing = [k for k in module.irreps_in if k not in data]
    if missing:
        raise KeyError(f"the batch lacks fields {missing} that {type(module).__name__} reads")
    model = copy.deepcopy(module).to(dtype).eval()
    x = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in data.items()}
    outs = list(model.irreps_out)
    claims = claimed_checks(module)
    gen = torch.Generator().manual_seed(seed)

    def run(inp):
        with torch.no_grad():
            return model(inp)

    y = run(x)
    results = []
    for check in checks:
        worst: tuple | None = None
        for trial in range(trials):
            if check in ("rotation", "reflection"):
                if rotations is not None:
                    R = rotations[trial % len(rotations)].to(torch.float64)
                else:
                    R = random_rotation(gen, proper=(check == "rotation"))
                got = run(_act_cell(_act(x, model.irreps_in, R), R))
                want = _act(y, model.irreps_out, R)
            elif check == "translation":
                scale = translation_scale * max(float(x[K.POS].abs().max()), 1.0) if K.POS in x else translation_scale
                t = torch.randn(1, 3, generator=gen, dtype=torch.float64) * scale
                moved, lattice = _wrap_into_cells(_translate(x, model.irreps_in, t))
                got = run(moved)
                want = _translate(y, outs, t)
                if lattice is not None:  # periodic: position outputs follow their atom's image
                    want = _translate(want, outs, lattice)
            else:
                perm = _permutation(x, gen)
                got = run(_permute(x, perm, relabel=True))
                want = _permute(y, perm, relabel=False)
            err = _error(got, want, outs)
            if worst is None or err[1] > worst[1]:
                worst = err
        assert worst is not None  # trials >= 1 (checked above)
        claimed = claims[check]
        passed = (worst[1] <= tol) if claimed else None
        results.append(CheckResult(check, claimed, worst[0], worst[1], tol, passed, worst[2]))
    return AuditReport(
        type(module).__name__,
        Symmetry.parse(getattr(module, "symmetry", "none")).value,
        str(dtype).replace("torch.", ""),
        results,
    )


def audit_all(module, data, dtypes=(torch.float32, torch.float64), **kwargs) -> list[AuditReport]:
    """:func:`audit` in each dtype (float32 and float64 by default)."""
    return [audit(module, data, dtype=d, **kwargs) for d in dtypes]


K.register_field("x", K.NODE)
K.register_field("y", K.NODE)


class TensorModule(IrrepsModule):
    """Adapter putting a single-tensor e3nn module behind the dict interface.

    ``TensorModule(o3.Linear("2x1o", "3x1o"))`` reads field ``"x"`` and writes
    field ``"y"``, with the wrapped module's irreps; the audit can then check it.
    Rows of ``x`` are independent samples (node-like), so the permutation check
    applies.
    """

    symmetry = Symmetry.E3

    def __init__(self, module: torch.nn.Module, irreps_in=None, irreps_out=None):
        super().__init__(
            {"x": irreps_in if irreps_in is not None else module.irreps_in},
            {"y": irreps_out if irreps_out is not None else module.irreps_out},
        )
        self.module = module

    def forward(self, data):
        return {**data, "y": self.module(data["x"])}
