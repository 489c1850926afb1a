# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 5: EGNN on molecules, with energies and forces
#
# Tutorials 2 and 4 predict where particles go next: the target is a displacement, a vector
# per node. Interatomic potentials do something else. They predict one number per molecule,
# the **energy** $E$, and get the **forces** on the atoms as its negative gradient,
# $F_i = -\partial E / \partial x_i$. That is how NequIP (Batzner et al., *Nat. Commun.* 13,
# 2453, 2022) and SchNet (Schütt et al. 2017) work, and irrepnet's `molecules` task is a
# small, offline test bed for it.
#
# This notebook:
#
# 1. loads the task: small molecules with energies and forces, graphs of different sizes
#    in one batch;
# 2. builds `egnn` from the registry as an **energy model** and shows why its forces are
#    equivariant by construction;
# 3. checks it: the audit (rotations, reflections, translations, permutations) and forces
#    against finite differences of the energy;
# 4. trains it briefly and compares it with the simplest physical reference, per-element
#    atom energies and zero forces;
# 5. shows how the two loss weights, `energy_weight` and `force_weight`, trade one error
#    against the other.
#
# The default budget is small (about a minute on a 2-core CPU). `IRREPNET_FULL=1` trains
# the default `egnn` on the full-size splits. All numbers below are computed here; the text
# says how to read them rather than what they will be.

# %%
# %matplotlib inline
import os
import time

import matplotlib.pyplot as plt
import torch

import irrepnet
from irrepnet import audit_all
from irrepnet import keys as K
from irrepnet import metrics as M
from irrepnet.registry import build_model
from irrepnet.tasks import load_task
from irrepnet.train import make_trainer, train_config
from irrepnet.train.energy import energy_shift, fit_energy_scales, species_counts

FULL = os.environ.get("IRREPNET_FULL", "0") == "1"
N_TRAIN, N_VALID, N_TEST = (3000, 500, 500) if FULL else (400, 100, 200)
EPOCHS = 60 if FULL else 20
MODEL_CFG = {} if FULL else {"hidden": 32, "layers": 3}  # {}: the registry's egnn, 4 layers of width 64

torch.set_num_threads(1)  # the steadiest timings on a small, busy CPU
torch.manual_seed(0)
plt.rcParams.update({"figure.dpi": 70, "font.size": 9})
NOTEBOOK_START = time.perf_counter()
print(
    "irrepnet",
    irrepnet.__version__,
    "| torch",
    torch.__version__,
    "| FULL =",
    FULL,
    f"| molecules {N_TRAIN}/{N_VALID}/{N_TEST}, {EPOCHS} epochs, egnn {MODEL_CFG or 'defaults'}",
)

# %% [markdown]
# ## 1. The task
#
# The molecules come from ASE's bundled **G2 collection** (Curtiss et al. 1997): every G2
# molecule of two atoms or more made only of H, C, N and O. Each sample is one of them with
# every coordinate displaced at random (standard deviation 0.05 Å), labelled with the energy
# and forces of ASE's **effective-medium theory** calculator (EMT). EMT was fitted to metals
# and is a toy for molecules, but it is a smooth, many-body, E(3)-invariant potential that
# ships with ASE, so the dataset is generated offline in seconds (and cached in
# `~/.cache/irrepnet`). The G2 geometries are not EMT's minima, so the forces are large,
# a few eV/Å even before the displacement. The splits hold the same molecules at
# different geometries.
#
# A sample has, per atom, its position `pos` (`1o`, Å), its element as a one-hot
# `species_onehot` (four `0e` scalars: rotations do not change what an atom is) and the
# target forces `target_forces` (`1o`, eV/Å); per molecule, the target energy
# `target_energy` (`0e`, eV).

