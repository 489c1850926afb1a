r"""cuEquivariance's symmetric contraction behind irrepnet's interface, and the weight map between backends.

NVIDIA cuEquivariance (``cuequivariance-torch``) ships MACE's symmetric contraction
(Batatia et al. 2022, Eqs. 10-11) as ``cuequivariance_torch.SymmetricContraction``: CUDA
kernels when ``cuequivariance-ops-torch`` is installed, a PyTorch fallback (its
``"naive"`` method) otherwise. Its basis is its own: for each order :math:`\nu` and output
irrep, the reduced symmetric tensor-product basis of ``cue.reduced_symmetric_tensor_product_basis``
normalised per output path, weights ``(num_elements, num_weights, channels)``, all orders
stacked. Both backends span the same space of symmetric equivariant polynomials, so the
weights map linearly: if :math:`F^{a}_{\nu k}` and :math:`F^{b}_{\nu j}` are the (symmetrised)
tensors that weight :math:`k` of backend :math:`a` and weight :math:`j` of backend :math:`b`
multiply, then

.. math::

    F^{a}_{\nu k} = \sum_j T_{\nu, kj} F^{b}_{\nu j}, \qquad
    W^{b}_{z, j, c} = \sum_k W^{a}_{z, k, c}\, T_{\nu, kj},

with :math:`T_\nu` solved by least squares in float64 (and refused when the residual is not
at rounding level). :func:`copy_contraction_weights` does this between any two
:class:`~irrepnet.nn.SymmetricContraction` of equal irreps, either backend on either side.

Layouts. cuEquivariance computes in ``ir_mul`` (component-major) order; ``x`` is transposed
into it and the output back to e3nn's ``mul_ir`` at the boundary, irrep by irrep. Node attributes mix the
weights per node (:math:`W_{\text{node}} = \sum_z \text{attr}_z W^{z}`, ``(n, num_weights *
channels)``) before the polynomial runs, exactly as the own backend does, so attributes
need not be one-hot.

Shapes/irreps
-------------
``x (n, irreps_in.dim)``, ``node_attrs (n, num_elements)`` -> ``(n, irreps_out.dim)``, ``mul_ir``.
"""

from __future__ import annotations

import importlib
import itertools

import torch
from e3nn import o3

from ..optional import require
from .symmetric_basis import symmetric_coupling_basis

_INSTALL = "pip install 'irrepnet[cueq]'"
_MAP_TOL = 1e-8  # largest residual (relative) of the least-squares weight map accepted


def _cueq_modules():
    feature = "the cueq backend of SymmetricContraction"
    cue = require("cuequivariance", feature=feature, package="cuequivariance-torch", install=_INSTALL)
    cuet = require("cuequivariance_torch", feature=feature, package="cuequivariance-torch", install=_INSTALL)
    return cue, cuet


def _has_cuda_kernels() -> bool:
    try:
        importlib.import_module("cuequivariance_ops_torch")
    except ImportError:
        return False
    return True


