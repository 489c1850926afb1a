"""The qm9 task: PyG's raw QM9 files read from a folder the test writes (nothing is downloaded).

The folder holds 12 molecules in the format of ``gdb9.sdf`` (SDF V2000 blocks),
``gdb9.sdf.csv`` (MoleculeNet's header) and ``uncharacterized.txt`` (text header and
footer, 1-based indices), one of them uncharacterized. gdb_1 (methane) carries its real
QM9 geometry and properties, so the unit conversions are checked against hand-computed
values; the other rows are made up but plausible.
"""

import json
import math
import warnings

import numpy as np
import pytest
import torch

from irrepnet import keys as K
from irrepnet.data import qm9 as Q
from irrepnet.equivariance import audit
from irrepnet.interface import IrrepsModel
from irrepnet.registry import ConfigError, build_model
from irrepnet.tasks import load_task, task_spec

# the test folder is not the full QM9: the split warning is expected (and checked once, below)
pytestmark = pytest.mark.filterwarnings("ignore::irrepnet.data.qm9.QM9SplitWarning")

# (symbol, x, y, z) in Angstrom; gdb_1 is QM9's own methane
BASE = {
    "CH4": [
        ("C", -0.0127, 1.0858, 0.0080),
        ("H", 0.0022, -0.0060, 0.0020),
        ("H", 1.0117, 1.4638, 0.0003),
        ("H", -0.5408, 1.4475, -0.8766),
        ("H", -0.5238, 1.4379, 0.9064),
    ],
    "NH3": [
        ("N", -0.0404, 1.0241, 0.0626),
        ("H", 0.0173, 0.0125, -0.0274),
        ("H", 0.9158, 1.3587, -0.2927),
        ("H", -0.5203, 1.3435, -0.7755),
    ],
    "H2O": [("O", -0.0343, 0.9775, 0.0076), ("H", 0.0648, 0.0206, 0.0015), ("H", 0.8717, 1.3008, 0.0007)],
    "C2H2": [("C", 0.0, 0.0, 0.6013), ("C", 0.0, 0.0, -0.6013), ("H", 0.0, 0.0, 1.6644), ("H", 0.0, 0.0, -1.6644)],
    "HCN": [("C", 0.0, 0.0, 0.0), ("N", 0.0, 0.0, 1.1560), ("H", 0.0, 0.0, -1.0660)],
    "CH2O": [("C", 0.0, 0.0, 0.0), ("O", 0.0, 0.0, 1.2050), ("H", 0.0, 0.9400, -0.5850), ("H", 0.0, -0.9400, -0.5850)],
    "C2H6": [
        ("C", 0.0, 0.0, 0.7650),
        ("C", 0.0, 0.0, -0.7650),
        ("H", 1.0180, 0.0, 1.1600),
        ("H", -0.5090, 0.8816, 1.1600),
        ("H", -0.5090, -0.8816, 1.1600),
        ("H", -1.0180, 0.0, -1.1600),
        ("H", 0.5090, 0.8816, -1.1600),
        ("H", 0.5090, -0.8816, -1.1600),
    ],
    "CH3F": [
        ("C", 0.0, 0.0, 0.0),
        ("F", 0.0, 0.0, 1.3830),
        ("H", 1.0300, 0.0, -0.3600),
        ("H", -0.5150, 0.8920, -0.3600),
        ("H", -0.5150, -0.8920, -0.3600),
    ],
}
ORDER = ["CH4", "NH3", "H2O", "C2H2", "HCN", "CH2O", "C2H6", "CH3F", "NH3", "CH2O", "C2H6", "CH3F"]
DROPPED = 5  # 1-based: gdb_5 (HCN) is listed in uncharacterized.txt
HEADER = "mol_id,A,B,C,mu,alpha,homo,lumo,gap,r2,zpve,u0,u298,h298,g298,cv,u0_atom,u298_atom,h298_atom,g298_atom"
# gdb_1's row of QM9 (methane): A..C GHz, mu D, alpha bohr^3, homo lumo gap Ha, r2 bohr^2, zpve u0 u298 h298 g298 Ha
METHANE = [
    157.7118,
    157.70997,
    157.70699,
    0.0,
    13.21,
    -0.3877,
    0.1171,
    0.5048,
    35.3641,
    0.044749,
    -40.47893,
    -40.476062,
    -40.475117,
    -40.498597,
    6.469,
]
REF_U0 = {"H": -0.500273, "C": -37.846772, "N": -54.583861, "O": -75.064579, "F": -99.718730}  # Ha, QM9 atomref
EV_PER_HA = 27.211386  # CODATA, to 8 digits: the tests check the conversion to 1e-6 relative


