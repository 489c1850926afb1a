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
# # Tutorial 6: your data in, your model out
#
# Tutorials 2 to 5 train on tasks that irrepnet generates. This one starts where a
# researcher usually starts: with a file of frames from their own simulations, energies
# and forces stored under whatever names their code chose. It goes the whole way to a
# model that runs molecular dynamics and a file that runs without irrepnet:
#
# 1. **make the data** the way you might have it: ASE's effective-medium theory (EMT)
#    drives Langevin dynamics of periodic fcc copper at 600 K, and the frames are written
#    to an extended XYZ file with the energy and forces under *custom* keys
#    (`REF_energy`, `REF_forces`);
# 2. **load it** as irrepnet's `energy` task, telling it those keys;
# 3. **train** a small MACE (Batatia et al., NeurIPS 2022) on it and compare it with the
#    simplest reference, per-element atom energies and zero forces;
# 4. **run molecular dynamics** with the trained model through ASE
#    (`irrepnet.calculator.IrrepnetCalculator`), beside EMT's own run from the same state:
#    energy conservation and the radial distribution function;
# 5. **export** it with `torch.export` to a `.pt2` package that needs only torch, load it
#    back and check it against the model it came from.
#
# Replace the file of step 1 with yours and the rest applies unchanged. The default sizes
# are small, so the notebook runs in a few minutes on a 2-core CPU; `IRREPNET_FULL=1`
# makes more data, trains a larger model for longer and runs longer dynamics. Every
# number below is computed here; the text says how to read them, not what they will be.

# %%
# %matplotlib inline
import importlib.util
import os
import tempfile
import time
from pathlib import Path

import ase.io
import matplotlib.pyplot as plt
import numpy as np
import torch
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.neighborlist import neighbor_list

import irrepnet
from irrepnet import keys as K
from irrepnet import metrics as M
from irrepnet.calculator import IrrepnetCalculator
from irrepnet.export import export_model
from irrepnet.tasks import load_task
from irrepnet.train import make_trainer, train_config
from irrepnet.train.energy import energy_shift, fit_energy_scales, species_counts

FULL = os.environ.get("IRREPNET_FULL", "0") == "1"
TEMPERATURE = 600.0  # K
TIME_STEP_FS = 5.0  # of the data's Langevin run and of both NVE runs
N_FRAMES = 600 if FULL else 150  # frames in the file, one every RECORD_EVERY steps
RECORD_EVERY = 10
TRAIN_STEPS = 3000 if FULL else 200  # optimiser steps
MD_STEPS = 10_000 if FULL else 1000  # NVE steps of each run
# MACE at the bulk-metal suite's cutoff (4.0 Å: the first two neighbour shells of Cu); by
# default a small one (one interaction, 8 channels, l <= 2), FULL: the registry's defaults
SMALL = {"num_interactions": 1, "channels": 8, "max_ell": 2}
MODEL_CFG = {"r_max": 4.0, **({} if FULL else SMALL)}
WORK = Path(tempfile.gettempdir()) / "irrepnet-tutorial06"  # or a folder of your own
WORK.mkdir(exist_ok=True)

torch.set_num_threads(1)  # the steadiest timings on a small, busy CPU
torch.manual_seed(0)
plt.rcParams.update({"figure.dpi": 70, "font.size": 9})
NOTEBOOK_START = time.perf_counter()
print(
    "irrepnet",
    irrepnet.__version__,
    "| torch",
    torch.__version__,
    "| ase",
    ase.__version__,
    "| FULL =",
    FULL,
    f"| {N_FRAMES} frames, {TRAIN_STEPS} training steps, {MD_STEPS} MD steps",
)
print("files go to", WORK)

# %% [markdown]
# ## 1. A file of frames, as a simulation code writes it
#
# The system: fcc copper, 2 x 2 x 2 conventional cubic cells (32 atoms) at ASE's lattice
# constant, periodic in all three directions. EMT (Jacobsen, Stoltze and Nørskov 1996) is a
# many-body potential for fcc metals that ships with ASE: cheap, smooth, and a fair
# stand-in for the DFT or classical labels of a real project.
#
# The dynamics: Langevin at 600 K (friction 0.02 per fs, time step 5 fs), the velocities
# drawn at twice the target temperature to start (equipartition hands half of that
# kinetic energy to the potential within a few hundred fs), the centre of mass held fixed
# (ASE's `FixCom`). After 1 ps of equilibration a frame is stored every 10 steps (50 fs):
# close enough in time that neighbouring frames are correlated, which is what a real MD
# data set looks like. The energy goes into each frame's `info` under `REF_energy` and the
# forces into its per-atom `arrays` under `REF_forces`, as a code that labels frames with
# several methods would keep them apart. No ASE calculator stays attached, so nothing is
# written under ASE's default keys `energy` and `forces`.


