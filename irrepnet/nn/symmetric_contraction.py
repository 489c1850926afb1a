r"""MACE's symmetric contraction: the many-body product basis, weighted per chemical element.

Batatia et al. 2022, "MACE: Higher Order Equivariant Message Passing Neural Networks for
Fast and Accurate Force Fields" (NeurIPS), Eqs. 10-11. For a node of element :math:`z`
with atomic basis :math:`A_{c}` (channel :math:`c`, all input irreps stacked in one vector
of dimension :math:`d`), output irrep :math:`L` and correlation orders
:math:`\nu = 1 \ldots N`,

.. math::

    m_{c, LM} = \sum_{\nu=1}^{N} \sum_{k} W^{z}_{\nu L k, c}
                \sum_{a_1 \ldots a_\nu} \mathcal{U}^{L}_{\nu k, M a_1 \ldots a_\nu}
                \, A_{c a_1} \cdots A_{c a_\nu},

channel-wise (channel :math:`c` of the output sees channel :math:`c` of the input only,
e3nn's ``"uuu"``), with the symmetric generalised Clebsch-Gordan tensors :math:`\mathcal{U}`
of :func:`~irrepnet.nn.symmetric_basis.symmetric_coupling_basis` and weights mixed per node
by its element attributes, :math:`W_{\text{node}} = \sum_z \text{attr}_z W^{z}` (one-hot
attributes pick one element's weights).

Evaluation (``backend="e3nn"``). MACE evaluates highest order first, Horner-like: it
contracts :math:`\sum_k W_k \mathcal{U}_k` (a per-node tensor) with :math:`A`, adds the
order :math:`\nu-1` tensor, contracts again. The per-node tensor of the top order has
``n * channels * (2L+1) * d**N`` entries: at MACE's default sizes (1,000 nodes, 128
channels, ``0e+1o+2e+3o`` in, ``1o`` out, :math:`N=3`) that is 1.6e9 floats, 6 GB in
float32. Here the :math:`\nu` copies are used the other way round: because
:math:`\mathcal{U}` is symmetric, only the monomials :math:`A_{a_1} \cdots A_{a_\nu}`
with :math:`a_1 \le \ldots \le a_\nu` are needed (816 instead of 4,096 for
:math:`d = 16, \nu = 3`), each built from one of order :math:`\nu - 1` times one more
:math:`A` (the prefix sharing that Horner's scheme gives), then contracted with
:math:`\mathcal{U}` (multiplicity of the index tuple folded in) in one matmul per order,
and only then weighted. The largest intermediate is the top order's monomials that have a
coefficient, ``n * channels * 356`` floats for ``0e+1o`` out (of the 816 sorted tuples),
and the numbers are those of the definition above (the tests compare with a direct Horner
evaluation to 1e-13 in float64).

``backend="cueq"`` runs NVIDIA cuEquivariance's symmetric contraction instead
(:mod:`irrepnet.nn.symmetric_contraction_cueq`); :func:`~irrepnet.nn.copy_contraction_weights` maps
the weights of one backend onto the other, so that both compute the same function.

Shapes/irreps
-------------
``x (n, irreps_in.dim)`` in e3nn's ``mul_ir`` layout, all irreps with ``channels``
copies; ``node_attrs (n, num_elements)``; returns ``(n, irreps_out.dim)``, ``mul_ir``,
all irreps with ``channels`` copies. Weights: ``weights[nu - 1]`` of shape
``(num_elements, num_paths(nu), channels)``, paths of ``irreps_out[0]`` first.
"""

from __future__ import annotations

import importlib
import math

import torch
from e3nn import o3

from .symmetric_basis import sorted_tuples, symmetric_coupling_basis, tuple_multiplicity
from .symmetric_contraction_cueq import copy_contraction_weights, weight_map  # noqa: F401 (re-exported)

BACKENDS = ("auto", "e3nn", "cueq")


