r"""SE(3)-transformer attention: equivariant multi-head self-attention over a graph.

Fuchs, Worrall, Fischer, Welling, "SE(3)-Transformers: 3D Roto-Translation
Equivariant Attention Networks", NeurIPS 2020, https://arxiv.org/abs/2006.10503.

For receiver :math:`i`, its neighbours :math:`j \in N(i)` and edge vector
:math:`r_{ij} = x_i - x_j` (``edge_vec``), head :math:`h`:

.. math::

    q_i &= W_Q f_i
        && \text{(equivariant linear map, e3nn ``o3.Linear``)} \\
    [k_{ij}, v_{ij}] &= W_{KV} \bigoplus_{u,\,l_{out}} \sum_J \varphi_{J,u}(|r_{ij}|)
        \big(f_{j,u} \otimes Y^J(\hat r_{ij})\big)^{l_{out}}
        && \text{(one tensor product, then one linear map)} \\
    \ell^h_{ij} &= \tau_h \frac{\langle q^h_i, k^h_{ij} \rangle}{\|q^h_i\|\, \|k^h_{ij}\|}
        + \log u(|r_{ij}|),
    \qquad \alpha^h_{ij} = \operatorname{softmax}_{j \in N(i)} \ell^h_{ij} \\
    f'_i &= \mathrm{Gate}\Big(W_S \big[\textstyle\sum_j \alpha^h_{ij}\, u(|r_{ij}|)\, v^h_{ij}
           \,\big\|\, f_i\big]\Big) \;+\; S f_i
        && \text{(self-interaction, gated nonlinearity, skip)}

where :math:`u` is the polynomial cutoff of :func:`~irrepnet.nn.embedding.polynomial_cutoff`
and :math:`\varphi = \mathrm{MLP}(B(|r_{ij}|))` a bias-free radial MLP (e3nn
``FullyConnectedNet``) of ``edge_embedding``, so it vanishes where the embedding does.

*Skip* :math:`S` (``skip``). Inside the gate, :math:`f_i` reaches :math:`f'_i` only
through :math:`\sigma(g)\,W_S f_i`, a vector scaled by a sigmoid of scalars that themselves
depend on the neighbours; after two blocks the input velocity is no longer an exact
linear term of the output. ``"linear"`` adds an equivariant linear self-connection
:math:`S = W_{sc}` (``o3.Linear``; NequIP's self-connection, the self-interaction the paper
adds after each attention layer), ``"residual"`` the identity (needs ``irreps_in ==
irreps_out``), ``"auto"`` the identity where the irreps match and ``W_{sc}`` otherwise,
``"none"`` nothing (the block before the option existed). A checkpoint written without
the skip's weights loads with them set to zero, which is the same function.

*Kernel.* The paper's kernel :math:`W^{lk}(x) = \sum_J \varphi^{lk}_J(\|x\|) W^{lk}_J(\hat x)`
has a full ``c_out x c_in`` radial matrix per path. Here it is factorised as a
per-channel radial weight (e3nn ``"uvu"`` tensor product, the paths :math:`J` into
one output summed) followed by one channel mixing :math:`W_{KV}` shared by all
edges, which yields keys and values of all heads at once (the factorisation of
NequIP and MACE). The full ``"uvw"`` form needs ``c_in * c_out`` weights per edge and
path; through e3nn's per-path weight slicing its backward pass alone took 4 s per
training step at batch 32 on a 2-core CPU, against about 0.1 s for the whole step here.

*Invariant logits.* Query and key have the same irreps; for every irrep :math:`l^p`
the real Wigner matrix is orthogonal and :math:`p \cdot p = +1`, so the plain dot
product over the channels of a head is O(3) invariant. Per irrep it is
:math:`\sqrt{2l+1}` times the ``0e`` output of e3nn's :math:`l \otimes l \to 0e`
tensor product (``wigner_3j(l, l, 0)`` is the identity over :math:`\sqrt{2l+1}`),
at a fraction of the cost. The norms :math:`\|q^h\|`, :math:`\|k^h\|` are invariant too.

*Why a cosine, not* :math:`\langle q, k\rangle / \sqrt{d_h}`. Queries and keys are
normalised per head (QK-norm; Henry et al. 2020, "Query-key normalization for
transformers"; the scaled cosine attention of Swin Transformer V2) and the cosine is
multiplied by a learnable per-head scale :math:`\tau_h` (``logit_scale``, default 2;
:math:`\tau_h = \sqrt{d_h}` would be the scaled dot product of RMS-normalised q, k).
With the plain scaled dot product the logits grow with the square of the features
(up to 46 in the second block at initialisation), and the attention's sharpness
multiplies float32 rounding of short edges: on the conformance N-body batch (a pair
0.08 apart) the float32 audit exceeded its 1e-4 tolerance for about half of random
initialisations (worst 4e-4). With :math:`|\ell| \le \tau_h` the worst of 40
initialisations is 4.5e-5, the profile of the tensor-product convolution (3.8e-5).

*Heads without a loop.* A multiplicity :math:`m` of the key (value) irreps is split
into :math:`H` contiguous groups of :math:`m/H` channels; in e3nn's ``mul x ir``
layout those groups are contiguous slices, so a fixed 0/1 matrix
:math:`M \in \{0,1\}^{d \times H}` assigns every feature to its head. Per-head
logits are ``(q_i * k_ij) @ M_k`` and per-head weights reach the values as
``alpha @ M_v.T``: one matmul each, for all heads, and all heads' keys and values
come from the same tensor product. Since heads split channels, not components,
each head is itself equivariant.

*Smooth cutoff: why* :math:`\log u` *in the logits.* Multiplying the softmax weights
by :math:`u` after normalising would fade the leaving edge, but its
:math:`\exp(\ell)` would still sit in the denominator until the edge vanishes and
then drop out at once, making the other neighbours' weights jump. Adding
:math:`\log u` to the logits puts :math:`u\,e^{\ell}` in numerator *and*
denominator, so the leaving edge's share falls continuously to 0 and the weights
still sum to 1 over the remaining neighbours. The one case it cannot cover is the
last neighbour of a node (its weight is 1 until it leaves); there the values,
multiplied by :math:`u`, go to 0 continuously instead. Edges with :math:`u = 0`
(beyond the cutoff in a full graph) get logit :math:`-\infty`, i.e. weight 0.

The edge work (graph, ``edge_sh``, ``edge_embedding``) is computed once per batch
by the model and shared by all heads and all blocks.

Shapes/irreps
-------------
reads ``node_features (n, I_in.dim)`` with irreps ``I_in``, ``edge_index (2, E)``,
``edge_sh (E, S.dim)`` with irreps ``S`` (e.g. ``Irreps.spherical_harmonics(lmax)``),
``edge_embedding (E, B)`` ``Bx0e``, ``edge_len (E,)``; writes
``node_features (n, I_out.dim)``. Internally ``q (n, K.dim)``, ``k (E, K.dim)``,
``v (E, V.dim)``, logits and weights ``(E, H)``.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch.utils.checkpoint import checkpoint

from .. import keys as K
from ..interface import IrrepsModule
from ..irreps import refresh_wigner_3j
from ..scatter import segment_softmax, segment_sum
from .embedding import polynomial_cutoff
from .gate import Gate, gate_irreps
from .graph_layer import at_receivers, edge_chunks, edge_rows, per_pair, softmax_at_receivers, sum_at_receivers
from .tp_conv import SKIPS

_EPS = 1e-12  # added to squared norms of queries and keys (features are of order one)


def head_matrix(irreps: o3.Irreps, heads: int, what: str = "irreps") -> torch.Tensor:
    """0/1 matrix ``(irreps.dim, heads)``: entry ``(f, h)`` is 1 when feature ``f`` belongs to head ``h``.

    Channel ``u`` of a block ``m x ir`` goes to head ``u // (m / heads)``; every
    multiplicity must therefore be divisible by ``heads``.
    """
    irreps = o3.Irreps(irreps)
    if heads < 1:
        raise ValueError(f"the number of heads must be >= 1, got {heads}")
    bad = [f"{mul}x{ir}" for mul, ir in irreps if mul % heads]
    if bad:
        raise ValueError(
            f"{what} {irreps}: multiplicities of {', '.join(bad)} are not divisible by heads={heads}; "
            f"every multiplicity must be a multiple of the number of heads (each head takes an equal "
            f"share of the channels of every irrep)"
        )
    parts = []
    for mul, ir in irreps:  # construction time only: a loop over irreps blocks, not heads
        parts.append(torch.arange(mul).div(mul // heads, rounding_mode="floor").repeat_interleave(ir.dim))
    owner = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
    return torch.nn.functional.one_hot(owner, heads).to(torch.get_default_dtype())


def _edge_tensor_product(irreps_in: o3.Irreps, irreps_sh: o3.Irreps, targets: o3.Irreps) -> o3.TensorProduct:
    r"""Channel-wise (``uvu``) kernel :math:`\sum_J \varphi_{J,u}(r)\,(f_{j,u} \otimes Y^J)^{l_{out}}`.

    One output block ``mul_in x ir_out`` per (input block, output irrep); the paths
    through the different spherical harmonics :math:`J` that reach it are summed
    into it, each with its own radial weight, as in the paper's kernel
    :math:`W^{lk} = \sum_J \varphi^{lk}_J(\|x\|) W^{lk}_J(\hat x)`. Only output
    irreps that appear in ``targets`` are made.
    """
    wanted = {ir for _, ir in targets}
    blocks: list[tuple[int, o3.Irrep]] = []
    instructions: list[tuple] = []
    for i1, (mul, ir1) in enumerate(irreps_in):
        for ir_out in sorted({ir for _, ir2 in irreps_sh for ir in ir1 * ir2} & wanted):
            paths = [i2 for i2, (_, ir2) in enumerate(irreps_sh) if ir_out in ir1 * ir2]
            instructions += [(i1, i2, len(blocks), "uvu", True) for i2 in paths]
            blocks.append((mul, ir_out))
    if not blocks:
        raise ValueError(f"no tensor-product path from {irreps_in} x {irreps_sh} reaches any irrep of {targets}")
    return o3.TensorProduct(
        irreps_in, irreps_sh, o3.Irreps(blocks), instructions, internal_weights=False, shared_weights=False
    )


class EquivariantAttention(IrrepsModule):
    """SE(3)-transformer attention block over ``node_features`` (see the module docstring).

    Parameters
    ----------
    irreps_in : Irreps
        irreps of the incoming ``node_features``.
    irreps_out : Irreps
        irreps of the outgoing ``node_features``, after the gate (:class:`~irrepnet.nn.gate.Gate`),
        in the gate's order: scalars first, each part simplified.
    irreps_sh : Irreps
        irreps of ``edge_sh``.
    n_basis : int
        width of ``edge_embedding``.
    r_max : float
        cutoff radius of the smooth cutoff :math:`u` (the model's graph radius).
    heads : int
        attention heads; every multiplicity of the key and value irreps must be a multiple of it.
    irreps_key, irreps_value : Irreps, optional
        irreps of queries/keys and of values; default ``irreps_out``.
    logit_scale : float
        initial :math:`\tau_h` multiplying the per-head cosine of query and key (learnt, per head).
    radial_hidden : int
        hidden width of the radial MLP producing the tensor-product weights.
    radial_layers : int
        hidden layers of the radial MLP.
    p : float
        exponent of the polynomial cutoff.
    edge_chunk : int, optional
        on graphs with more edges, take them this many at a time under activation
        checkpointing (:func:`~irrepnet.nn.graph_layer.edge_chunks`): logits of every
        chunk, the softmax over all edges, then the values chunk by chunk; the same numbers.
    skip : {"none", "linear", "residual", "auto"}
        :math:`S` added after the gate (see the module docstring).

    Shapes/irreps
    -------------
    ``node_features (n, irreps_in.dim)`` -> ``node_features (n, irreps_out.dim)``; reads
    ``edge_index (2, E)``, ``edge_sh (E, irreps_sh.dim)``, ``edge_embedding (E, n_basis)``,
    ``edge_len (E,)``. :meth:`attend` gives ``alpha (E, heads)`` and the aggregated
    values ``(n, irreps_value.dim)``.
    """

    def __init__(
        self,
        irreps_in,
        irreps_out,
        irreps_sh,
        n_basis: int,
        r_max: float,
        heads: int = 4,
        irreps_key=None,
        irreps_value=None,
        logit_scale: float = 2.0,
        radial_hidden: int = 32,
        radial_layers: int = 1,
        p: float = 6.0,
        edge_chunk: int | None = None,
        skip: str = "none",
    ):
        irreps_in, irreps_sh = o3.Irreps(irreps_in), o3.Irreps(irreps_sh)
        irreps_out = gate_irreps(irreps_out).irreps_out  # the gate's order: scalars first, simplified
        irreps_key = o3.Irreps(irreps_key if irreps_key is not None else irreps_out)
        irreps_value = o3.Irreps(irreps_value if irreps_value is not None else irreps_out)
        if r_max <= 0 or logit_scale <= 0:
            raise ValueError(f"r_max and logit_scale must be > 0, got r_max={r_max}, logit_scale={logit_scale}")
        if edge_chunk is not None and edge_chunk < 1:
            raise ValueError(f"edge_chunk must be >= 1 edges (or None), got {edge_chunk}")
        if skip not in SKIPS:
            raise ValueError(f"skip must be one of {SKIPS}, got {skip!r}")
        if skip == "residual" and irreps_in != irreps_out:
            raise ValueError(
                f"skip='residual' needs irreps_in == irreps_out, got {irreps_in} -> {irreps_out}; "
                "use skip='linear' or 'auto'"
            )
        if skip == "auto":
            skip = "residual" if irreps_in == irreps_out else "linear"
        self.edge_chunk, self.skip = edge_chunk, skip
        super().__init__(
            {
                K.NODE_FEATURES: irreps_in,
                K.EDGE_INDEX: None,
                K.EDGE_SH: irreps_sh,
                K.EDGE_EMBEDDING: f"{n_basis}x0e",
                K.EDGE_LEN: None,
            },
            {K.NODE_FEATURES: irreps_out},
        )
        key_heads = head_matrix(irreps_key, heads, "key irreps")
        value_heads = head_matrix(irreps_value, heads, "value irreps")
        self.heads, self.r_max, self.p = heads, float(r_max), float(p)
        self.irreps_key, self.irreps_value = irreps_key, irreps_value
        self._kv_dims = [irreps_key.dim, irreps_value.dim]  # ints: the forward reads no Irreps (torch.compile)
        # Fixed, derived from the irreps: not state, so kept out of the state_dict.
        self.register_buffer("key_heads", key_heads, persistent=False)
        self.register_buffer("value_heads", value_heads, persistent=False)
        # log-parametrised so that the scale stays positive and Adam moves it by factors
        self.log_logit_scale = torch.nn.Parameter(torch.full((heads,), math.log(logit_scale)))

        self.query = o3.Linear(irreps_in, irreps_key)
        self.kernel = _edge_tensor_product(irreps_in, irreps_sh, irreps_key + irreps_value)
        self.radial = FullyConnectedNet(
            [n_basis] + [radial_hidden] * radial_layers + [self.kernel.weight_numel], torch.nn.functional.silu
        )
        self.key_value = o3.Linear(self.kernel.irreps_out, irreps_key + irreps_value)
        self.gate = Gate(irreps_out)
        # the skip (f_i) enters the self-interaction, as in the paper's residual attention block
        self.self_interaction = o3.Linear(irreps_value + irreps_in, self.gate.irreps_in[K.NODE_FEATURES])
        self.sc = o3.Linear(irreps_in, irreps_out) if skip == "linear" else None
        if self.sc is not None:  # a checkpoint from before the skip: zero weights, the same function
            self._register_load_state_dict_pre_hook(self._zero_missing_skip)
        # keep the coupling coefficients exact after load_state_dict (a float32 checkpoint) too
        self.register_load_state_dict_post_hook(lambda module, _keys: refresh_wigner_3j(module))

    def _zero_missing_skip(self, state_dict, prefix, *_args):
        if not any(key.startswith(prefix + "self_interaction.") for key in state_dict):
            return  # not this block's state (a partial load): leave it to load_state_dict's checks
        if any(key.startswith(prefix + "sc.") for key in state_dict):
            return
        for name, value in self.sc.state_dict().items():  # in this block's current parametrisation
            state_dict[prefix + "sc." + name] = torch.zeros_like(value)

    def _apply(self, fn, recurse=True):
        # every .to()/.double()/.float() passes here: re-derive the constants in the new dtype
        out = super()._apply(fn, recurse)
        refresh_wigner_3j(self)
        return out

    def attend(self, data):
        """Attention weights and aggregated values, before the self-interaction.

        Returns
        -------
        alpha : (E, H) tensor
            softmax weights of each edge for each head; sum to 1 over a receiver's edges.
        aggregated : (n, V.dim) tensor
            :math:`\\sum_j \\alpha^h_{ij} u_{ij} v^h_{ij}` in e3nn layout, irreps ``irreps_value``.
        """
        x = data[K.NODE_FEATURES]
        sender = data[K.EDGE_INDEX][0]
        n = x.shape[0]
        chunks = edge_chunks(sender.shape[0], self.edge_chunk, data)
        if chunks is not None:
            return self._attend_in_chunks(data, chunks)
        weights = per_pair(self.radial, data)  # [E, weight_numel]
        mixed = self.kernel(x.index_select(0, sender), data[K.EDGE_SH], weights)  # [E, mid.dim]
        kv = self.key_value(mixed)  # [E, K.dim + V.dim]
        # edge rows from here on are (E, ...), or an (n, D, ...) grid on a regular graph
        key, value = edge_rows(kv, data).split(self._kv_dims, dim=-1)
        query = self.query(x)  # [n, K.dim]
        u, log_u = self._cutoff(edge_rows(data[K.EDGE_LEN], data))
        logits = self._logits(at_receivers(query, data), key) + log_u.unsqueeze(-1)
        alpha = softmax_at_receivers(logits, data, n)  # [E, H]
        messages = value * (alpha @ self.value_heads.T) * u.unsqueeze(-1)  # [E, V.dim]
        return alpha.reshape(-1, alpha.shape[-1]), sum_at_receivers(messages, data, n)

    def _logits(self, query_at_edges, key):
        """``(E, H)`` scaled cosine similarity of queries and keys, per head."""
        # per-head squared norms: the eps keeps 0/0 out of a zero key
        q_norm2 = query_at_edges.pow(2) @ self.key_heads  # [E, H]
        k_norm2 = key.pow(2) @ self.key_heads  # [E, H]
        dot = (query_at_edges * key) @ self.key_heads  # [E, H]
        return dot * torch.rsqrt((q_norm2 + _EPS) * (k_norm2 + _EPS)) * self.log_logit_scale.exp()

    def _cutoff(self, length):
        """The envelope ``u`` of the edge lengths and ``log u`` (``-inf`` outside the cutoff)."""
        # u has a triple zero at r_max, reached by cancellation between terms of order 50:
        # in float32 its relative error near the cutoff is percents, and log(u) turns that
        # into logit errors (1e-2 relative audit errors in float32). Evaluated in float64,
        # it is exact to the precision of the result.
        u = polynomial_cutoff(length.double(), self.r_max, self.p).to(length.dtype)  # [E]
        inside = u > 0
        # log(1) where u = 0 keeps the backward pass free of 0/0; those edges get -inf below.
        log_u = torch.where(
            inside, torch.log(torch.where(inside, u, torch.ones_like(u))), torch.full_like(u, -math.inf)
        )
        return u, log_u

    def _key_value(self, x, sender, sh, emb):
        """Keys and values ``(E_c, K.dim)``, ``(E_c, V.dim)`` of the edges given."""
        kv = self.key_value(self.kernel(x.index_select(0, sender), sh, self.radial(emb)))
        return kv.split(self._kv_dims, dim=-1)

    def _chunk_logits(self, x, query, sender, receiver, sh, emb, log_u):
        key, _ = self._key_value(x, sender, sh, emb)
        return self._logits(query.index_select(0, receiver), key) + log_u.unsqueeze(-1)

    def _chunk_messages(self, x, sender, receiver, sh, emb, alpha, u):
        _, value = self._key_value(x, sender, sh, emb)
        messages = value * (alpha @ self.value_heads.T) * u.unsqueeze(-1)
        return segment_sum(messages, receiver, x.shape[0])

    def _attend_in_chunks(self, data, chunks):
        """:meth:`attend` a chunk of edges at a time: logits first, the softmax over all, then values.

        Each chunk runs under activation checkpointing, so only ``(E, H)`` logits and
        ``(n, ...)`` node tensors live across chunks; keys and values are computed twice.
        """
        x, (sender, receiver) = data[K.NODE_FEATURES], data[K.EDGE_INDEX]
        sh, emb, n = data[K.EDGE_SH], data[K.EDGE_EMBEDDING], x.shape[0]
        query = self.query(x)
        u, log_u = self._cutoff(data[K.EDGE_LEN])
        logits = torch.cat(
            [
                checkpoint(
                    self._chunk_logits,
                    x,
                    query,
                    sender[a:b],
                    receiver[a:b],
                    sh[a:b],
                    emb[a:b],
                    log_u[a:b],
                    use_reentrant=False,
                )
                for a, b in chunks
            ]
        )
        alpha = segment_softmax(logits, receiver, n)  # [E, H]
        aggregated = sum(
            checkpoint(
                self._chunk_messages,
                x,
                sender[a:b],
                receiver[a:b],
                sh[a:b],
                emb[a:b],
                alpha[a:b],
                u[a:b],
                use_reentrant=False,
            )
            for a, b in chunks
        )
        return alpha, aggregated

    def forward(self, data):
        _, aggregated = self.attend(data)
        x = data[K.NODE_FEATURES]
        out = self.gate({**data, K.NODE_FEATURES: self.self_interaction(torch.cat([aggregated, x], dim=-1))})
        if self.skip == "linear":
            out[K.NODE_FEATURES] = out[K.NODE_FEATURES] + self.sc(x)
        elif self.skip == "residual":
            out[K.NODE_FEATURES] = out[K.NODE_FEATURES] + x
        return out

    def extra_repr(self) -> str:
        return f"heads={self.heads}, r_max={self.r_max}, skip={self.skip!r}, {super().extra_repr()}"