# %%
def thermal_momenta(atoms, temperature, rng):
    """Maxwell-Boltzmann momenta at ``temperature`` (K), centre-of-mass momentum removed."""
    masses = atoms.get_masses()
    p = np.sqrt(masses * units.kB * temperature)[:, None] * rng.standard_normal((len(atoms), 3))
    return p - masses[:, None] * p.sum(0) / masses.sum()


def labelled_copy(atoms):
    """A copy of ``atoms`` (positions, momenta, cell) with EMT's energy and forces under custom keys."""
    frame = atoms.copy()  # the copy carries no calculator
    frame.constraints = []
    frame.info["REF_energy"] = atoms.get_potential_energy()
    frame.arrays["REF_forces"] = atoms.get_forces()
    return frame


start = time.perf_counter()
rng = np.random.default_rng(0)
atoms = bulk("Cu", "fcc", cubic=True).repeat((2, 2, 2))
atoms.calc = EMT()
atoms.set_momenta(thermal_momenta(atoms, 2 * TEMPERATURE, rng))
atoms.set_constraint(FixCom())
langevin = Langevin(
    atoms, TIME_STEP_FS * units.fs, temperature_K=TEMPERATURE, friction=0.02 / units.fs, fixcm=False, rng=rng
)
langevin.run(int(1000 / TIME_STEP_FS))  # 1 ps of equilibration, not stored
frames = []
for _ in range(N_FRAMES):
    langevin.run(RECORD_EVERY)
    frames.append(labelled_copy(atoms))
data_path = WORK / "cu_600K.extxyz"
ase.io.write(data_path, frames, format="extxyz")

# the state the dynamics of section 4 start from: the Langevin run's last state, one more
# stretch later (not a stored frame), without the constraint and without centre-of-mass motion
langevin.run(RECORD_EVERY)
md_start = atoms.copy()
md_start.constraints = []
masses, momenta = md_start.get_masses(), md_start.get_momenta()
md_start.set_momenta(momenta - masses[:, None] * momenta.sum(0) / masses.sum())
print(
    f"{len(frames)} frames of {len(atoms)} atoms in {time.perf_counter() - start:.1f} s; "
    f"mean temperature of the stored frames {np.mean([f.get_temperature() for f in frames]):.0f} K; "
    f"{data_path.name}: {data_path.stat().st_size / 1024:.0f} KB"
)
with open(data_path) as f:
    head = [next(f) for _ in range(5)]
for line in head:
    print(line.rstrip()[:150] + (" ..." if len(line.rstrip()) > 150 else ""))

# %% [markdown]
# How to read the file. Each frame is a block: the first line is the number of atoms, the
# second the frame's *comment line*, in which extended XYZ keeps `key=value` pairs:
# `Lattice` (the three cell vectors, Å, row after row), `Properties` (the columns of the
# atom lines that follow: `species` one string, `pos` three reals, `momenta` three,
# `REF_forces` three), the per-frame values of `info` (here `REF_energy`, eV) and `pbc`. Then
# one line per atom. Files from other codes look the same with other names: `energy`,
# `dft_energy`, `TotEnergy`, `forces`, `force`...
#
# ## 2. Load it through irrepnet: the `energy` task
#
# `load_task("energy", data=...)` reads any file `ase.io.read` reads. Each frame becomes
# one graph; `energy_key` says which `info` entry holds its energy and `forces_key` which
# per-atom array holds its forces (the command line's `--energy-key` and `--forces-key`).
# The frames are split at random, with a seed, into training, validation and test sets
# (`valid_fraction`, `test_fraction`; or whole files with `valid_data` and `test_data`).
# Neighbouring frames of one trajectory are correlated, so a random split puts close
# relatives of every test frame into training: the test error below is an in-distribution
# error. For a stricter test, hold out a separate run (`test_data=`).

