import pytest
import torch
from e3nn import o3

from irrepnet.irreps import as_irreps, as_irreps_dict, irreps_D, pack_vectors, random_rotation, unpack_vectors, wigner_D


def test_cartesian_vectors_are_1o_in_e3nn():
    # The design relies on this: Cartesian (x, y, z) vectors are e3nn's 1o with no basis change.
    R = o3.rand_matrix(dtype=torch.float64)
    assert torch.allclose(o3.Irreps("1o").D_from_matrix(R), R, atol=1e-5)
    assert torch.allclose(irreps_D("1o", R), R, atol=1e-13)


def test_packed_vector_channels_transform_as_Cx1o():
    R = random_rotation(torch.Generator().manual_seed(1))
    v = torch.randn(7, 4, 3, dtype=torch.float64)
    x = pack_vectors(v)
    assert x.shape == (7, 12)
    rotated_each = v @ R.T
    assert torch.allclose(unpack_vectors(x @ irreps_D("4x1o", R).T), rotated_each, atol=1e-13)
    assert torch.allclose(unpack_vectors(x @ o3.Irreps("4x1o").D_from_matrix(R).T), rotated_each, atol=1e-5)


@pytest.mark.parametrize("l", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("p", [1, -1])
def test_wigner_D_matches_e3nn_and_is_exact(l, p):
    gen = torch.Generator().manual_seed(l)
    R1, R2 = random_rotation(gen), random_rotation(gen, proper=False)
    for R in (R1, R2):
        D = wigner_D(l, R, p)
        assert torch.allclose(D, o3.Irrep(l, p).D_from_matrix(R), atol=2e-4)  # e3nn's own accuracy
        assert torch.allclose(D @ D.T, torch.eye(2 * l + 1, dtype=torch.float64), atol=1e-12)
    # a group homomorphism to float64 precision: D(R1 R2) = D(R1) D(R2)
    assert torch.allclose(wigner_D(l, R1 @ R2, p), wigner_D(l, R1, p) @ wigner_D(l, R2, p), atol=1e-12)


def test_our_wigner_D_is_more_exact_than_e3nn_in_float64():
    # Why irrepnet builds its own D: e3nn's goes through Euler angles and loses precision.
    R = random_rotation(torch.Generator().manual_seed(3))
    x = torch.randn(50, 3, dtype=torch.float64)
    y, y_rot = o3.spherical_harmonics(3, x, False), o3.spherical_harmonics(3, x @ R.T, False)
    err_ours = (y_rot - y @ wigner_D(3, R).T).abs().max()
    err_e3nn = (y_rot - y @ o3.Irrep(3, -1).D_from_matrix(R).T).abs().max()
    assert err_ours < 1e-12 < err_e3nn


def test_random_rotation_is_proper_or_improper():
    g = torch.Generator().manual_seed(0)
    assert torch.linalg.det(random_rotation(g)) == pytest.approx(1.0)
    assert torch.linalg.det(random_rotation(g, proper=False)) == pytest.approx(-1.0)


def test_bad_irreps_and_shapes_give_clear_errors():
    with pytest.raises(ValueError, match="invalid irreps"):
        as_irreps("3xq")
    assert as_irreps_dict({"a": "2x0e", "b": None}) == {"a": o3.Irreps("2x0e"), "b": None}
    with pytest.raises(ValueError, match=r"\(n, C, 3\)"):
        pack_vectors(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="orthogonal"):
        wigner_D(1, 2 * torch.eye(3))