# %%
start = time.perf_counter()
task = load_task("molecules", n_train=N_TRAIN, n_valid=N_VALID, n_test=N_TEST)
print(f"loaded in {time.perf_counter() - start:.1f} s")
print(task.train, task.valid, task.test, sep="\n")
print("model inputs:", {k: str(v) for k, v in task.spec.inputs.items()}, "-> target:", task.spec.target)
print("sample 0:", {k: tuple(v.shape) for k, v in task.train[0].items()})


# %%
def formula(onehot_rows, species=task.train.species):
    """Hill formula (C, H, then alphabetical) of a molecule's one-hot rows."""
    counts = dict(zip(species, onehot_rows.sum(0).long().tolist()))
    order = [s for s in ("C", "H") if s in counts] + sorted(s for s in counts if s not in ("C", "H"))
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order if counts[s])


ds = task.train
print(f"{'sample':>6}  {'G2 name':<12} {'formula':<8} {'atoms':>5} {'energy (eV)':>12} {'RMS force (eV/Å)':>17}")
for i in range(0, len(ds.names), 16):
    s = ds[i]
    print(
        f"{i:>6}  {ds.names[ds.molecule[i]]:<12} {formula(s[K.SPECIES_ONEHOT]):<8} {len(s[K.POS]):>5} "
        f"{float(s[K.TARGET_ENERGY]):>12.3f} {float(s[K.TARGET_FORCES].pow(2).mean().sqrt()):>17.2f}"
    )
print(
    f"\n{len(ds.names)} distinct molecules, {int(ds.counts.min())} to {int(ds.counts.max())} atoms "
    f"(mean {ds.counts.double().mean():.1f}); training force RMS "
    f"{float(ds.arrays()[K.TARGET_FORCES].pow(2).mean().sqrt()):.2f} eV/Å"
)

# %% [markdown]
# Molecules differ in size, so a batch cannot be a tensor of shape `(molecules, atoms, 3)`.
# irrepnet batches graphs the way PyTorch Geometric does: the atoms of all molecules are
# concatenated (node fields have one row per atom), `batch` says which molecule each atom
# belongs to, `num_nodes` how many atoms each molecule has, and graph fields such as the
# energy have one row per molecule. Here are three molecules of different sizes in one batch:

# %%
batch = ds.batch([0, 48, 64])
print("formulas: ", [formula(ds[i][K.SPECIES_ONEHOT]) for i in (0, 48, 64)])
print("num_nodes:", batch[K.NUM_NODES].tolist())
print("batch:    ", batch[K.BATCH].tolist())
print("shapes:   ", {k: tuple(v.shape) for k, v in batch.items()})

# %% [markdown]
# ## 2. EGNN as an energy model
#
# `build_model` builds any registered model for a task spec. On the molecules task the spec
# asks for an energy, and the models that can give one (`egnn`, `tfn`, `segnn`,
# `se3-transformer`, `e3nn-reference`) build themselves as an
# `irrepnet.models.energy.EnergyModel`; the others refuse with an error that names these.
# For `egnn` the pieces are:
#
# - a fully connected graph per molecule and invariant inputs: $h^0_i = [1, z_i]$ with $z_i$
#   the one-hot element, and edge attributes $\|x_i - x_j\|^2$;
# - EGNN layers (Satorras et al. 2021): messages from invariants, which update the features
#   $h_i$ and move the coordinates along the edge vectors;
# - a linear `ScalarHead` on the final invariant features: one scalar $\varepsilon_i$ per
#   atom, the atom's share of the energy.
#
# The `EnergyModel` wrapper sums them per molecule and differentiates the sum:
#
# $$E_g = \sum_{i \in g} \varepsilon_i, \qquad F_i = -\frac{\partial E_{g(i)}}{\partial x_i}.$$
#
# Why this is right by construction: the $\varepsilon_i$ depend on distances and elements
# only, so $E$ is invariant, $E(Qx + t) = E(x)$ for any rotation or reflection $Q$ and shift
# $t$. Differentiating both sides by the chain rule gives $F(Qx + t) = Q\,F(x)$: the forces
# rotate with the molecule (they are `1o` vectors) whatever the weights are. They are also
# *conservative* (the gradient of an energy, so no work is gained around a closed loop), and
# the sum makes $E$ extensive, so one model fits molecules of any size.