def _rotated(atoms, k):
    """Molecule ``atoms`` rotated about z by ``k`` radians and shifted: another geometry, same connectivity."""
    c, s = math.cos(k), math.sin(k)
    return [(e, c * x - s * y + k, s * x + c * y, z - k) for e, x, y, z in atoms]


def molecules():
    out = []
    for i, name in enumerate(ORDER):
        atoms = BASE[name] if i < len(BASE) else _rotated(BASE[name], 0.7 * i)  # copies: other frames
        out.append((f"gdb_{i + 1}", atoms))
    return out


def csv_row(i, atoms):
    if i == 0:
        values = list(METHANE)
    else:  # made up, but functions of the molecule (invariant): rotated copies share their values
        heavy = sum(e != "H" for e, *_ in atoms)
        spread = sum(math.dist(a[1:], b[1:]) for a in atoms for b in atoms) / 2
        refs = sum(REF_U0[e] for e, *_ in atoms)
        u0 = refs - 0.1 * heavy - 0.05 * len(atoms) - 0.001 * spread
        homo, lumo = -0.25 - 0.01 * heavy, 0.05 + 0.002 * spread
        values = [
            10.0 + spread,
            9.0 + spread,
            8.0 + spread,
            0.3 * heavy,
            2.0 + 3.0 * heavy + len(atoms) + 0.1 * spread,
            homo,
            lumo,
            lumo - homo,
            20.0 + 3 * spread,
            0.01 * len(atoms),
            u0,
            u0 + 0.003,
            u0 + 0.004,
            u0 - 0.02,
            3.0 * len(atoms),
        ]
    atom_kcal = [627.5 * (values[10] - sum(REF_U0[e] for e, *_ in atoms))] * 4  # not read by irrepnet
    return ",".join([f"gdb_{i + 1}"] + [repr(v) for v in values + atom_kcal])


def sdf_block(title, atoms, charge_line=False):
    bonds = [
        (a + 1, b + 1)
        for a in range(len(atoms))
        for b in range(a + 1, len(atoms))
        if math.dist(atoms[a][1:], atoms[b][1:]) < 1.6
    ]
    lines = [title, "     RDKit          3D", "", f"{len(atoms):3d}{len(bonds):3d}  0  0  0  0  0  0  0  0999 V2000"]
    lines += [f"{x:10.4f}{y:10.4f}{z:10.4f} {e:<3} 0  0  0  0  0  0  0  0  0  0  0  0" for e, x, y, z in atoms]
    lines += [f"{a:3d}{b:3d}  1  0" for a, b in bonds]
    if charge_line:
        lines.append("M  CHG  1   1   0")
    return "\n".join(lines + ["M  END", "$$$$"])


def write_qm9(folder, mols=None, dropped=(DROPPED,)):
    """Write PyG's three raw files for ``mols`` into ``folder``; returns it."""
    mols = molecules() if mols is None else mols
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gdb9.sdf").write_text(
        "\n".join(sdf_block(t, a, charge_line=(i == 2)) for i, (t, a) in enumerate(mols)) + "\n"
    )
    (folder / "gdb9.sdf.csv").write_text("\n".join([HEADER] + [csv_row(i, a) for i, (_, a) in enumerate(mols)]) + "\n")
    head = [
        " Indices of the molecules that failed the consistency check,",
        " with their SMILES before and",
        " after the B3LYP relaxation.",
        "",
        " Rows are 1-based indices into the data set.",
        "",
        " " + "=" * 60,
        "   Index   SMILES (GDB-17)    SMILES (B3LYP)",
        " " + "=" * 60,
    ]
    body = [f"  {i:6d}   C#N    [C-]#[NH+]" for i in dropped]
    (folder / "uncharacterized.txt").write_text("\n".join(head + body + [" " + "=" * 60, ""]) + "\n")
    return folder


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path):
    monkeypatch.setenv("IRREPNET_CACHE", str(tmp_path / "cache"))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def qm9_dir(tmp_path):
    return write_qm9(tmp_path / "raw")