# %%
start = time.perf_counter()
task = load_task(
    "energy",
    data=str(data_path),
    energy_key="REF_energy",
    forces_key="REF_forces",
    valid_fraction=0.1,
    test_fraction=0.2,
    seed=0,
)
print(f"loaded in {time.perf_counter() - start:.1f} s")
print(task.train, task.valid, task.test, sep="\n")
print("species (one-hot order):", task.spec.extras["species"], "| periodic:", task.spec.extras["periodic"])
print("model inputs:", {k: str(v) for k, v in task.spec.inputs.items()}, "-> target:", task.spec.target)
print("test frames (index in the file):", task.test.frames.tolist())
sample = task.train[0]
print("sample 0:", {k: tuple(v.shape) for k, v in sample.items()})
print("its cell (Å):", sample[K.CELL][0].diagonal().tolist(), "| pbc:", sample[K.PBC][0].tolist())

# %% [markdown]
# Every frame is periodic, so the task is marked periodic, and models that build radius
# graphs (`tfn`, `mace`, `se3-transformer`, `e3nn-reference`) build them with periodic
# images: an atom near a face of the cell sees the atoms across it. Models on full graphs
# refuse periodic cells in one line.
#
# A key that is not in the file is refused in one line that lists what each frame has,
# so that you can pick the right one:

# %%
try:
    load_task("energy", data=str(data_path), energy_key="energy", forces_key="REF_forces")
except ValueError as exc:
    print("ValueError:", exc)

# %% [markdown]
# ## 3. Train a small MACE
#
# MACE builds, for each atom, an *atomic basis* from its neighbours within the cutoff
# (radial functions times spherical harmonics of the edge vectors, per element), raises it
# to products up to the `correlation` order (a product of $\nu$ of them is a
# $(\nu + 1)$-body feature; the default is 3), and sums readouts of every layer into the
# atom's energy $\varepsilon_i$. The default run here has a single layer (interaction), so
# each atom's energy depends on its neighbours within 4 Å only; a second layer would pass
# messages on, to 8 Å, at a higher cost for every step below (the registry's MACE, which
# `IRREPNET_FULL=1` trains, has two). As in tutorial 5, $E = \sum_i \varepsilon_i$ and $F_i = -\partial E /
# \partial x_i$, so the forces are conservative and rotate with the atoms whatever the
# weights are: what molecular dynamics needs.
#
# **The reference.** The trainer first fits per-element atom energies $\mu_Z$ by least
# squares on the training energies and learns the rest. With one element and one cell
# size, $\sum_i \mu_{Z_i} = 32\,\mu_\text{Cu}$ is the mean training energy: the reference
# predicts the same energy for every frame and zero forces. Its energy error is the spread
# of the energies; its force MAE is the mean absolute force itself. A model is worth its
# cost only where it beats these by a wide margin.
#
# The run goes through `make_trainer`, as in tutorial 5: a fixed number of optimiser steps
# (`max_steps`), batches of 4 frames, a cosine learning-rate schedule, float32, the
# weights of the best validation epoch kept.