# %%
torch.manual_seed(0)
model = build_model("egnn", task.spec, MODEL_CFG)
print(type(model).__name__, "| symmetry claimed:", model.symmetry.value)
print("irreps_in: ", {k: str(v) for k, v in model.irreps_in.items()})
print("irreps_out:", {k: str(v) for k, v in model.irreps_out.items()})
print("backbone:  ", " -> ".join(type(m).__name__ for m in model.backbone.chain.layers))
print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
out = model(batch)
print("untrained output shapes:", {k: tuple(v.shape) for k, v in out.items()})

# %% [markdown]
# ## 3. Checking it
#
# **The audit** (`irrepnet.audit_all`, the same audit `irrepnet audit` and the conformance
# tests run) feeds the model a batch and its transformed copy and compares: the energy must
# not change under a random rotation, a reflection (rotation times inversion), a translation,
# or a permutation of the atoms within each molecule; the forces must rotate, reflect and
# permute with the atoms and ignore the translation. The per-field columns below are the
# largest absolute errors of each output; a check passes when the relative error is below
# the dtype's tolerance (1e-4 in float32, 1e-9 in float64).

# %%
for report in audit_all(model, batch, trials=2):
    print(f"{report.dtype}: passed = {report.passed}")
    for c in report.checks:
        fields = ", ".join(f"{k} {v:.1e}" for k, v in c.per_field.items())
        print(f"  {c.check:<11} rel. error {c.rel_error:.1e} (tol {c.tolerance:.0e})  abs. per field: {fields}")

# %% [markdown]
# **Forces are minus the gradient.** Autograd computes $-\partial E/\partial x$ inside the
# model; a central finite difference of the energy,
# $-\bigl(E(x + h e_k) - E(x - h e_k)\bigr) / 2h$, computes the same thing without autograd.
# Compared in float64 with $h = 10^{-5}$ Å, for every coordinate of one molecule (ethanol),
# they should agree to the finite difference's own accuracy (truncation error of order
# $h^2$, round-off of order $10^{-16}/h$), many orders of magnitude below the forces:

# %%
model64 = build_model("egnn", task.spec, MODEL_CFG)
model64.load_state_dict(model.state_dict())
model64 = model64.double().eval()
mol = ds.batch([32])  # ethanol, float64 (the dataset's dtype)
forces = model64(mol)[K.FORCES]
h = 1e-5
fd = torch.zeros_like(forces)
for atom in range(forces.shape[0]):
    for axis in range(3):
        plus, minus = dict(mol), dict(mol)
        plus[K.POS], minus[K.POS] = mol[K.POS].clone(), mol[K.POS].clone()
        plus[K.POS][atom, axis] += h
        minus[K.POS][atom, axis] -= h
        fd[atom, axis] = -(model64(plus)[K.ENERGY] - model64(minus)[K.ENERGY]).item() / (2 * h)
diff = float((forces - fd).abs().max())
print(
    f"{formula(mol[K.SPECIES_ONEHOT])}: {forces.numel()} force components, max |F| {float(forces.abs().max()):.3g}, "
    f"max |F - finite difference| {diff:.1e} (relative {diff / float(forces.abs().max()):.1e})"
)