def load(folder, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Q.QM9SplitWarning)
        return Q.load_qm9(folder, **kw)


# --- parsing ----------------------------------------------------------------------------------
def test_the_raw_files_are_parsed_atom_by_atom(qm9_dir):
    raw = Q.parse_raw(qm9_dir)
    mols = molecules()
    assert raw["num_nodes"].tolist() == [len(a) for _, a in mols]
    assert raw["gdb_index"].tolist() == list(range(1, 13))
    z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
    assert raw["z"].tolist() == [z[e] for _, a in mols for e, *_ in a]
    np.testing.assert_allclose(raw["pos"][:5], [a[1:] for a in BASE["CH4"]], atol=1e-12)
    assert raw["excluded"].tolist() == [i + 1 == DROPPED for i in range(12)]


def test_uncharacterized_molecules_are_dropped_from_every_split(qm9_dir):
    splits = load(qm9_dir)
    members = np.concatenate([ds.molecule for ds in splits.values()])
    assert sorted(members.tolist()) == [i for i in range(1, 13) if i != DROPPED]
    assert sum(len(ds) for ds in splits.values()) == 11
    # an HCN (gdb_5, the dropped one) would be the only molecule with 3 atoms and a nitrogen among them
    for ds in splits.values():
        assert DROPPED not in ds.molecule.tolist()


def test_units_homo_in_meV_and_U0_as_an_atomization_energy(qm9_dir):
    raw = Q.parse_raw(qm9_dir)
    homo = Q.target_values(raw, "homo")
    assert homo[0] == pytest.approx(-0.3877 * EV_PER_HA * 1000, rel=1e-6)  # -10549.9 meV
    u0 = Q.target_values(raw, "U0")
    by_hand = (-40.47893 - (REF_U0["C"] + 4 * REF_U0["H"])) * EV_PER_HA * 1000
    assert u0[0] == pytest.approx(by_hand, rel=1e-6)
    assert -18_000 < u0[0] < -17_000  # methane's atomization energy, about -17.2 eV
    # the atom references agree with PyG's (its QM9.atomref(7), in eV, made with 27.211386 eV/Ha)
    pyg_refs_ev = -1029.86312267 + 4 * -13.61312172
    assert -40.47893 * EV_PER_HA * 1000 - u0[0] == pytest.approx(1000 * pyg_refs_ev, abs=0.01)
    # the unconverted targets stay in the CSV's units; Cv loses 2.981 cal/(mol K) per atom (EGNN's subtract_thermo)
    assert Q.target_values(raw, "alpha")[0] == 13.21 and Q.target_values(raw, "r2")[0] == 35.3641
    assert Q.target_values(raw, "Cv")[0] == pytest.approx(6.469 - 5 * 2.981)
    assert Q.target_values(raw, "zpve")[0] == pytest.approx(0.044749 * EV_PER_HA * 1000, rel=1e-6)


def test_the_units_table_names_all_twelve_targets():
    assert list(Q.TARGETS) == ["mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv"]
    units = {t.name: t.unit for t in Q.TARGETS.values()}
    assert {k for k, u in units.items() if u == "meV"} == {"homo", "lumo", "gap", "zpve", "U0", "U", "H", "G"}
    assert units["mu"] == "D" and units["alpha"] == "bohr^3" and units["r2"] == "bohr^2"
    assert len(Q.units_table().splitlines()) == 13
    assert Q.get_target("u0").name == "U0" and Q.get_target("CV").name == "Cv"


def test_parsed_files_are_cached_and_reread_when_a_file_changes(qm9_dir, tmp_path, monkeypatch):
    first = Q.cached_raw(qm9_dir, cache_dir=tmp_path / "c")
    monkeypatch.setattr(Q, "parse_raw", lambda folder: pytest.fail("the cache was not used"))
    again = Q.cached_raw(qm9_dir, cache_dir=tmp_path / "c")
    assert np.array_equal(first["pos"], again["pos"]) and np.array_equal(first["values"], again["values"])
    monkeypatch.undo()
    csv = qm9_dir / "gdb9.sdf.csv"
    csv.write_text(csv.read_text().replace("-0.3877", "-0.3878"))
    changed = Q.cached_raw(qm9_dir, cache_dir=tmp_path / "c")
    assert changed["values"][0, list(Q.TARGETS).index("homo")] == -0.3878