# %%
scales = fit_energy_scales(task.train.arrays())
print(
    "atom energy mu (eV):",
    {s: round(m, 4) for s, m in zip(task.train.species, scales["atom_energies"])},
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


cfg = train_config(
    {
        "epochs": 10**6,  # the step budget ends the run
        "max_steps": TRAIN_STEPS,
        "batch_size": 4,
        "lr": 1e-2,
        "warmup_steps": 10,
        "progress": False,
    }
)
start = time.perf_counter()
trainer = make_trainer("mace", task, cfg, MODEL_CFG)
print(f"mace {MODEL_CFG}: {sum(p.numel() for p in trainer.model.parameters()):,} parameters")
result = trainer.fit()
print(
    f"trained {result.steps} steps in {time.perf_counter() - start:.1f} s ({result.train_step_ms:.0f} ms per step); "
    f"best epoch {result.best_epoch} of {result.history[-1]['epoch']}"
)

# %%
model = result.model  # the network in physical units: eV and eV/Å, the atom energies included
errors = M.energy_force_errors(model, task.test)
ref = reference_errors(task.test, scales["atom_energies"])
print(f"test set ({len(task.test)} frames)       energy MAE (eV)  per atom (meV)  forces MAE (eV/Å)")
for name, e in [("atom-energy reference", ref), ("mace", errors)]:
    print(f"{name:<27} {e['energy_mae']:>13.4f} {1e3 * e['energy_per_atom_mae']:>15.2f} {e['forces_mae']:>18.4f}")
print(
    f"{'mace / reference':<27} {errors['energy_mae'] / ref['energy_mae']:>13.3f} "
    f"{errors['energy_per_atom_mae'] / ref['energy_per_atom_mae']:>15.3f} "
    f"{errors['forces_mae'] / ref['forces_mae']:>18.3f}"
)

# %% [markdown]
# The last row is what to read: the model's errors as fractions of the reference's. The
# force ratio says how much of the force field the model has learned; the energy ratio,
# how much of the energy differences between frames (the reference knows only their
# mean). These are test-set averages over configurations like the training ones; whether
# the model holds up when it drives the dynamics itself is the next question.
#
# ## 4. Molecular dynamics with the trained model
#
# `IrrepnetCalculator(model, species)` makes the model an ASE calculator: it builds the
# batch from an `Atoms` object (positions, the one-hot of the species in the task's order,
# cell, pbc), runs the model in float64 and returns the energy and forces. Any ASE dynamics
# or optimiser then runs on it. Here, constant energy (NVE, velocity Verlet) from the state
# the Langevin run of section 1 ended in, the same for both, with the same 5 fs time step:
# one run with the trained model, one with EMT itself.
#
# Two things to look at:
#
# - **energy conservation.** In NVE the total energy $E_\text{pot} + E_\text{kin}$ is
#   constant up to the integrator's error. Its *drift* (the least-squares slope of the
#   total energy per atom against time, in eV/atom/ns) and its fluctuation measure how well
#   the time step resolves the motion on each potential energy surface. Forces that are the
#   exact gradient of a smooth energy conserve it as well as EMT's do; a rough surface, or
#   atoms wandering where the model has seen no data, shows up as a larger drift or a jump.
# - **structure.** The radial distribution function $g(r)$: the density of neighbours at
#   distance $r$ relative to an ideal gas, averaged over the run. Its peaks are the
#   neighbour shells of the fcc lattice, broadened by thermal motion.
#
# Chaos makes the two trajectories part after a few hundred femtoseconds whatever the
# model, so compare averages (the $g(r)$, the temperature), not positions at a given time.
#
# First, what a step costs (the model's forward and backward pass, the periodic graph
# rebuilt at every step, ASE's bookkeeping):

# %%
species = task.spec.extras["species"]
calculators = {"EMT": EMT(), "mace": IrrepnetCalculator(model, species, dtype="float64")}
for name, calc in calculators.items():
    trial = md_start.copy()
    trial.calc = calc
    dyn = VelocityVerlet(trial, timestep=TIME_STEP_FS * units.fs)
    dyn.run(2)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    dyn.run(20)
    wall, cpu = (time.perf_counter() - t0) / 20, (time.process_time() - c0) / 20
    print(
        f"{name:<5} {1e3 * wall:6.1f} ms per step (CPU {1e3 * cpu:.1f} ms): {MD_STEPS} steps take ~{MD_STEPS * wall:.0f} s"
    )


# %% [markdown]
# Then the two runs. Every 10 steps the energies are recorded and the pair distances up to
# 6 Å (periodic images included: ASE's `neighbor_list`) are added to a histogram.

# %%
R_MAX, R_BIN = 6.0, 0.05
R_EDGES = np.arange(0.0, R_MAX + R_BIN, R_BIN)


def run_nve(start_atoms, calc, steps, interval=10):
    """NVE from ``start_atoms`` (positions and momenta) with ``calc``: times (ps), E_pot, E_kin (eV), g(r)."""
    atoms = start_atoms.copy()
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=TIME_STEP_FS * units.fs)
    t, e_pot, e_kin, counts = [], [], [], np.zeros(len(R_EDGES) - 1)

    def sample():
        t.append(dyn.nsteps * TIME_STEP_FS / 1000)
        e_pot.append(atoms.get_potential_energy())
        e_kin.append(atoms.get_kinetic_energy())
        counts[:] += np.histogram(neighbor_list("d", atoms, R_MAX), bins=R_EDGES)[0]

    dyn.attach(sample, interval=interval)
    dyn.run(steps)  # samples at step 0, interval, ..., steps
    n, volume = len(atoms), atoms.get_volume()
    r = 0.5 * (R_EDGES[1:] + R_EDGES[:-1])
    shell = 4 * np.pi * r**2 * R_BIN * n / volume  # ideal-gas neighbours of one atom in each bin
    g = counts / (len(t) * n * shell)  # neighbor_list counts each pair twice, once from each atom
    return {"t": np.array(t), "e_pot": np.array(e_pot), "e_kin": np.array(e_kin), "r": r, "g": g, "n": n}


