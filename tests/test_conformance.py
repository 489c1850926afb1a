"""The shared conformance suite: every registered model, on every task it supports.

Parametrised over the registry, so a newly registered model is tested here with no
new code: outputs and their irreps, the equivariance audit of its claimed symmetry
in float32 and float64, batching, gradients, a state_dict round trip. Models whose
packages are not installed (the peers without ``irrepnet[peers]``) are skipped, saying so.
"""

import copy
import io

import pytest
import torch
from toy_modules import toy_molecules

from irrepnet import data as D
from irrepnet import keys as K
from irrepnet.batch import to
from irrepnet.equivariance import audit
from irrepnet.registry import ConfigError, build_model, list_models, unavailable_reason
from irrepnet.tasks import task_spec

# -bonds: the chain's bonds as edge features; molecules: graphs of 3, 5 and 8 atoms of 4 species
# (random geometries: the suite checks the energy models, not the data, so it needs no ASE)
TASKS = ["twelve_body", "twelve_body-bonds", "nbody", "molecules"]

#: audit tolerances other than the default, per model, with the reason
AUDIT_TOLERANCES = {
    # the package rounds its basis change Q_J to float32 (basis_transformation_Q_J), so its
    # float64 rotation errors sit between 1e-10 and 1e-8 (irrepnet.models.peers)
    "se3-transformer-pytorch": {torch.float64: 1e-7},
}


def make_batches(cache_dir):
    """One small float64 batch per task: (spec, batch)."""
    traj = D.simulate_polymer(D.PolymerConfig(n_frames=40, n_equilibrate=200))
    train, _ = D.split_trajectory(
        traj, history=2, split="chronological", train_fraction=0.8, seed=0, dtype=torch.float64
    )
    nb = D.nbody("test", n_test=6, n_pool=6, n_valid=6, cache_dir=cache_dir)
    return {
        "twelve_body": (task_spec("twelve_body", history=2), train.batch([0, 5, 9])),
        "twelve_body-bonds": (task_spec("twelve_body", history=2, bonds=True), train.batch([0, 5, 9])),
        "nbody": (task_spec("nbody", delta_t=nb.delta_t), nb.batch([0, 1, 2, 3])),
        "molecules": (task_spec("molecules", species=("H", "C", "N", "O")), toy_molecules()),
    }


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    return make_batches(tmp_path_factory.mktemp("cache"))


_BUILT = {}


def _build(name, spec, fresh=False):
    """Build once per (model, task): e3nn code-generates its tensor products at construction."""
    key = (name, spec.name, spec.extras.get("bonds"))
    missing = unavailable_reason(name)
    if missing:
        pytest.skip(missing)
    if fresh or key not in _BUILT:
        torch.manual_seed(0)
        try:
            model = build_model(name, spec)
        except ConfigError as exc:
            model = exc
        if fresh:
            return model
        _BUILT[key] = model
    if isinstance(_BUILT[key], ConfigError):  # e.g. a displacement-only model on the molecules (energy) task
        pytest.skip(f"{name} does not support {spec.name}: {_BUILT[key]}")
    if spec.extras.get("bonds") and K.NODE_INDEX not in _BUILT[key].irreps_in:
        pytest.skip(f"{name} does not read bonds: the same model as on twelve_body")
    return _BUILT[key]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", list_models())
class TestConformance:
    def test_outputs_match_declared_irreps(self, name, task, batches):
        spec, batch = batches[task]
        model = _build(name, spec)
        batch = to(batch, dtype=torch.get_default_dtype())  # the model's own dtype (float32)
        assert spec.target in model.irreps_out
        for field in model.irreps_in:
            assert field in spec.inputs, f"{name} reads {field!r}, which task {task} does not provide"
            assert model.irreps_in[field] == spec.inputs[field]
        out = model(batch)
        assert set(out) == set(model.irreps_out)
        for field, ir in model.irreps_out.items():
            rows = batch[K.POS].shape[0] if K.field_kind(field) == K.NODE else batch[K.NUM_NODES].numel()
            assert out[field].shape == (rows, ir.dim)
            assert torch.isfinite(out[field]).all()

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_audit_passes_for_the_claimed_symmetry(self, name, task, batches, dtype):
        spec, batch = batches[task]
        # one random group element per check: a broken model fails for almost any of them
        report = audit(_build(name, spec), batch, dtype=dtype, trials=1, tolerances=AUDIT_TOLERANCES.get(name))
        assert report.passed, str(report)

    def test_batch_equals_graphs_one_at_a_time(self, name, task, batches):
        spec, batch = batches[task]
        model = copy.deepcopy(_build(name, spec)).double().eval()
        whole = model(batch)
        offset = 0
        for g, n in enumerate(batch[K.NUM_NODES].tolist()):
            single = {
                k: v[offset : offset + n] if K.is_registered(k) and K.field_kind(k) == K.NODE else v
                for k, v in batch.items()
                if k not in (K.EDGE_INDEX, K.EDGE_VEC, K.EDGE_LEN)
            }
            single[K.BATCH] = torch.zeros(n, dtype=torch.long)
            single[K.NUM_NODES] = torch.tensor([n])
            out = model(single)
            for field in model.irreps_out:
                if K.field_kind(field) == K.NODE:
                    torch.testing.assert_close(out[field], whole[field][offset : offset + n])
                else:
                    torch.testing.assert_close(out[field], whole[field][g : g + 1])
            offset += n

    def test_backward_gives_finite_gradients(self, name, task, batches):
        spec, batch = batches[task]
        model = copy.deepcopy(_build(name, spec)).double()
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            pytest.skip(f"{name} has no trainable parameters")
        loss = model(batch)[spec.target].pow(2).mean()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)

    def test_state_dict_round_trip(self, name, task, batches):
        spec, batch = batches[task]
        model = copy.deepcopy(_build(name, spec)).double().eval()
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        buf.seek(0)
        torch.manual_seed(1)  # different initial weights, so that loading them matters
        clone = _build(name, spec, fresh=True).double().eval()
        clone.load_state_dict(torch.load(buf, weights_only=True))
        for field in model.irreps_out:
            torch.testing.assert_close(clone(batch)[field], model(batch)[field])