# --- the split ---------------------------------------------------------------------------------
def test_the_split_sizes_are_the_egnn_papers_on_the_full_qm9():
    assert Q.split_sizes(133_885 - 3_054) == (100_000, 17_748, 13_083)
    # the EGNN/Cormorant rule, written out: seed 0, one permutation, cut at 100000 and 100000 + 17748
    n = 130_831
    np.random.seed(0)
    perm = np.random.permutation(n)
    split = Q.egnn_split(n)
    assert np.array_equal(split["train"], np.sort(perm[:100_000]))
    assert np.array_equal(split["valid"], np.sort(perm[100_000:117_748]))
    assert np.array_equal(split["test"], np.sort(perm[117_748:]))


@pytest.mark.parametrize("n, sizes", [(3, (1, 1, 1)), (5, (3, 1, 1)), (11, (8, 2, 1)), (100, (76, 14, 10))])
def test_small_folders_get_the_rule_scaled_to_fractions(n, sizes):
    assert Q.split_sizes(n) == sizes
    split = Q.egnn_split(n)
    assert tuple(len(split[s]) for s in ("train", "valid", "test")) == sizes
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(n))


def test_a_folder_that_is_not_the_full_qm9_warns_that_its_split_is_not_the_papers(qm9_dir):
    with pytest.warns(Q.QM9SplitWarning, match="12 molecules, 1 of them uncharacterized.*not the paper's split"):
        splits = Q.load_qm9(qm9_dir)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [8, 2, 1]
    with pytest.raises(ValueError, match="at least 3"):
        Q.split_sizes(2)


# --- the dataset and the task ------------------------------------------------------------------
def test_dataset_fields_and_batches(qm9_dir):
    train = load(qm9_dir, target="gap")["train"]
    sample = train[0]
    n = sample[K.POS].shape[0]
    assert sample[K.SPECIES_ONEHOT].shape == (n, 5) and torch.all(sample[K.SPECIES_ONEHOT].sum(1) == 1)
    assert sample[K.TARGET_PROPERTY].shape == (1, 1) and K.field_kind(K.TARGET_PROPERTY) == K.GRAPH
    batch = train.batch([0, 1, 2])
    assert batch[K.TARGET_PROPERTY].shape == (3, 1) and batch[K.NUM_NODES].sum() == batch[K.POS].shape[0]
    assert train.unit == "meV" and "gap in meV" in repr(train)
    sub = load(qm9_dir, n_train=3)["train"]
    assert len(sub) == 3 and sub.molecule.tolist() == train.molecule[:3].tolist()


def test_task_spec_inputs_and_output():
    spec = task_spec("qm9", target="U0")
    assert str(spec.inputs[K.POS]) == "1x1o" and str(spec.inputs[K.SPECIES_ONEHOT]) == "5x0e"
    assert spec.target == K.PROPERTY and spec.num_nodes is None
    assert spec.extras["target"] == "U0" and spec.extras["unit"] == "meV" and spec.extras["pooling"] == "sum"
    assert task_spec("qm9").extras["target"] == "homo"


def test_normalisation_is_the_training_mean_and_mad(qm9_dir):
    from irrepnet.train.normalization import NormalizedModel, fit_scales

    task = load_task("qm9", data=str(qm9_dir), target="homo")
    y = task.train.arrays()[K.TARGET_PROPERTY].double().reshape(-1)
    mean = float(y.mean())
    mad = float((y - mean).abs().mean())
    model = build_model("egnn", task.spec, hidden=8, layers=1)
    scales = fit_scales(model, task.train.arrays(), K.PROPERTY, None)
    assert scales["shifts"][K.PROPERTY] == pytest.approx(mean, rel=1e-12)
    assert scales["outputs"][K.PROPERTY] == pytest.approx(mad, rel=1e-12) and mad > 0
    wrapped = NormalizedModel(model, scales, output=K.PROPERTY).double().eval()
    batch = task.train.batch([0, 1])
    raw = model.double()(batch)[K.PROPERTY]
    torch.testing.assert_close(wrapped(batch)[K.PROPERTY], mad * raw + mean)  # physical = MAD x f + mean
    target = wrapped.normalized_target(batch, batch[K.TARGET_PROPERTY], K.PROPERTY)
    torch.testing.assert_close(target, (batch[K.TARGET_PROPERTY] - mean) / mad)


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_pooling_sums_or_averages_the_atoms(qm9_dir, pooling):
    task = load_task("qm9", data=str(qm9_dir), pooling=pooling)
    torch.manual_seed(0)
    model = build_model("egnn", task.spec, hidden=8, layers=1).double().eval()
    batch = task.train.batch([0, 1, 2])
    node = model.backbone(batch)[K.NODE_ENERGY]
    pooled = torch.zeros(3, 1, dtype=node.dtype).index_add_(0, batch[K.BATCH], node)
    if pooling == "mean":
        pooled = pooled / batch[K.NUM_NODES].double()[:, None]
    torch.testing.assert_close(model(batch)[K.PROPERTY], pooled)
    assert set(model.irreps_out) == {K.PROPERTY}  # no forces