def drift_per_atom_per_ns(run):
    """Least-squares slope of the total energy per atom against time, eV/atom/ns."""
    e_tot = (run["e_pot"] + run["e_kin"]) / run["n"]
    return float(np.polyfit(run["t"], e_tot, 1)[0] * 1000)


runs = {}
for name, calc in calculators.items():
    start = time.perf_counter()
    runs[name] = run_nve(md_start, calc, MD_STEPS)
    print(f"{name}: {MD_STEPS} steps ({MD_STEPS * TIME_STEP_FS / 1000:.0f} ps) in {time.perf_counter() - start:.1f} s")

kelvin = 2 / (3 * len(md_start) * units.kB)  # E_kin -> temperature (3N degrees of freedom)
print(f"\n{'':<6} {'drift (eV/atom/ns)':>19} {'std E_tot (meV/atom)':>21} {'mean T (K)':>11}")
for name, run in runs.items():
    e_tot = (run["e_pot"] + run["e_kin"]) / run["n"]
    print(
        f"{name:<6} {drift_per_atom_per_ns(run):>19.2e} {1e3 * e_tot.std():>21.3f} "
        f"{kelvin * run['e_kin'].mean():>11.0f}"
    )

# %%
fig, axes = plt.subplots(1, 2, figsize=(8.4, 2.8))
for name, run in runs.items():
    e_tot = (run["e_pot"] + run["e_kin"]) / run["n"]
    axes[0].plot(run["t"], 1e3 * (e_tot - e_tot[0]), lw=1, label=name)
    axes[1].plot(run["r"], run["g"], lw=1, label=name)
axes[0].set_xlabel("time (ps)"), axes[0].set_ylabel("E_tot - E_tot(0) (meV/atom)")
axes[0].set_title("total energy, NVE", fontsize=9)
axes[1].set_xlabel("r (Å)"), axes[1].set_ylabel("g(r)")
axes[1].set_title(f"radial distribution function, {len(md_start)} Cu", fontsize=9)
for ax in axes:
    ax.legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# How to read them. **Energy**: both curves should wander within a band whose width is
# set by the time step (the integrator's error oscillates with the vibrations) and show no
# trend. A model's band a few times wider than EMT's is still usable; a steady slope or a
# jump is not, because it means heating or cooling that the physics does not contain. Over
# a run this short the fitted drift is dominated by that noise (compare it with the
# standard deviation in the table: a drift of $d$ eV/atom/ns moves the energy by $d \cdot t$
# over the run's $t$ ns), so only a drift well above EMT's means something; a claim about
# it needs several and longer runs (`IRREPNET_FULL=1`, or `benchmarks/md_stability.py`).
#
# **Structure**: the first peak (the 12 nearest neighbours, near $a_0/\sqrt 2 \approx
# 2.55$ Å) and the following shells should lie on top of EMT's. A shifted or sharper first
# peak is a wrong bond length or stiffness. The temperatures in the table differ even for
# two perfect models, because the runs share the start but not the potential energy (the
# kinetic share settles differently), and with 32 atoms the instantaneous temperature
# fluctuates by about $\sqrt{2 / 3N} \approx 14\%$ of its mean, so a run of a few
# picoseconds averages only a few dozen independent values of it.
#
# ## 5. Export: a file that runs with torch alone
#
# `export_model` traces the model with `torch.export` (`make_fx` first, so that the
# forces, $-\partial E / \partial x$, are written into the program as ordinary operations),
# with the numbers of atoms, edges and systems left free. `aoti=False` saves the
# `ExportedProgram` itself; the default, AOTInductor, compiles it to C++ as well, which
# takes minutes on a CPU and gives a faster program. `periodic=True` makes the cell and the
# periodic image of each edge inputs of the program. The neighbour list stays outside
# (its size depends on the positions): the package's metadata names the graph (radius,
# with its cutoff) and a small torch-only runtime, written beside the package, builds it.
# See the export guide in the documentation (`docs/guide/export.md`).

