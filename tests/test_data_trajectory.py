"""Trajectory files: the dmol-book npz format, its checks and its error messages."""

import numpy as np
import pytest

from irrepnet.data import trajectory as tj
from irrepnet.data.trajectory import (
    DEFAULT_DMOL_LOCATION,
    DMOL_SHA256,
    check_trajectory,
    file_sha256,
    find_dmol_file,
    is_dmol_file,
    load_trajectory,
    save_trajectory,
    verify_dmol_file,
)

# CC BY-NC: never committed; read from the shared checkout when it is there
DMOL_FILE = find_dmol_file()  # $IRREPNET_DMOL_FILE or ../shared/data/paths.npz
needs_dmol = pytest.mark.skipif(
    DMOL_FILE is None,
    reason=f"dmol-book paths.npz not found at {DEFAULT_DMOL_LOCATION} (CC BY-NC, never committed; set IRREPNET_DMOL_FILE)",
)


def _traj(T=5, N=4, D=2, seed=0):
    return np.random.default_rng(seed).standard_normal((T, N, D))


@pytest.mark.parametrize("D", [2, 3])
def test_roundtrip_and_padding(tmp_path, D):
    arr = _traj(D=D)
    p = save_trajectory(tmp_path / "t.npz", arr)
    x = load_trajectory(p)
    assert x.shape == (5, 4, 3) and x.dtype == np.float64
    np.testing.assert_array_equal(x[..., :D], arr)
    if D == 2:
        assert (x[..., 2] == 0).all()
    with np.load(p) as f:  # the file keeps the caller's layout (2-D stays 2-D)
        assert f.files == ["arr"] and f["arr"].shape == arr.shape


def test_float32_and_integer_files_become_float64(tmp_path):
    np.savez(tmp_path / "f.npz", arr=_traj().astype(np.float32))
    np.savez(tmp_path / "i.npz", arr=np.arange(24).reshape(3, 4, 2))
    assert load_trajectory(tmp_path / "f.npz").dtype == np.float64
    assert load_trajectory(tmp_path / "i.npz")[2, 3, 1] == 23.0


def test_save_appends_suffix_and_refuses_overwrite(tmp_path):
    p = save_trajectory(tmp_path / "traj", _traj())
    assert p.name == "traj.npz" and p.exists()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_trajectory(p, _traj(seed=1))
    save_trajectory(p, _traj(seed=1), overwrite=True)
    np.testing.assert_array_equal(load_trajectory(p)[..., :2], _traj(seed=1))
    assert [q.name for q in tmp_path.iterdir()] == ["traj.npz"]  # no temporary file left


def test_save_checks_the_array(tmp_path):
    with pytest.raises(ValueError, match="NaN or Inf"):
        save_trajectory(tmp_path / "bad.npz", np.full((3, 2, 2), np.nan))
    assert not (tmp_path / "bad.npz").exists()


def test_missing_file_says_where_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dmol-book.*data/paths\.npz.*CC BY-NC 3\.0"):
        load_trajectory(tmp_path / "paths.npz")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        load_trajectory(tmp_path)


def test_npz_without_arr_lists_its_keys(tmp_path):
    np.savez(tmp_path / "k.npz", positions=_traj(), times=np.arange(5))
    with pytest.raises(ValueError, match=r"no array 'arr'.*\['positions', 'times'\]"):
        load_trajectory(tmp_path / "k.npz")


def test_non_npz_file(tmp_path):
    (tmp_path / "x.npz").write_text("not a zip archive")
    with pytest.raises(ValueError, match="not an .npz archive"):
        load_trajectory(tmp_path / "x.npz")
    np.save(tmp_path / "plain.npy", _traj())  # a .npy is not an .npz either
    with pytest.raises(ValueError, match="not an .npz archive"):
        load_trajectory(tmp_path / "plain.npy")


@pytest.mark.parametrize(
    "arr, match",
    [
        (np.zeros((5, 4)), r"must have shape \(T, N, 2\) or \(T, N, 3\).*got 2 dimensions"),
        (np.zeros((5, 4, 3, 1)), "got 4 dimensions"),
        (np.zeros((5, 4, 4)), r"last dimension must be 2 \(x, y\) or 3"),
        (np.zeros((5, 4, 1)), "last dimension must be 2"),
        (np.zeros((1, 4, 2)), r"T=1 frame\(s\); at least 2"),
        (np.zeros((0, 4, 2)), "T=0"),
        (np.zeros((5, 0, 2)), "no particles"),
        (np.array([[["a", "b"]]] * 3), "real numbers"),
    ],
)
def test_bad_arrays(tmp_path, arr, match):
    with pytest.raises(ValueError, match=match):
        check_trajectory(arr)
    np.savez(tmp_path / "bad.npz", arr=arr)
    with pytest.raises(ValueError, match=match):
        load_trajectory(tmp_path / "bad.npz")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_rejected_with_frame(tmp_path, bad):
    arr = _traj(T=6)
    arr[4, 1, 0] = bad
    np.savez(tmp_path / "n.npz", arr=arr)
    with pytest.raises(ValueError, match=r"1 NaN or Inf values \(first bad frames: \[4\]\)"):
        load_trajectory(tmp_path / "n.npz")


def test_any_shape_is_accepted():
    for T, N in [(2, 1), (3, 50), (100, 12)]:
        assert check_trajectory(np.zeros((T, N, 3))).shape == (T, N, 3)


def test_verify_dmol_rejects_other_files(tmp_path):
    p = save_trajectory(tmp_path / "t.npz", _traj())
    assert not is_dmol_file(p)
    assert len(file_sha256(p)) == 64
    with pytest.raises(ValueError, match=f"not the dmol-book paths.npz.*expected {DMOL_SHA256}"):
        verify_dmol_file(p)
    with pytest.raises(ValueError, match="sha256"):
        load_trajectory(p, expect_dmol=True)
    with pytest.raises(FileNotFoundError, match="dmol-book"):
        verify_dmol_file(tmp_path / "nope.npz")


def test_verify_dmol_accepts_matching_hash(tmp_path, monkeypatch):
    p = save_trajectory(tmp_path / "t.npz", _traj())
    monkeypatch.setattr(tj, "DMOL_SHA256", file_sha256(p))
    assert verify_dmol_file(p) == file_sha256(p)
    assert load_trajectory(p, expect_dmol=True).shape == (5, 4, 3)


@pytest.mark.real_data
@needs_dmol
def test_real_dmol_file():
    assert is_dmol_file(DMOL_FILE)
    assert verify_dmol_file(DMOL_FILE) == DMOL_SHA256
    x = load_trajectory(DMOL_FILE, expect_dmol=True)
    assert x.shape == (2048, 12, 3) and (x[..., 2] == 0).all()
    np.testing.assert_array_equal(x[0], x[1])  # a known quirk of the file (README)