class CueqContraction(torch.nn.Module):
    """cuEquivariance's symmetric-contraction polynomial in ``mul_ir`` layout, weights mixed by node attributes.

    Built from cuEquivariance's public pieces, the descriptor
    ``cue.descriptors.symmetric_contraction`` and the kernel ``cuequivariance_torch.SegmentedPolynomial``:
    the same polynomial, weight layout and method choice as ``cuequivariance_torch.SymmetricContraction``
    (``original_mace=False``; a test checks equal outputs for equal weights). Two reasons not to hold
    that class itself: its ``forward`` takes one element index per node, where this interface mixes
    weights by any ``node_attrs``; and its constructor also computes the original-MACE projection,
    which it does not use with ``original_mace=False`` (65.8 s for ``128x(0e+1o+2e+3o) -> 128x(0e+1o)``
    at correlation 3 on the loaded 2-core development machine, against 4.6 s for the descriptor).
    Building cuEquivariance's PyTorch fallback (one einsum per path, optimised by ``opt_einsum_fx``)
    costs the same either way: 80 s for that case with 3 channels there.

    Parameters
    ----------
    irreps_in, irreps_out : Irreps
        as checked by :func:`~irrepnet.nn.symmetric_contraction.check_contraction_irreps`.
    correlation : int
        highest order.
    num_elements : int
        weight sets.

    Shapes/irreps
    -------------
    ``x (n, irreps_in.dim)``, ``node_attrs (n, num_elements)`` -> ``(n, irreps_out.dim)``;
    ``weight (num_elements, num_weights, channels)``.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, correlation: int, num_elements: int):
        super().__init__()
        cue, cuet = _cueq_modules()
        self.channels = irreps_in[0].mul
        self._in_blocks = tuple((sl.start, sl.stop, ir.dim) for sl, (_, ir) in zip(irreps_in.slices(), irreps_in))
        self._out_blocks = tuple((sl.start, sl.stop, ir.dim) for sl, (_, ir) in zip(irreps_out.slices(), irreps_out))
        self.descriptor = cue.descriptors.symmetric_contraction(
            cue.Irreps("O3", str(irreps_in)), cue.Irreps("O3", str(irreps_out)), tuple(range(1, correlation + 1))
        )
        uniform = self.descriptor.polynomial.all_same_segment_shape()
        # cuEquivariance's own choice: its CUDA kernel when installed and applicable, else its PyTorch code
        self.method = "uniform_1d" if uniform and _has_cuda_kernels() else "naive"
        self.poly = cuet.SegmentedPolynomial(self.descriptor.polynomial, method=self.method)
        num_weights = self.descriptor.inputs[0].dim // self.channels
        self.weight = torch.nn.Parameter(torch.empty(num_elements, num_weights, self.channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights :math:`\\mathcal{N}(0, 1)`, as cuEquivariance initialises them."""
        with torch.no_grad():
            self.weight.normal_()

    def _transpose(self, x: torch.Tensor, blocks, to_ir_mul: bool) -> torch.Tensor:
        """``mul_ir`` <-> ``ir_mul``, block by block (``blocks``: ``(start, stop, irrep dim)``)."""
        n, ch = x.shape[0], self.channels
        shape = (lambda dim: (n, ch, dim)) if to_ir_mul else (lambda dim: (n, dim, ch))
        return torch.cat([x[:, a:b].reshape(shape(dim)).transpose(1, 2).reshape(n, -1) for a, b, dim in blocks], -1)

    def forward(self, x: torch.Tensor, node_attrs: torch.Tensor) -> torch.Tensor:
        weight = node_attrs @ self.weight.flatten(1)  # [n, num_weights * channels]
        [out] = self.poly([weight, self._transpose(x, self._in_blocks, True)])  # [n, irreps_out.dim] ir_mul
        return self._transpose(out, self._out_blocks, False)

    def coupling_tensors(self) -> list[tuple[list[int], torch.Tensor]]:
        """Per order: the weight indices it uses and their tensors ``(k, out_dim / channels, d**nu)``, float64."""
        out = []
        for _, d in self.descriptor.polynomial.operations:
            # segments: weights (one per weight), then nu x the input and the output (one per component)
            shape = [ope.num_segments for ope in d.operands]
            dense = torch.zeros(shape, dtype=torch.float64)
            for path in d.paths:
                dense[path.indices] += float(path.coefficients)
            dense = dense.movedim(-1, 1).reshape(shape[0], shape[-1], -1)  # (weights, out, d**nu)
            used = [i for i in range(shape[0]) if dense[i].abs().max() > 0]
            out.append((used, dense[used]))
        return out


def _symmetrised(t: torch.Tensor, d: int, nu: int) -> torch.Tensor:
    """Average ``(k, out, d**nu)`` over the orderings of its ``nu`` input axes."""
    full = t.reshape(*t.shape[:2], *(d,) * nu)
    perms = itertools.permutations(range(2, nu + 2))
    return torch.stack([full.permute(0, 1, *p) for p in perms]).mean(dim=0).reshape(t.shape)