# %%
start = time.perf_counter()
exported = export_model(
    model, WORK / "cu_mace.pt2", aoti=False, dtype="float64", task=task.spec, name="mace", periodic=True
)
print(f"exported in {time.perf_counter() - start:.1f} s (tracing {exported.trace_s:.1f} s)")
for path in sorted(WORK.glob("cu_mace*")):
    print(f"  {path.name:<22} {path.stat().st_size / 1024:8.0f} KB")
meta = exported.metadata
print("inputs: ", meta["inputs"])
print("outputs:", meta["outputs"], "| graph:", meta["graph"], "| species:", meta["species"], "| dtype:", meta["dtype"])

# %% [markdown]
# Loading it back needs no irrepnet: the runtime file is plain Python that imports only
# torch (here it is loaded from its path, as a user without irrepnet would). Its `load`
# reads the metadata and the program; calling the loaded model with positions, element
# symbols, cell and pbc builds the periodic radius graph and returns energy and forces.
#
# The check: two frames of different sizes, the first frame of the test set (32 atoms) and
# a larger cell the model has never seen, 3 x 3 x 2 conventional cells (72 atoms) with
# every atom displaced at random by about 0.05 Å. The exported program should agree with
# the eager model (the calculator above) to float64 round-off, far below the model's own
# error, on both: the sizes are dynamic, so one package serves any cell.

# %%
spec = importlib.util.spec_from_file_location("cu_mace_runtime", WORK / "cu_mace_runtime.py")
runtime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtime)
package = runtime.load(WORK / "cu_mace.pt2")

test_frame = ase.io.read(data_path, index=int(task.test.frames[0]))
larger = bulk("Cu", "fcc", cubic=True).repeat((3, 3, 2))
larger.rattle(0.05, seed=1)
eager = calculators["mace"]
print(f"{'frame':<26} {'atoms':>5} {'E eager (eV)':>14} {'|dE| (eV)':>10} {'max |dF| (eV/Å)':>16}")
for label, frame in [(f"test frame {int(task.test.frames[0])}", test_frame), ("3x3x2 cells, rattled", larger)]:
    pos = torch.tensor(frame.positions)
    cell, pbc = torch.tensor(frame.cell[:]), torch.tensor(frame.pbc)
    energy, forces = package(pos, species=frame.get_chemical_symbols(), cell=cell, pbc=pbc)
    e_ref, f_ref = eager.get_potential_energy(frame), eager.get_forces(frame)
    d_e = abs(float(energy.sum()) - e_ref)
    d_f = float(np.abs(forces.numpy() - f_ref).max())
    print(f"{label:<26} {len(frame):>5} {e_ref:>14.6f} {d_e:>10.1e} {d_f:>16.1e}")

# %% [markdown]
# Differences of order $10^{-12}$ or below are round-off: the exported program computes
# the same function as the model. Anything near the model's own force error would mean the
# export went wrong (`export_model` already refuses a program that disagrees with the
# model on its tracing example).
#
# ## 6. From here
#
# The same pipeline from the command line, on your own file (the keys and split as above):
#
# ```bash
# irrepnet train --task energy --data cu_600K.extxyz --energy-key REF_energy --forces-key REF_forces \
#     --valid-fraction 0.1 --test-fraction 0.2 --model mace --out runs/cu-mace
# irrepnet export runs/cu-mace/best.pt --out cu_mace.pt2 --periodic --no-aoti   # or AOTInductor (minutes)
# ```
#
# `IrrepnetCalculator.from_checkpoint("runs/cu-mace/best.pt")` gives the calculator of a
# trained checkpoint; `benchmarks/md_stability.py` runs the NVE comparison above for
# several models and seeds. With DFT labels, a model for production needs more: frames from
# every phase and temperature it will see, a validation set from separate runs, and
# longer training (`IRREPNET_FULL=1` shows the direction: more data, the registry's MACE,
# 3000 steps, 50 ps of dynamics).

# %%
print(f"notebook ran in {time.perf_counter() - NOTEBOOK_START:.0f} s")