def check_contraction_irreps(irreps_in, irreps_out, correlation: int) -> tuple[o3.Irreps, o3.Irreps, int]:
    """Validate the irreps of a symmetric contraction; returns ``(irreps_in, irreps_out, channels)``."""
    irreps_in, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
    if len(irreps_in) == 0 or len(irreps_out) == 0:
        raise ValueError(f"symmetric contraction needs non-empty irreps, got {irreps_in} -> {irreps_out}")
    muls = {mul for mul, _ in irreps_in} | {mul for mul, _ in irreps_out}
    if len(muls) != 1:
        raise ValueError(
            f"symmetric contraction is channel-wise: every irrep of irreps_in and irreps_out needs the same "
            f"multiplicity, got {irreps_in} -> {irreps_out}; project with an o3.Linear first"
        )
    if not isinstance(correlation, int) or correlation < 1:
        raise ValueError(f"correlation must be an integer >= 1, got {correlation!r}")
    return irreps_in, irreps_out, muls.pop()


def irreps_blocks(irreps: o3.Irreps) -> tuple[tuple[int, int, int], ...]:
    """``(start, stop, irrep dim)`` of each ``mul x ir`` block, as plain integers."""
    return tuple((sl.start, sl.stop, ir.dim) for sl, (_, ir) in zip(irreps.slices(), irreps))


def _single(irreps: o3.Irreps) -> str:
    return str(o3.Irreps([(1, ir) for _, ir in irreps]))


