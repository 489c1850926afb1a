"""Reusable layers, each an :class:`~irrepnet.interface.IrrepsModule` with declared irreps."""

from .attention import EquivariantAttention  # noqa: F401
from .egnn import EGNNLayer, RadialFieldLayer, ScalarEmbedding  # noqa: F401
from .embedding import RadialEmbedding, SphericalHarmonicsEdgeAttrs, polynomial_cutoff  # noqa: F401
from .gate import Gate, GateIrreps, gate_irreps  # noqa: F401
from .graph_layer import GraphConstruction  # noqa: F401
from .heads import ScalarHead, VectorHead  # noqa: F401
from .inputs import NodeInputs  # noqa: F401
from .symmetric_basis import symmetric_coupling_basis  # noqa: F401
from .symmetric_contraction import SymmetricContraction, copy_contraction_weights  # noqa: F401
from .tp_conv import EdgeTensorProduct, RadialMLP, TensorProductConv  # noqa: F401