# %% [markdown]
# ## 4. Training, and the atom-energy reference
#
# A model has to be judged against the simplest thing that works. For energies that is a
# sum of **per-element atom energies**, $E \approx \sum_i \mu_{z_i}$, with the four
# $\mu$ fitted by least squares on the training energies (one equation per molecule, its
# element counts times $\mu$). It knows the composition and nothing about geometry, so its
# forces are zero. Its energy error is what the geometry explains; its force MAE is the
# mean absolute force itself.
#
# The trainer uses the same fit: `fit_energy_scales` computes the $\mu$, the network learns
# the rest, $E = s\,\tilde E + \sum_i \mu_{z_i}$, with one scale $s$ (the training force
# RMS) for energy and forces alike, so that the forces remain exactly $-\nabla E$ in
# physical units. The loss is
#
# $$\mathcal L = w_E \cdot \mathrm{MSE}\Bigl(\frac{\hat E - E}{s\,N}\Bigr)
#              + w_F \cdot \mathrm{MSE}\Bigl(\frac{\hat F - F}{s}\Bigr),$$
#
# with the energy error taken per atom ($N$ atoms in the molecule) so that both terms are
# intensive; $w_E$ and $w_F$ are the training options `energy_weight` and `force_weight`
# (1 and 1 by default). `make_trainer` builds the model exactly as above, with the same
# seed; `fit` keeps the weights of the best validation epoch.

# %%
scales = fit_energy_scales(task.train.arrays())
print(
    "atom energies mu (eV):",
    {s: round(m, 3) for s, m in zip(task.train.species, scales["atom_energies"])},
    f"| scale s = {scales['outputs'][K.ENERGY]:.3f} eV/Å",
)


def reference_errors(dataset, atom_energies):
    """MAEs of the atom-energy reference: E = sum of per-element energies, F = 0."""
    arrays = dataset.arrays()
    err = energy_shift(arrays, atom_energies) - arrays[K.TARGET_ENERGY]
    return {
        "energy_mae": float(err.abs().mean()),
        "energy_per_atom_mae": float((err / species_counts(arrays).sum(1, keepdim=True)).abs().mean()),
        "forces_mae": float(arrays[K.TARGET_FORCES].abs().mean()),
    }


reference = {split: reference_errors(getattr(task, split), scales["atom_energies"]) for split in ("valid", "test")}

cfg = train_config(
    {"epochs": EPOCHS, "batch_size": 16, "lr": 3e-3, "progress": False, "energy_weight": 1.0, "force_weight": 1.0}
)
start = time.perf_counter()
trainer = make_trainer("egnn", task, cfg, MODEL_CFG)
result = trainer.fit()
print(
    f"trained {result.steps} steps in {time.perf_counter() - start:.1f} s ({result.train_step_ms:.1f} ms per step, "
    f"forward, backward through the forces, update); best epoch {result.best_epoch} of {EPOCHS}"
)
print(
    "the trained model's atom energies are the same fit:",
    all(abs(a - b) < 1e-9 for a, b in zip(result.model.atom_energies, scales["atom_energies"])),
)

# %%
errors = M.energy_force_errors(result.model, task.test)
ref = reference["test"]
print(f"test set ({len(task.test)} molecules)  energy MAE (eV)  per atom (eV)  forces MAE (eV/Å)")
for name, e in [("atom-energy reference", ref), ("egnn", errors)]:
    print(f"{name:<27} {e['energy_mae']:>11.3f} {e['energy_per_atom_mae']:>14.4f} {e['forces_mae']:>18.3f}")
print(
    f"{'egnn / reference':<27} {errors['energy_mae'] / ref['energy_mae']:>11.2f} "
    f"{errors['energy_per_atom_mae'] / ref['energy_per_atom_mae']:>14.2f} "
    f"{errors['forces_mae'] / ref['forces_mae']:>18.2f}"
)

# %% [markdown]
# The ratios in the last row are what to read: below 1, the model has learned something the
# composition alone does not say. The forces usually improve most, because each molecule
# gives three force labels per atom but one energy. The learning curves, on the
# validation split, with the reference as a horizontal line:

# %%
epochs = [r["epoch"] for r in result.history]
fig, axes = plt.subplots(1, 2, figsize=(7.6, 2.6))
for ax, key, unit in [(axes[0], "energy_mae", "eV"), (axes[1], "forces_mae", "eV/Å")]:
    ax.plot(epochs, [r[f"valid_{key}"] for r in result.history], marker=".", label="egnn (valid)")
    ax.axhline(reference["valid"][key], color="grey", ls="--", lw=1, label="atom energies, F = 0")
    ax.axvline(result.best_epoch, color="0.8", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("epoch"), ax.set_ylabel(f"{key.split('_')[0]} MAE ({unit})")
axes[0].legend(fontsize=7)
fig.suptitle(f"validation MAEs, {N_TRAIN} training molecules (grey: best epoch)", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# How to read it: the force curve falls steadily; the energy curve is noisier, since a
# molecule's energy error is the sum of its atoms' errors and the validation split is
# small. One seed, one split and a short cosine schedule: small differences between epochs
# or runs are noise, and the curves have not converged.
#
# ## 5. Energy vs forces: the loss weights
#
# `energy_weight` and `force_weight` decide what the optimiser cares about.
#
# - **Energies only** (`force_weight = 0`): one label per molecule. The model still returns
#   forces (they are the gradient of whatever energy it learns), but nothing asks them to
#   be right, and a few hundred energies say little about the shape of the energy surface.
# - **Forces weighted up** (a common choice for potentials meant for molecular dynamics):
#   $3N$ labels per molecule that describe the slope of the surface directly; the energy is
#   then learned mostly through its gradient, and its absolute level (an offset that no
#   force can see) gets less attention.
#
# With Adam, multiplying the whole loss by a constant changes almost nothing (gradient
# clipping aside), so what matters is the ratio $w_F / w_E$. Two more runs with the same
# model, data, seed and budget; the middle row is the run above:

# %%
weights = {"energy only (1, 0)": (1.0, 0.0), "equal (1, 1)": (1.0, 1.0), "forces x10 (1, 10)": (1.0, 10.0)}
compare = {}
for label, (w_e, w_f) in weights.items():
    if (w_e, w_f) == (cfg.energy_weight, cfg.force_weight):
        compare[label] = errors
        continue
    start = time.perf_counter()
    run_cfg = train_config({**cfg.to_dict(), "energy_weight": w_e, "force_weight": w_f})
    run = make_trainer("egnn", task, run_cfg, MODEL_CFG).fit()
    compare[label] = M.energy_force_errors(run.model, task.test)
    print(f"{label}: trained in {time.perf_counter() - start:.1f} s")
print(f"\n{'(energy_weight, force_weight)':<29} energy MAE (eV)  forces MAE (eV/Å)")
for label, e in [("atom-energy reference", ref), *compare.items()]:
    print(f"{label:<29} {e['energy_mae']:>15.3f} {e['forces_mae']:>18.3f}")

# %% [markdown]
# What to look for in this table: the energy-only run's force error against the
# reference's (training on energies alone gives forces no better, or not much better,
# than predicting zero), and whether weighting the forces up lowers the force error at
# some cost in energy. This is one seed at a small budget: small differences between the
# last two rows may be run-to-run noise, and a conclusion about a weight ratio needs
# several seeds and a longer schedule. A practical rule from the literature: if you
# will use the model for dynamics (where only forces enter), weight the forces; if you
# need energies (reaction energies, conformer ranking), keep $w_E$ large enough that the
# energy error stays well below the differences you care about.
#
# ## 6. From here
#
# The same run from the command line, at the task's full size (3000 training molecules,
# 500 validation, 500 test) and the registry's default `egnn`, writing checkpoints, a log
# and `metrics.json` with the test MAEs:
#
# ```bash
# irrepnet train --task molecules --model egnn --out runs/molecules-egnn --threads 1
# irrepnet train --task molecules --model egnn --out runs/molecules-egnn-f10 --set force_weight=10
# irrepnet train --task molecules --model tfn --out runs/molecules-tfn   # or segnn, se3-transformer
# ```
#
# `irrepnet audit --checkpoint runs/molecules-egnn/best.pt` audits the trained model again.
# `IRREPNET_FULL=1 python tutorials/run_notebooks.py 05` reruns this notebook at full size
# with the default `egnn` (tens of minutes on a CPU).

# %%
print(f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s")