@pytest.mark.parametrize("name", ["egnn", "tfn"])
def test_the_prediction_is_invariant(qm9_dir, name):
    """Rotation, reflection, translation and permutation of the atoms leave the predicted property unchanged."""
    task = load_task("qm9", data=str(qm9_dir))
    torch.manual_seed(0)
    model = build_model(name, task.spec)
    report = audit(model, task.train.batch([0, 1, 2, 3]), trials=2)
    assert report.passed, str(report)
    assert {c.check for c in report.checks if c.claimed} >= {"rotation", "reflection", "permutation"}
    assert set(report["rotation"].per_field) == {K.PROPERTY}


class _LeaksX(IrrepsModel):
    """A property that reads the raw x coordinates: not invariant; the audit must say so."""

    def __init__(self):
        super().__init__({K.POS: "1o", K.SPECIES_ONEHOT: "5x0e"}, {K.PROPERTY: "0e"}, symmetry="E(3)")

    def forward(self, data):
        x = data[K.POS][:, :1]
        out = torch.zeros(int(data[K.NUM_NODES].numel()), 1, dtype=x.dtype).index_add_(0, data[K.BATCH], x)
        return {K.PROPERTY: out}


def test_the_audit_catches_a_property_that_is_not_invariant(qm9_dir):
    batch = load(qm9_dir)["train"].batch([0, 1, 2])
    report = audit(_LeaksX(), batch, trials=1)
    assert not report.passed and not report["rotation"].passed


def test_models_without_a_scalar_head_are_refused():
    with pytest.raises(ConfigError, match="graph-level invariant.*egnn"):
        build_model("radial-field", task_spec("qm9"))


# --- training through the CLI ------------------------------------------------------------------
def test_one_epoch_of_irrepnet_train_writes_the_test_mae_in_the_targets_unit(qm9_dir, tmp_path, capsys):
    from irrepnet.cli import main

    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--model",
            "egnn",
            "--task",
            "qm9",
            "--data",
            str(qm9_dir),
            "--target",
            "homo",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--threads",
            "1",
            "--model-set",
            "hidden=8",
            "--model-set",
            "layers=1",
            "--set",
            "progress=false",
        ]
    )
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "qm9" and metrics["target"] == "homo" and metrics["unit"] == "meV"
    assert metrics["test_property_mae"] > 0 and metrics["test_property_rmse"] >= metrics["test_property_mae"]
    assert "test MAE homo" in capsys.readouterr().out
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["valid_property_mae"] > 0 and log[-1]["valid_mse"] is None
    # the checkpoint rebuilds the model with its mean/MAD, and its test MAE is the one reported
    from irrepnet import metrics as M
    from irrepnet.train import load_trained

    model, ck = load_trained(out / "best.pt")
    assert set(ck["scales"]["shifts"]) == {K.PROPERTY} and ck["meta"]["task"]["target"] == "homo"
    test = load(qm9_dir, target="homo")["test"]
    assert M.property_errors(model, test)["property_mae"] == pytest.approx(metrics["test_property_mae"], rel=1e-5)


def test_a_short_run_learns_the_target(qm9_dir):
    """L1 training on mean/MAD-normalised targets fits the 8 training molecules better than predicting the mean."""
    from conftest import small

    from irrepnet.train import make_trainer

    task = load_task("qm9", data=str(qm9_dir), target="alpha")
    trainer = make_trainer(
        "egnn",
        task,
        small(epochs=40, batch_size=8, steps_per_epoch=None, lr=3e-3, warmup_steps=1),
        {"hidden": 16, "layers": 2},
    )
    assert [(t.output, t.loss) for t in trainer.terms] == [(K.PROPERTY, "l1")]
    result = trainer.fit()
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < 0.5 * losses[0], losses