def coupling_tensors(sc) -> list[tuple[list[int], torch.Tensor]]:
    """What each weight of a :class:`~irrepnet.nn.SymmetricContraction` multiplies, per order.

    Returns
    -------
    list of (list[int], torch.Tensor)
        one entry per order :math:`\\nu`: the indices of its weights in
        ``weight_matrix()``'s path axis, and the float64 tensors ``(k, out_dim / channels, d**nu)``
        that they multiply (per channel), symmetrised over the input axes.
    """
    d = sc.irreps_in.dim // sc.channels
    if sc.backend == "cueq":
        raw = sc.cueq.coupling_tensors()
    else:
        single_in = str(o3.Irreps([(1, ir) for _, ir in sc.irreps_in]))
        raw, k0 = [], 0
        for nu in range(1, sc.correlation + 1):
            tensors, m0 = [], 0
            for _, ir in sc.irreps_out:
                u = symmetric_coupling_basis(single_in, str(ir), nu)  # (k, 2L+1, d, ..., d)
                placed = torch.zeros(len(u), sc.irreps_out.dim // sc.channels, d**nu, dtype=torch.float64)
                placed[:, m0 : m0 + ir.dim] = u.reshape(len(u), ir.dim, d**nu)
                tensors.append(placed)
                m0 += ir.dim
            raw.append((list(range(k0, k0 + sc.num_paths[nu - 1])), torch.cat(tensors)))
            k0 += sc.num_paths[nu - 1]
    return [(idx, _symmetrised(t, d, nu)) for nu, (idx, t) in enumerate(raw, start=1)]


def weight_map(src, dst) -> torch.Tensor:
    """The matrix :math:`T` with ``dst`` weights ``= src weights @ T`` (see the module docstring).

    Parameters
    ----------
    src, dst : SymmetricContraction
        same ``irreps_in``, ``irreps_out`` and ``correlation``; any backends.

    Returns
    -------
    torch.Tensor
        float64, ``(src paths, dst paths)``, block-diagonal over the orders.
    """
    for name in ("irreps_in", "irreps_out", "correlation", "num_elements"):
        if getattr(src, name) != getattr(dst, name):
            raise ValueError(
                f"copying weights needs equal {name}, got {getattr(src, name)} and {getattr(dst, name)}; "
                "build both contractions with the same arguments"
            )
    a_all, b_all = coupling_tensors(src), coupling_tensors(dst)
    total = torch.zeros(src.weight_matrix().shape[1], dst.weight_matrix().shape[1], dtype=torch.float64)
    for nu, ((ia, fa), (ib, fb)) in enumerate(zip(a_all, b_all), start=1):
        fa, fb = fa.flatten(1), fb.flatten(1)
        if len(ia) != len(ib):
            raise ValueError(f"order {nu}: {len(ia)} paths in the source but {len(ib)} in the destination")
        # fa = t @ fb  ->  fb.T @ t.T = fa.T
        t = torch.linalg.lstsq(fb.T, fa.T).solution.T
        residual = (t @ fb - fa).abs().max() / fa.abs().max()
        if residual > _MAP_TOL:
            raise ValueError(f"order {nu}: the two bases do not span the same space (residual {residual:.1e})")
        total[torch.tensor(ia)[:, None], torch.tensor(ib)[None, :]] = t
    return total


def copy_contraction_weights(src, dst) -> None:
    """Set ``dst``'s weights so that it computes the same function as ``src`` (any two backends).

    Parameters
    ----------
    src, dst : SymmetricContraction
        built with the same irreps, correlation and number of elements.

    Examples
    --------
    >>> own = SymmetricContraction("8x0e+8x1o", "8x0e+8x1o", 3, 2, backend="e3nn")  # doctest: +SKIP
    >>> cueq = SymmetricContraction("8x0e+8x1o", "8x0e+8x1o", 3, 2, backend="cueq")  # doctest: +SKIP
    >>> copy_contraction_weights(own, cueq)  # cueq(x, attrs) == own(x, attrs)  # doctest: +SKIP
    """
    t = weight_map(src, dst)
    with torch.no_grad():
        w = src.weight_matrix().detach().to(torch.float64)
        new = torch.einsum("ekc,kj->ejc", w, t.to(w.device))
        dst.set_weight_matrix(new)