class SymmetricContraction(torch.nn.Module):
    r"""MACE's symmetric contraction (product basis and its element-wise weights).

    Parameters
    ----------
    irreps_in : Irreps or str
        atomic basis, e.g. ``"16x0e+16x1o+16x2e+16x3o"``; one multiplicity (channels) for all.
    irreps_out : Irreps or str
        e.g. ``"16x0e+16x1o"``, same multiplicity; each irrep must be reachable by coupling
        1 to ``correlation`` copies of ``irreps_in``.
    correlation : int
        highest correlation order :math:`N` (MACE's default 3).
    num_elements : int
        number of element weight sets (``node_attrs.shape[1]``).
    backend : {"auto", "e3nn", "cueq"}
        ``"e3nn"``: the implementation here; ``"cueq"``: cuEquivariance's (needs
        ``pip install 'irrepnet[cueq]'``); ``"auto"``: see :func:`resolve_backend`.

    Shapes/irreps
    -------------
    ``x (n, irreps_in.dim)`` and ``node_attrs (n, num_elements)`` -> ``(n, irreps_out.dim)``,
    all in the ``mul_ir`` layout. See the module docstring for the math.
    """

    weight_index: torch.Tensor  # buffers (declared for type checkers)
    combine: torch.Tensor

    def __init__(self, irreps_in, irreps_out, correlation: int, num_elements: int, backend: str = "auto"):
        super().__init__()
        self.irreps_in, self.irreps_out, self.channels = check_contraction_irreps(irreps_in, irreps_out, correlation)
        if num_elements < 1:
            raise ValueError(f"num_elements must be >= 1, got {num_elements}")
        self.correlation, self.num_elements = correlation, num_elements
        self.backend = resolve_backend(backend)
        single_in, d = _single(self.irreps_in), self.irreps_in.dim // self.channels
        # paths[nu - 1][i]: the basis coupling nu copies into irreps_out[i] (float64, cached)
        paths = [[symmetric_coupling_basis(single_in, str(ir), nu) for _, ir in self.irreps_out] for nu in self._orders]
        unreached = [str(ir) for i, (_, ir) in enumerate(self.irreps_out) if all(len(p[i]) == 0 for p in paths)]
        if unreached:
            raise ValueError(
                f"irreps_out {'+'.join(unreached)} cannot be reached by coupling 1 to {correlation} copies of "
                f"{single_in}; remove it from irreps_out or add input irreps (or raise correlation)"
            )
        self.num_paths = [sum(len(u) for u in p) for p in paths]  # per order
        self._paths_per_irrep = [[len(u) for u in p] for p in paths]
        self._out_dim1 = self.irreps_out.dim // self.channels
        # plain tuples for forward: dynamo cannot trace e3nn's Irreps (a tuple subclass)
        self._dim_in = self.irreps_in.dim
        self._in_blocks = irreps_blocks(self.irreps_in)
        self._out_blocks = tuple((start // self.channels, dim) for start, _, dim in irreps_blocks(self.irreps_out))
        if self.backend == "cueq":
            from .symmetric_contraction_cueq import CueqContraction  # imports cuequivariance, so only here

            self.cueq = CueqContraction(self.irreps_in, self.irreps_out, correlation, num_elements)
            return
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.empty(num_elements, k, self.channels)) for k in self.num_paths]
        )
        self._build_constants(paths, d)
        self.reset_parameters()

    @property
    def _orders(self) -> range:
        return range(1, self.correlation + 1)

    def _build_constants(self, paths: list[list[torch.Tensor]], d: int) -> None:
        """Monomial index lists, the per-order projections onto the paths, and the column bookkeeping."""
        dtype = torch.get_default_dtype()
        self._proj64: list[torch.Tensor] = []
        weight_index, out_index, k0 = [], [], 0
        out_offsets = [0]
        for _, ir in self.irreps_out:
            out_offsets.append(out_offsets[-1] + ir.dim)
        prev_index = {t: i for i, t in enumerate(sorted_tuples(d, 0))}
        for nu, per_irrep in zip(self._orders, paths):
            tuples = sorted_tuples(d, nu)
            # Column (i, M, k) of this order's projection: U[k, M, tuple] * multiplicity(tuple)
            blocks = []
            for i, u in enumerate(per_irrep):
                if len(u) == 0:
                    continue
                flat = u.reshape(len(u), u.shape[1], -1)  # (k, M, d**nu)
                blocks.append(flat.permute(2, 1, 0).reshape(flat.shape[2], -1))  # (d**nu, M*k), M-major
                for m in range(u.shape[1]):
                    for k in range(len(u)):
                        weight_index.append(k0 + k)
                        out_index.append(out_offsets[i] + m)
                k0 += len(u)
            full = torch.cat(blocks, dim=1)
            flat_index = [sum(a * d ** (nu - 1 - j) for j, a in enumerate(t)) for t in tuples]
            mult = torch.tensor([float(tuple_multiplicity(t)) for t in tuples], dtype=torch.float64)
            proj = full[flat_index] * mult[:, None]  # (T_nu, P_nu)
            parent = [prev_index[t[:-1]] for t in tuples]
            last = [t[-1] for t in tuples]
            if nu == self.correlation > 1:  # the top order feeds no higher one: keep only monomials it uses
                used = proj.abs().amax(dim=1) > 0
                proj = proj[used]
                parent = [p for p, keep in zip(parent, used.tolist()) if keep]
                last = [a for a, keep in zip(last, used.tolist()) if keep]
            self._proj64.append(proj)
            self.register_buffer(f"proj_{nu}", proj.to(dtype), persistent=False)
            self.register_buffer(f"parent_{nu}", torch.tensor(parent, dtype=torch.long), persistent=False)
            self.register_buffer(f"last_{nu}", torch.tensor(last, dtype=torch.long), persistent=False)
            prev_index = {t: i for i, t in enumerate(tuples)}
        self.register_buffer("weight_index", torch.tensor(weight_index, dtype=torch.long), persistent=False)
        combine = torch.zeros(len(out_index), self._out_dim1, dtype=torch.float64)
        combine[torch.arange(len(out_index)), torch.tensor(out_index)] = 1.0
        self.register_buffer("combine", combine.to(dtype), persistent=False)

    def _apply(self, fn, *args, **kwargs):
        # .double() after a float32 build would keep float32-rounded coupling tensors; refill the
        # projections from their float64 originals in whatever dtype/device fn gave them.
        out = super()._apply(fn, *args, **kwargs)
        for nu, proj in zip(self._orders, getattr(self, "_proj64", [])):
            buf = getattr(self, f"proj_{nu}")
            setattr(self, f"proj_{nu}", proj.to(device=buf.device, dtype=buf.dtype))
        return out

    def reset_parameters(self) -> None:
        """Weights drawn from :math:`\\mathcal{N}(0, 1/K_{\\nu L})`, :math:`K_{\\nu L}` the number of paths of order :math:`\\nu` into irrep :math:`L`."""
        if self.backend == "cueq":
            self.cueq.reset_parameters()
            return
        with torch.no_grad():
            for w, counts in zip(self.weights, self._paths_per_irrep):
                k0 = 0
                for k in counts:
                    if k:
                        w[:, k0 : k0 + k].normal_(0.0, 1.0 / math.sqrt(k))
                    k0 += k

    def weight_matrix(self) -> torch.Tensor:
        """All weights as one ``(num_elements, sum(num_paths), channels)`` tensor, orders in turn."""
        if self.backend == "cueq":
            return self.cueq.weight
        return torch.cat(list(self.weights), dim=1)

    def set_weight_matrix(self, weight: torch.Tensor) -> None:
        """Overwrite all weights from a ``(num_elements, sum(num_paths), channels)`` tensor (any dtype)."""
        with torch.no_grad():
            if self.backend == "cueq":
                self.cueq.weight.copy_(weight)
                return
            for w, part in zip(self.weights, weight.split(self.num_paths, dim=1)):
                w.copy_(part)

    def forward(self, x: torch.Tensor, node_attrs: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self._dim_in or node_attrs.shape[-1] != self.num_elements:
            raise ValueError(
                f"SymmetricContraction expects x (n, {self._dim_in}) and node_attrs (n, {self.num_elements}), "
                f"got {tuple(x.shape)} and {tuple(node_attrs.shape)}"
            )
        if self.backend == "cueq":
            return self.cueq(x, node_attrs)
        n, ch = x.shape[0], self.channels
        # Monomials are rows of (count, n * channels): gathering whole rows is a copy of
        # contiguous memory, where gathering along the last axis was 60% of the forward.
        xs = torch.cat([x[:, a:b].reshape(n, ch, dim) for a, b, dim in self._in_blocks], -1)
        xs = xs.permute(2, 0, 1).reshape(-1, n * ch)  # [d, n * channels]
        w = node_attrs @ self.weight_matrix().flatten(1)  # [n, paths * channels]
        w = w.reshape(n, -1, ch).index_select(1, self.weight_index).transpose(0, 1).reshape(-1, n * ch)
        mono = xs
        feats = []
        for nu in self._orders:
            if nu > 1:  # degree-nu monomials: one of degree nu-1 times one more component
                mono = mono.index_select(0, getattr(self, f"parent_{nu}")) * xs.index_select(
                    0, getattr(self, f"last_{nu}")
                )
            feats.append(getattr(self, f"proj_{nu}").T @ mono)  # [(irrep, M, k) of order nu, n * channels]
        y = self.combine.T @ (torch.cat(feats, dim=0) * w)  # [out_dim / channels, n * channels]
        y = y.reshape(-1, n, ch)
        return torch.cat([y[o : o + dim].permute(1, 2, 0).reshape(n, ch * dim) for o, dim in self._out_blocks], -1)

    def extra_repr(self) -> str:
        return (
            f"{self.irreps_in} -> {self.irreps_out}, correlation={self.correlation}, "
            f"num_elements={self.num_elements}, paths={self.num_paths}, backend={self.backend!r}"
        )


def resolve_backend(backend: str) -> str:
    """The backend ``"auto"`` stands for, or ``backend`` itself once checked.

    ``"auto"`` is ``"cueq"`` when CUDA is available and cuEquivariance imports with its CUDA
    kernels (``cuequivariance_torch`` and ``cuequivariance_ops_torch``), else ``"e3nn"``.

    On the CPU cuEquivariance runs its PyTorch fallback, which was the slower one in
    ``benchmarks/results/symmetric-contraction`` (MACE's default sizes, 1,000 nodes, one
    thread, both in one process): forward 6.8 s against 4.8 s at 128 channels, forward and
    backward 96 s against 9.0 s, and 120-270 s to build. On CUDA the choice follows what
    cuEquivariance's kernels are for and was not measured here; without the kernels it
    would run the same fallback, so it is not chosen then.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown symmetric contraction backend {backend!r}; use one of {BACKENDS}")
    if backend != "auto":
        return backend
    if not torch.cuda.is_available():
        return "e3nn"
    try:
        for module in ("cuequivariance_torch", "cuequivariance_ops_torch"):
            importlib.import_module(module)
    except ImportError:
        return "e3nn"
    return "cueq"
