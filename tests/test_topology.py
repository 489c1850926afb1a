"""Chain bonds as edge features: the one-hot, which models read it, and that it reaches them.

The conformance suite audits every model on the ``twelve_body-bonds`` spec; here:
the separation classes, that ``bonds`` is refused where it means nothing, that each
model which claims to read bonds changes its output when the chain order changes
(and the others do not read ``node_index``), the suite and CLI plumbing.
"""

import pytest
import torch

from irrepnet import keys as K
from irrepnet.bench.suite import load_suite
from irrepnet.nn.embedding import RadialEmbedding
from irrepnet.nn.topology import CHAIN_CLASSES, chain_bonds, chain_separation
from irrepnet.registry import ConfigError, build_model
from irrepnet.tasks import load_task, task_spec

#: models that read the chain separation on a task with bonds
READ_BONDS = ("egnn", "egnn-vel", "radial-field", "tfn", "se3-transformer", "gnn")


def test_separation_classes():
    node_index = torch.tensor([0, 1, 2, 3, 4, 0, 1])  # a chain of 5 and a chain of 2 in one batch
    edges = torch.tensor([[0, 1, 0, 4, 3, 5], [1, 0, 2, 0, 4, 6]])
    t = chain_separation(node_index, edges)
    assert t.shape == (6, CHAIN_CLASSES)
    assert t.argmax(1).tolist() == [0, 0, 1, 2, 0, 0]  # bonded, bonded, 1-3, far, bonded, bonded
    assert (t.sum(1) == 1).all()


def test_bonds_only_on_the_chain_task():
    assert chain_bonds(task_spec("twelve_body", bonds=True))
    assert not chain_bonds(task_spec("twelve_body"))
    with pytest.raises(ValueError, match="only the twelve_body task"):
        task_spec("nbody", bonds=True)
    with pytest.raises(ValueError, match="only the twelve_body task"):
        load_task("nbody", bonds=True)


def test_radial_embedding_appends_faded_chain_features():
    emb = RadialEmbedding(4, r_max=1.0, chain=True)
    data = {
        K.EDGE_LEN: torch.tensor([0.3, 0.99, 1.2]),
        K.NODE_INDEX: torch.tensor([0, 1, 5]),
        K.EDGE_INDEX: torch.tensor([[0, 1, 2], [1, 2, 0]]),
    }
    out = emb(data)[K.EDGE_EMBEDDING]
    assert out.shape == (3, 4 + CHAIN_CLASSES) and emb.dim == 4 + CHAIN_CLASSES
    assert out[0, 4] > 0.9  # a bond well inside the cutoff
    assert 0 < out[1, 6] < 1e-3  # fades near the cutoff ...
    assert (out[2] == 0).all()  # ... and is 0 beyond it, like the radial basis


@pytest.fixture(scope="module")
def chain_batch():
    from irrepnet import data as D

    traj = D.simulate_polymer(D.PolymerConfig(n_frames=20, n_equilibrate=100))
    train, _ = D.split_trajectory(
        traj, history=2, split="chronological", train_fraction=0.8, seed=0, dtype=torch.float64
    )
    return train.batch([0, 3])


@pytest.mark.parametrize("name", READ_BONDS)
def test_models_read_the_bonds(name, chain_batch):
    torch.manual_seed(0)
    plain = build_model(name, task_spec("twelve_body", history=2))
    torch.manual_seed(0)
    bonded = build_model(name, task_spec("twelve_body", history=2, bonds=True)).double()
    assert K.NODE_INDEX not in plain.irreps_in and K.NODE_INDEX in bonded.irreps_in
    # the same positions with another chain order: only a model that reads the bonds can tell
    relabelled = dict(chain_batch)
    relabelled[K.NODE_INDEX] = torch.cat([torch.randperm(12), torch.randperm(12)])
    a = bonded(chain_batch)[K.DISPLACEMENT]
    b = bonded(relabelled)[K.DISPLACEMENT]
    assert (a - b).abs().max() > 1e-6 * a.abs().max()


@pytest.mark.parametrize("name", ["mlp", "e3nn-reference", "e3nn-polynomial"])
def test_other_models_ignore_bonds(name):
    spec = task_spec("twelve_body", history=2, bonds=True)
    assert K.NODE_INDEX not in build_model(name, spec).irreps_in


def test_suite_variant_bonds(tmp_path):
    base = '[suite]\nname = "s"\ntask = "{task}"\nmodels = ["radial-field"]\n[[variant]]\nid = "b"\nhistory = 2\n'
    path = tmp_path / "s.toml"
    path.write_text(base.format(task="twelve_body") + "bonds = true\n")
    assert load_suite(str(path)).variants[0].bonds is True
    path.write_text(base.format(task="twelve_body") + 'bonds = "yes"\n')
    with pytest.raises(ConfigError, match="bonds must be true or false"):
        load_suite(str(path))
    path.write_text(base.format(task="nbody") + "bonds = true\n")
    with pytest.raises(ConfigError, match="needs task"):
        load_suite(str(path))