# --- errors --------------------------------------------------------------------------------------
def test_a_missing_folder_or_file_says_which_and_where_to_get_it(tmp_path, qm9_dir):
    with pytest.raises(FileNotFoundError, match="does not exist.*never downloads.*torch_geometric.datasets"):
        Q.load_qm9(tmp_path / "nowhere")
    (qm9_dir / "uncharacterized.txt").unlink()
    with pytest.raises(FileNotFoundError, match="has no uncharacterized.txt.*never downloads.*3195404"):
        Q.load_qm9(qm9_dir)
    root = tmp_path / "pyg_root"
    write_qm9(root / "raw")
    with pytest.raises(FileNotFoundError, match="has no gdb9.sdf, gdb9.sdf.csv, uncharacterized.txt.*raw/ subfolder"):
        Q.load_qm9(root)
    with pytest.raises(ValueError, match="give --data DIR.*never downloads"):
        load_task("qm9")


def test_the_cli_reports_errors_in_one_line(tmp_path, capsys):
    from irrepnet.cli import main

    rc = main(
        ["train", "--model", "egnn", "--task", "qm9", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]
    )
    assert rc == 2 and "irrepnet: error: QM9 folder" in capsys.readouterr().err
    rc = main(["train", "--model", "egnn", "--task", "nbody", "--target", "homo", "--out", str(tmp_path / "o")])
    assert rc == 2 and "--target/--pooling" in capsys.readouterr().err


def test_an_unknown_target_lists_the_twelve(qm9_dir):
    with pytest.raises(
        ValueError, match="unknown QM9 target 'homo2'.*mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G, Cv"
    ):
        load_task("qm9", data=str(qm9_dir), target="homo2")
    with pytest.raises(ValueError, match="only the qm9 task"):
        task_spec("nbody", target="homo")


@pytest.mark.parametrize(
    "file, edit, message",
    [
        (
            "gdb9.sdf",
            lambda t: t.replace(" 0  0  0  0  0  0  0  0999 V2000", " 0  0  0  0  0  0  0  0999 V3000", 1),
            r"gdb9.sdf, line 4: expected a V2000 counts line",
        ),
        (
            "gdb9.sdf",
            lambda t: t.replace("    1.0858    0.0080 C ", "    1.0858    0.0080 Cl", 1),
            r"gdb9.sdf, line 5: element 'Cl' is not one of QM9's",
        ),
        ("gdb9.sdf", lambda t: t.replace("    1.0858", "    1.08x8", 1), r"gdb9.sdf, line 5: expected an atom line"),
        ("gdb9.sdf.csv", lambda t: t.replace("-0.3877", "n/a", 1), r"gdb9.sdf.csv, line 2: a target column is not"),
        (
            "gdb9.sdf.csv",
            lambda t: t.replace("mol_id,A,B,C,mu", "mol_id,A,B,C,dipole", 1),
            r"gdb9.sdf.csv, line 1: the header lacks column\(s\) \['mu'\]",
        ),
        ("gdb9.sdf.csv", lambda t: t.replace("gdb_2,", "gdb_3,", 1), r"gdb9.sdf.csv, line 3: molecule 'gdb_3'.*not in"),
        ("gdb9.sdf.csv", lambda t: "\n".join(t.splitlines()[:-1]) + "\n", r"has 11 molecules but .*gdb9.sdf has 12"),
        (
            "uncharacterized.txt",
            lambda t: t.replace(f"  {DROPPED:6d}", "     999"),
            r"uncharacterized.txt, line 10: molecule index 999 is outside 1..12",
        ),
    ],
)
def test_a_malformed_file_names_the_file_and_line(qm9_dir, file, edit, message):
    path = qm9_dir / file
    path.write_text(edit(path.read_text()))
    with pytest.raises(Q.QM9FormatError, match=message):
        Q.parse_raw(qm9_dir)


# --- PyTorch Geometric interoperability (optional) ------------------------------------------------
def _pyg_y(csv_path):
    """``torch_geometric.datasets.QM9``'s ``y`` of each CSV row, made as PyG makes it (float32, eV)."""
    har2ev, kcal2ev = 27.2113825435, 0.04336414
    conversion = torch.tensor(
        [
            1.0,
            1.0,
            har2ev,
            har2ev,
            har2ev,
            1.0,
            har2ev,
            har2ev,
            har2ev,
            har2ev,
            har2ev,
            1.0,
            kcal2ev,
            kcal2ev,
            kcal2ev,
            kcal2ev,
            1.0,
            1.0,
            1.0,
        ]
    )
    rows = csv_path.read_text().splitlines()[1:]
    target = torch.tensor([[float(x) for x in r.split(",")[1:20]] for r in rows], dtype=torch.float)
    return torch.cat([target[:, 3:], target[:, :3]], dim=-1) * conversion


def test_from_pyg_and_to_pyg_round_trip_a_qm9_batch(qm9_dir):
    pyg = pytest.importorskip("torch_geometric.data")
    from irrepnet.data.pyg import from_pyg, to_pyg

    raw = Q.parse_raw(qm9_dir)
    y = _pyg_y(qm9_dir / "gdb9.sdf.csv")
    offsets = np.concatenate([[0], np.cumsum(raw["num_nodes"])])
    rows = [0, 5, 6]  # methane, formaldehyde, ethane
    graphs = [
        pyg.Data(
            z=torch.as_tensor(raw["z"][offsets[r] : offsets[r + 1]]),
            pos=torch.as_tensor(raw["pos"][offsets[r] : offsets[r + 1]], dtype=torch.float),
            y=y[r : r + 1],
        )
        for r in rows
    ]
    data = pyg.Batch.from_data_list(graphs)
    for target, tol in [("homo", 1e-3), ("U0", 0.5), ("Cv", 1e-4), ("alpha", 1e-4)]:
        mine = from_pyg(data, target=target, dtype=torch.float64)
        expected = Q.target_values(raw, target)[rows]
        np.testing.assert_allclose(mine[K.TARGET_PROPERTY].reshape(-1).numpy(), expected, atol=tol, rtol=0)
    mine = from_pyg(data, target="homo")
    assert mine[K.NUM_NODES].tolist() == [5, 4, 8] and mine[K.SPECIES_ONEHOT].shape == (17, 5)
    assert mine[K.SPECIES_ONEHOT][:5].argmax(1).tolist() == [1, 0, 0, 0, 0]  # C, then four H
    back = to_pyg(mine)
    assert torch.equal(back.z, data.z) and torch.equal(back.pos, data.pos) and torch.equal(back.batch, data.batch)
    again = from_pyg(back)
    for key in (K.POS, K.SPECIES_ONEHOT, K.BATCH, K.NUM_NODES, K.TARGET_PROPERTY):
        assert torch.equal(again[key], mine[key]), key
    # a model gives the same prediction on the converted batch as on irrepnet's own
    ds = Q.QM9Dataset(raw, rows, target="homo", dtype=torch.float32)
    torch.manual_seed(0)
    model = build_model("egnn", task_spec("qm9"), hidden=8, layers=1).eval()
    torch.testing.assert_close(model(mine)[K.PROPERTY], model(ds.batch(None))[K.PROPERTY])
    with pytest.raises(ValueError, match="not among the species"):
        from_pyg(pyg.Data(z=torch.tensor([1, 17]), pos=torch.zeros(2, 3)))


def test_without_torch_geometric_the_conversion_says_how_to_install_it(monkeypatch):
    import sys

    from irrepnet.data.pyg import to_pyg

    for name in [m for m in sys.modules if m == "torch_geometric" or m.startswith("torch_geometric.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch_geometric", None)  # import torch_geometric now raises ImportError
    with pytest.raises(ImportError, match="pip install torch-geometric"):
        to_pyg({K.POS: torch.zeros(1, 3), K.SPECIES_ONEHOT: torch.ones(1, 5)})


def test_bench_refuses_qm9_and_says_how_to_train_it(tmp_path):
    """The harness has displacement and energy reports only: a qm9 suite is refused up front."""
    from irrepnet.bench.suite import load_suite

    path = tmp_path / "q.toml"
    path.write_text('[suite]\nname = "q"\ntask = "qm9"\nmodels = ["egnn"]\n[train]\nepochs = 1\n')
    with pytest.raises(ConfigError, match=r"does not run property tasks.*irrepnet train --task qm9"):
        load_suite(str(path))
