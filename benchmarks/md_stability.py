r"""Do trained energy models hold up in molecular dynamics? NVE runs beside EMT's own.

A force error that a test set averages away can still heat a trajectory, pull two atoms
together or break a molecule within picoseconds. For each trained model (a checkpoint of
the ``molecules`` or ``bulk_metal`` task) this script runs constant-energy molecular
dynamics (velocity Verlet, ASE's ``VelocityVerlet``, through
:class:`irrepnet.calculator.IrrepnetCalculator`) on each system whose elements the model
was trained on:

- ``cu``: the ``bulk_metal`` task's periodic fcc Cu supercell (2x2x2 conventional cells,
  32 atoms, ASE's reference lattice constant);
- ``molecule``: one G2 molecule of the ``molecules`` task (default ``CH4``).

Every run starts from the same equilibrated state for every model: ASE's ``EMT`` under
Langevin dynamics at the target temperature (friction 0.02/fs, the bulk task's; momenta
drawn at twice the target first, since equipartition hands half to the potential), seeded
by the run number, so runs differ by their initial positions and velocities. EMT's own
NVE run from that state is the reference row. Per run:

.. math::

    \text{drift} = \frac{1}{N}\,\frac{d E_\text{tot}}{dt}\ \text{(least-squares slope, eV/atom/ns)},\qquad
    E_\text{tot} = E_\text{pot} + E_\text{kin};

the run is *physical* when, at every check (each ``--interval`` steps), no pair is closer
than ``--min-distance-factor`` (0.5) times EMT's equilibrium nearest-neighbour distance
and the temperature stays below ``--max-temperature-factor`` (5) times the target; it stops
at the first violation, and its drift is fitted over the steps it ran. The radial
distribution function :math:`g(r)` (Cu: minimum image, up to half the cell) or the density
of pair distances (the molecule), accumulated at the checks, gives the first peak (height,
position), compared with EMT's as a relative difference.

Time steps: the largest at which EMT's own total energy fluctuates by less than 1e-4 eV/atom
(0.4% of kT at 300 K) over the run. ``--scan-timesteps`` measured it (300 K, 2 runs each,
committed in ``benchmarks/results/md-stability-timestep-scan``):

======  =====  ===========================  ========================
system  dt fs  mean abs drift, eV/atom/ns   std of E_tot, eV/atom
======  =====  ===========================  ========================
Cu      1      5.0e-5                       1.4e-6
Cu      2      2.1e-4                       5.6e-6
Cu      5      3.3e-3                       3.5e-5
Cu      10     1.2e-2                       1.5e-4
CH4     0.1    1.5e-4                       3.7e-6
CH4     0.25   6.0e-4                       2.2e-5
CH4     0.5    5.5e-3                       9.1e-5
CH4     1      2.8e-2                       3.5e-4
======  =====  ===========================  ========================

so Cu runs at 5 fs (the bulk task's own Langevin step) and CH4, with hydrogen, at 0.5 fs.

Cost
----
A step costs the model's forward and backward pass (the graph is rebuilt every step;
:mod:`irrepnet.calculator`) plus ASE's bookkeeping. Measured through this path (ASE's
``VelocityVerlet`` and the calculator, default configurations, float64, one torch thread,
CPU time of the process on "AMD EPYC" while other jobs shared its 2 cores):

================  ===============  ===============
model             CH4, ms/step     Cu 32, ms/step
================  ===============  ===============
EMT (reference)   0.9              4.3
egnn              5.7              (full graph: refuses periodic cells)
tfn               19.7             35.2
segnn             28.7             (full graph: refuses periodic cells)
se3-transformer   19.2             39.1
e3nn-reference    44.7             106.3
mace              14.1             26.6
================  ===============  ===============

so one step of every model on both systems costs about 0.34 s. The defaults (2000 steps,
2 runs: 10 ps of Cu, 1 ps of CH4 per run) make about 23 min of CPU for the six families,
less when a model stops early; 10,000 steps x 3 runs would take about 2.8 h. ``--train``
adds its training (300 steps per model and task by default: 90 s for egnn to 545 s for
segnn of wall time on molecules on the loaded 2-core machine).

Usage::

    # models you trained (a name may come twice: one checkpoint per task)
    python benchmarks/md_stability.py --checkpoint egnn=runs/egnn-mol/best.pt egnn=runs/egnn-cu/best.pt \
        --out benchmarks/results/md-stability
    # or let the script train each model on both tasks first (--train-steps optimiser steps each)
    python benchmarks/md_stability.py --train egnn tfn --out benchmarks/results/md-stability
    # EMT's drift at several time steps (how the defaults were chosen)
    python benchmarks/md_stability.py --scan-timesteps --out /tmp/md-scan

Writes ``results.json`` (every run, failures included, with the machine, commit and command),
``results.md`` and ``energy.png`` (total energy per atom against time, each model beside EMT).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Langevin friction of the equilibration, per fs (the bulk_metal task's)
FRICTION_PER_FS = 0.02
#: width of the g(r) bins, Å
RDF_BIN = 0.02
#: the reference row's name
EMT = "EMT"


# --- systems --------------------------------------------------------------------------------------------------
@dataclass
class MDSystem:
    """One system of the benchmark: how to build it, its time step and its physical limits.

    ``nn_distance`` is EMT's equilibrium nearest-neighbour distance (a run is unphysical
    below a fraction of it); ``first_shell`` ends the window in which the first peak of
    :math:`g(r)` is looked for (half-way between the first two distance shells of EMT's
    relaxed structure); ``r_max`` ends :math:`g(r)`.
    """

    name: str
    build: Callable[[], object]
    timestep_fs: float
    temperature: float
    equilibrate_fs: float
    nn_distance: float
    first_shell: float
    r_max: float
    periodic: bool
    label: str = ""

    def elements(self) -> set[str]:
        """The chemical symbols in the system."""
        return set(self.build().get_chemical_symbols())


def cu_supercell():
    """The bulk_metal task's default supercell: fcc Cu, 2x2x2 conventional cells (32 atoms), ASE's a0."""
    from ase.build import bulk

    return bulk("Cu", "fcc", cubic=True).repeat((2, 2, 2))


def g2_molecule(name: str):
    """A G2 molecule (``ase.collections.g2``, as the molecules task draws them), not periodic."""
    from ase.collections import g2

    if name not in g2.names:
        raise ValueError(f"{name!r} is not a G2 molecule (ase.collections.g2); e.g. CH4, C2H6, NH3")
    atoms = g2[name].copy()
    atoms.pbc = False
    return atoms


def pair_distances(atoms) -> np.ndarray:
    """Distances of all pairs ``i < j``: minimum image along periodic directions (valid up to half the cell)."""
    pos = np.asarray(atoms.positions)
    i, j = np.triu_indices(len(pos), 1)
    d = pos[j] - pos[i]
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any():
        cell = np.asarray(atoms.cell[:])
        frac = d @ np.linalg.inv(cell)
        frac[:, pbc] -= np.round(frac[:, pbc])
        d = frac @ cell
    return np.sqrt((d * d).sum(1))


def distance_shells(atoms, tolerance: float = 0.05) -> list[float]:
    """Mean distance of each group of pair distances (sorted; a gap above ``tolerance`` Å starts a group)."""
    d = np.sort(pair_distances(atoms))
    groups, start = [], 0
    for k in range(1, len(d) + 1):
        if k == len(d) or d[k] - d[k - 1] > tolerance:
            groups.append(float(d[start:k].mean()))
            start = k
    return groups


def relaxed_with_emt(atoms, fmax: float = 1e-3):
    """``atoms`` at EMT's nearest minimum (BFGS; the cell fixed)."""
    from ase.calculators.emt import EMT as EMTCalculator
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = EMTCalculator()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=1000)
    return atoms


def make_system(
    kind: str,
    *,
    temperature: float = 300.0,
    timestep_fs: float | None = None,
    molecule: str = "CH4",
    equilibrate_fs: float | None = None,
) -> MDSystem:
    """The ``cu`` or ``molecule`` system, its limits measured on EMT's relaxed structure."""
    if kind == "cu":
        build, dt, equil, periodic, label = cu_supercell, 5.0, 1000.0, True, "Cu fcc 2x2x2 (32 atoms, periodic)"
    elif kind == "molecule":
        build, dt, periodic = (lambda: g2_molecule(molecule)), 0.5, False
        equil, label = 500.0, f"{molecule} ({len(g2_molecule(molecule))} atoms)"
    else:
        raise ValueError(f"unknown system {kind!r}; choose 'cu' or 'molecule'")
    shells = distance_shells(relaxed_with_emt(build()))
    r_max = 0.5 * float(build().cell.lengths().min()) if periodic else 1.25 * shells[-1]
    first_shell = 0.5 * (shells[0] + shells[1]) if len(shells) > 1 else r_max
    equil = equil if equilibrate_fs is None else equilibrate_fs
    return MDSystem(kind, build, timestep_fs or dt, temperature, equil, shells[0], first_shell, r_max, periodic, label)


# --- dynamics -------------------------------------------------------------------------------------------------
def thermal_momenta(atoms, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """Maxwell-Boltzmann momenta at ``temperature`` (K) with the centre-of-mass momentum removed."""
    from ase import units

    masses = atoms.get_masses()
    p = np.sqrt(masses * units.kB * temperature)[:, None] * rng.standard_normal((len(atoms), 3))
    return p - masses[:, None] * p.sum(0) / masses.sum()


def equilibrated_state(system: MDSystem, seed: int):
    """The start of run ``seed``: EMT Langevin at the target temperature for ``equilibrate_fs``, then NVE-ready.

    The centre of mass is held during the Langevin run (ASE's ``FixCom``) and its momentum
    is zero at the end, so that the NVE temperature counts internal motion only.
    """
    from ase import units
    from ase.calculators.emt import EMT as EMTCalculator
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    rng = np.random.default_rng([seed, 2024])
    atoms = system.build()
    atoms.calc = EMTCalculator()
    atoms.set_momenta(thermal_momenta(atoms, 2 * system.temperature, rng))
    atoms.set_constraint(FixCom())
    dyn = Langevin(
        atoms,
        system.timestep_fs * units.fs,
        temperature_K=system.temperature,
        friction=FRICTION_PER_FS / units.fs,
        fixcm=False,
        rng=rng,
    )
    dyn.run(int(round(system.equilibrate_fs / system.timestep_fs)))
    atoms.set_constraint()
    masses = atoms.get_masses()
    p = atoms.get_momenta()
    atoms.set_momenta(p - masses[:, None] * p.sum(0) / masses.sum())
    atoms.calc = None
    return atoms


@dataclass
class Run:
    """One NVE run: its samples (every ``interval`` steps) and how it ended."""

    model: str
    system: str
    run: int
    n_atoms: int
    timestep_fs: float
    steps: int = 0
    stopped: str | None = None  # why it stopped before the last step (None: it ran to the end)
    time_ps: list[float] = field(default_factory=list)
    e_pot: list[float] = field(default_factory=list)
    e_kin: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)
    min_distance: list[float] = field(default_factory=list)
    rdf_counts: np.ndarray | None = None
    rdf_frames: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of this process: the cost on an unloaded core (one torch thread)

    @property
    def physical(self) -> bool:
        return self.stopped is None

    @property
    def ms_per_step(self) -> float:
        """Wall-clock milliseconds per MD step (model, ASE and the checks)."""
        return 1e3 * self.wall_s / self.steps if self.steps else float("nan")

    @property
    def cpu_ms_per_step(self) -> float:
        """CPU milliseconds per MD step: what a step costs on a core of its own, whatever else ran beside it."""
        return 1e3 * self.cpu_s / self.steps if self.steps else float("nan")


def run_nve(
    atoms,
    calc,
    system: MDSystem,
    *,
    steps: int,
    interval: int = 10,
    model: str = "",
    run: int = 0,
    min_distance_factor: float = 0.5,
    max_temperature_factor: float = 5.0,
) -> Run:
    """Velocity Verlet from ``atoms`` (positions and momenta kept) with ``calc`` for ``steps`` steps.

    Samples and checks every ``interval`` steps; stops at the first unphysical sample, a
    non-finite energy, or an exception of the calculator (its message becomes ``stopped``).
    """
    from ase import units
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = calc
    n = len(atoms)
    out = Run(model, system.name, run, n, system.timestep_fs)
    bins = np.arange(0.0, system.r_max + RDF_BIN, RDF_BIN)
    out.rdf_counts = np.zeros(len(bins) - 1)
    d_min = min_distance_factor * system.nn_distance
    t_max = max_temperature_factor * system.temperature

    def sample() -> str | None:
        e_pot, e_kin = float(atoms.get_potential_energy()), float(atoms.get_kinetic_energy())
        d = pair_distances(atoms)
        out.time_ps.append(out.steps * system.timestep_fs / 1000)
        out.e_pot.append(e_pot)
        out.e_kin.append(e_kin)
        out.temperature.append(2 * e_kin / (3 * n * units.kB))
        out.min_distance.append(float(d.min()))
        out.rdf_counts += np.histogram(d, bins=bins)[0]
        out.rdf_frames += 1
        if not (math.isfinite(e_pot) and math.isfinite(e_kin)):
            return "non-finite energy"
        if d.min() < d_min:
            return f"pair closer than {d_min:.2f} Å ({d.min():.2f} Å)"
        if out.temperature[-1] > t_max:
            return f"temperature {out.temperature[-1]:.0f} K > {t_max:.0f} K"
        return None

    dyn = VelocityVerlet(atoms, timestep=system.timestep_fs * units.fs)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        out.stopped = sample()
        while out.stopped is None and out.steps < steps:
            k = min(interval, steps - out.steps)
            dyn.run(k)
            out.steps += k
            out.stopped = sample()
    except Exception as exc:  # a model that fails mid-run is a result, not a crash of the benchmark
        out.stopped = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    out.wall_s, out.cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return out


def drift_per_atom_per_ns(run: Run) -> float:
    """Least-squares slope of the total energy per atom against time, eV/atom/ns (NaN with < 2 samples)."""
    t = np.asarray(run.time_ps)
    e = np.asarray(run.e_pot) + np.asarray(run.e_kin)
    ok = np.isfinite(e)
    if ok.sum() < 2:
        return float("nan")
    slope_per_ps = np.polyfit(t[ok], e[ok], 1)[0]
    return float(slope_per_ps * 1000 / run.n_atoms)


def energy_std_per_atom(run: Run) -> float:
    """Standard deviation of the total energy per atom over the run, eV/atom: the noise a short run's slope sees."""
    e = (np.asarray(run.e_pot) + np.asarray(run.e_kin)) / run.n_atoms
    return float(np.std(e)) if len(e) > 1 and np.isfinite(e).all() else float("nan")


def rdf(run: Run, system: MDSystem, atoms=None) -> tuple[np.ndarray, np.ndarray]:
    """``(r, g)``: g(r) of the periodic system (ideal gas = 1), or the pair-distance density (1/Å) of a molecule."""
    bins = np.arange(0.0, system.r_max + RDF_BIN, RDF_BIN)
    r = 0.5 * (bins[1:] + bins[:-1])
    if run.rdf_frames == 0:
        return r, np.zeros_like(r)
    n_pairs = run.n_atoms * (run.n_atoms - 1) / 2
    density = run.rdf_counts / (run.rdf_frames * n_pairs * RDF_BIN)
    if system.periodic:
        volume = float(abs(np.linalg.det(np.asarray((atoms or system.build()).cell[:]))))
        density = density * volume / (4 * np.pi * r**2)
    return r, density


def first_peak(r: np.ndarray, g: np.ndarray, first_shell: float) -> tuple[float, float]:
    """``(position Å, height)`` of the maximum of ``g`` below ``first_shell``."""
    window = r < first_shell
    if not window.any() or not np.any(g[window] > 0):
        return float("nan"), float("nan")
    k = int(np.argmax(np.where(window, g, -np.inf)))
    return float(r[k]), float(g[k])


# --- models ---------------------------------------------------------------------------------------------------
def parse_checkpoints(items: Sequence[str]) -> list[tuple[str, Path]]:
    """``NAME=PATH`` pairs; a bad item is a one-line ValueError."""
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--checkpoint takes NAME=PATH (e.g. egnn=runs/egnn/best.pt), got {item!r}")
        out.append((name, Path(path)))
    return out


def covered_systems(species: Sequence[str], systems: dict[str, MDSystem]) -> list[str]:
    """The systems whose elements are all among ``species``."""
    return [k for k, s in systems.items() if s.elements() <= set(species)]


def train_checkpoints(models: Sequence[str], tasks: Sequence[str], out: Path, steps: int, seed: int = 0):
    """Train each model on each task for ``steps`` optimiser steps (batch 16, Adam 3e-3 cosine, float32).

    Returns ``[(name, best.pt), ...]``. The budget is small on purpose: the benchmark asks
    whether short-trained models are *stable*, not how accurate long training makes them.
    """
    from irrepnet.tasks import load_task
    from irrepnet.train import TrainConfig, train_registered

    done = []
    for task_name in tasks:
        task = load_task(task_name)
        for name in models:
            folder = out / "checkpoints" / f"{name}-{task_name}"
            cfg = TrainConfig(
                epochs=10**6,
                max_steps=steps,
                batch_size=16,
                lr=3e-3,
                warmup_steps=min(50, steps // 10),
                schedule="cosine",
                seed=seed,
                progress=False,
                device="cpu",
            )
            t0 = time.perf_counter()
            res = train_registered(name, task, cfg, out_dir=folder)
            print(
                f"trained {name} on {task_name}: {steps} steps in {time.perf_counter() - t0:.0f} s, "
                f"best valid loss {res.best_valid_loss:.4g}",
                flush=True,
            )
            done.append((name, folder / "best.pt"))
    return done


# --- EMT's own time step ----------------------------------------------------------------------------------------
def timestep_scan(system: MDSystem, timesteps_fs: Sequence[float], duration_ps: float, runs: int) -> list[dict]:
    """EMT's NVE drift and energy spread at each time step over ``duration_ps``, from ``runs`` equilibrated states."""
    from ase.calculators.emt import EMT as EMTCalculator

    rows = []
    starts = [equilibrated_state(system, r) for r in range(runs)]  # the same states at every time step
    for dt in timesteps_fs:
        trial = MDSystem(**{**system.__dict__, "timestep_fs": float(dt)})
        drifts, spreads, physical = [], [], 0
        for r, start in enumerate(starts):
            res = run_nve(start, EMTCalculator(), trial, steps=int(round(duration_ps * 1000 / dt)), model=EMT, run=r)
            e = (np.asarray(res.e_pot) + np.asarray(res.e_kin)) / res.n_atoms
            drifts.append(drift_per_atom_per_ns(res))
            spreads.append(float(np.std(e)))
            physical += res.physical
        rows.append(
            {
                "system": system.name,
                "timestep_fs": float(dt),
                "duration_ps": duration_ps,
                "runs": runs,
                "physical": physical,
                "drift_ev_per_atom_per_ns": drifts,
                "energy_std_ev_per_atom": spreads,
            }
        )
        print(
            f"EMT {system.name} dt {dt:g} fs: drift {np.mean(np.abs(drifts)):.3g} eV/atom/ns (mean |.|), "
            f"E_tot std {np.mean(spreads):.3g} eV/atom, {physical}/{runs} physical",
            flush=True,
        )
    return rows


# --- summary and report -----------------------------------------------------------------------------------------
def summarise(runs: Sequence[Run], systems: dict[str, MDSystem]) -> list[dict]:
    """One row per (system, model): physical fraction, drift, g(r) first peak against EMT's, cost."""
    rows = []
    emt_peak = {}
    for key in dict.fromkeys((r.system, r.model) for r in runs):
        system = systems[key[0]]
        mine = [r for r in runs if (r.system, r.model) == key]
        counts = sum((r.rdf_counts for r in mine), np.zeros_like(mine[0].rdf_counts))
        pooled = Run(
            key[1],
            key[0],
            -1,
            mine[0].n_atoms,
            system.timestep_fs,
            rdf_counts=counts,
            rdf_frames=sum(r.rdf_frames for r in mine),
        )
        position, height = first_peak(*rdf(pooled, system), system.first_shell)
        if key[1] == EMT:
            emt_peak[key[0]] = (position, height)
        drifts = [drift_per_atom_per_ns(r) for r in mine]
        ok = [d for d, r in zip(drifts, mine) if r.physical]
        rows.append(
            {
                "system": key[0],
                "model": key[1],
                "runs": len(mine),
                "physical": sum(r.physical for r in mine),
                "drift_ev_per_atom_per_ns": drifts,
                "drift_abs_median_physical": float(np.median(np.abs(ok))) if ok else None,
                "energy_std_ev_per_atom": [energy_std_per_atom(r) for r in mine],
                "stopped": [r.stopped for r in mine],
                "steps": [r.steps for r in mine],
                "first_peak_position": position,
                "first_peak_height": height,
                "ms_per_step": _median([r.ms_per_step for r in mine if r.steps]),
                "cpu_ms_per_step": _median([r.cpu_ms_per_step for r in mine if r.steps]),
            }
        )
    for row in rows:
        ref = emt_peak.get(row["system"])
        for i, what in enumerate(("position", "height")):
            mine = row[f"first_peak_{what}"]
            row[f"first_peak_{what}_rel_diff"] = (
                (mine - ref[i]) / ref[i] if ref is not None and math.isfinite(mine) and ref[i] else None
            )
    return rows


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def _fmt(x, spec=".3g", none="-") -> str:
    return none if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def results_markdown(meta: dict, systems: dict[str, MDSystem], rows: Sequence[dict], scan: Sequence[dict]) -> str:
    """``results.md``: the setup, one table per system (EMT first), failures spelled out, the time-step scan."""
    lines = [
        "# MD stability: NVE with trained energy models beside EMT",
        "",
        f"- command: `{meta['command']}`",
        f"- commit: {meta.get('commit', '?')}{' (dirty tree)' if meta.get('dirty') else ''}; machine: "
        f"{meta.get('machine', '?')}; torch threads {meta.get('torch_threads', '?')}; {meta.get('date', '')}",
        f"- steps per run: {meta['steps']}, runs per model: {meta['runs']}, dtype {meta['dtype']}, "
        f"check every {meta['interval']} steps; wall time {meta.get('wall_s', 0) / 60:.1f} min",
        f"- physical: no pair closer than {meta['min_distance_factor']} x EMT's nearest-neighbour distance, "
        f"T < {meta['max_temperature_factor']} x target; drift: least-squares slope of E_tot per atom "
        "(eV/atom/ns; |median| over physical runs; over a short run the fluctuation of E_tot, its std, "
        "dominates the slope)",
        "",
    ]
    for name, system in systems.items():
        mine = [r for r in rows if r["system"] == name]
        if not mine:
            continue
        lines += [
            f"## {system.label or name}: {system.temperature:g} K, dt {system.timestep_fs:g} fs",
            "",
            f"nearest-neighbour distance (EMT, relaxed) {system.nn_distance:.3f} Å; g(r) first peak below "
            f"{system.first_shell:.2f} Å",
            "",
            "| model | physical runs | abs drift (eV/atom/ns) | drift per run | E_tot std (meV/atom) "
            "| g(r) peak at (Å) | rel. diff | peak height | rel. diff | CPU ms/step | wall ms/step |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(mine, key=lambda r: (r["model"] != EMT, r["model"])):
            lines.append(
                f"| {r['model']} | {r['physical']}/{r['runs']} | {_fmt(r['drift_abs_median_physical'])} | "
                f"{', '.join(_fmt(d, '.2g') for d in r['drift_ev_per_atom_per_ns'])} | "
                f"{_fmt(_median([1e3 * x for x in r['energy_std_ev_per_atom'] if math.isfinite(x)]))} | "
                f"{_fmt(r['first_peak_position'], '.3f')} | {_fmt(r['first_peak_position_rel_diff'], '+.1%')} | "
                f"{_fmt(r['first_peak_height'])} | {_fmt(r['first_peak_height_rel_diff'], '+.1%')} | "
                f"{_fmt(r['cpu_ms_per_step'], '.1f')} | {_fmt(r['ms_per_step'], '.1f')} |"
            )
        failures = [
            f"- {r['model']} run {k}: stopped after {r['steps'][k]} steps: {why}"
            for r in mine
            for k, why in enumerate(r["stopped"])
            if why
        ]
        lines += ["", *(failures or ["No run stopped early."]), ""]
    if scan:
        lines += [
            "## EMT's own drift against the time step",
            "",
            "| system | dt (fs) | ps | runs physical | mean abs drift (eV/atom/ns) | E_tot std (eV/atom) |",
            "|---|---|---|---|---|---|",
        ]
        for s in scan:
            lines.append(
                f"| {s['system']} | {s['timestep_fs']:g} | {s['duration_ps']:g} | {s['physical']}/{s['runs']} | "
                f"{_fmt(float(np.mean(np.abs(s['drift_ev_per_atom_per_ns']))))} | "
                f"{_fmt(float(np.mean(s['energy_std_ev_per_atom'])))} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_energy(runs: Sequence[Run], systems: dict[str, MDSystem], path: Path) -> None:
    """Total energy per atom minus its start against time, run 0 of each model (EMT dashed, black).

    A model has one colour in every panel. The vertical range is that of the runs that stayed
    physical (x 1.5), so that a run that blew up does not flatten the others; it is drawn to
    where it leaves the panel and marked with an ``x`` at its last sample (clipped to the edge).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in systems if any(r.system == k for r in runs)]
    models = [m for m in dict.fromkeys(r.model for r in runs) if m != EMT]
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.0 * max(1, len(names)), 2.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        curves = []
        for r in [r for r in runs if r.system == name and r.run == 0]:
            e = (np.asarray(r.e_pot) + np.asarray(r.e_kin)) / r.n_atoms
            curves.append((r, 1e3 * (e - e[0])))
        shown = np.concatenate([y for r, y in curves if r.physical and np.isfinite(y).all()] or [np.zeros(1)])
        half = 1.5 * max(float(np.abs(shown).max()), 1e-3)
        for r, y in curves:
            style = (
                {"color": "black", "ls": "--", "lw": 1.2} if r.model == EMT else {"lw": 1.0, "color": colours[r.model]}
            )
            ax.plot(r.time_ps, y, label=r.model + ("" if r.physical else " (stopped)"), **style)
            if not r.physical and len(y):
                ax.plot(r.time_ps[-1], np.clip(y[-1], -half, half), "x", color=style["color"], ms=7, clip_on=False)
        ax.set_ylim(-half, half)
        ax.set_title(systems[name].label or name, fontsize=9)
        ax.set_xlabel("time (ps)")
        ax.set_ylabel("E_tot - E_tot(0) (meV/atom)")
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_to_json(run: Run, every: int = 1) -> dict:
    """A run as JSON: its figures and its samples (every ``every``-th)."""
    return {
        "model": run.model,
        "system": run.system,
        "run": run.run,
        "n_atoms": run.n_atoms,
        "timestep_fs": run.timestep_fs,
        "steps": run.steps,
        "stopped": run.stopped,
        "physical": run.physical,
        "drift_ev_per_atom_per_ns": drift_per_atom_per_ns(run),
        "energy_std_ev_per_atom": energy_std_per_atom(run),
        "ms_per_step": run.ms_per_step,
        "cpu_ms_per_step": run.cpu_ms_per_step,
        "wall_s": run.wall_s,
        "samples": {
            k: [float(x) for x in getattr(run, k)[::every]]
            for k in ("time_ps", "e_pot", "e_kin", "temperature", "min_distance")
        },
    }


# --- the benchmark ----------------------------------------------------------------------------------------------
def benchmark(
    calculators: Sequence[tuple[str, object, Sequence[str]]],
    systems: dict[str, MDSystem],
    *,
    steps: int,
    runs: int,
    interval: int = 10,
    min_distance_factor: float = 0.5,
    max_temperature_factor: float = 5.0,
    log=print,
) -> list[Run]:
    """EMT and every ``(name, calculator, systems)`` on each of its systems, ``runs`` times from equilibrated states."""
    from ase.calculators.emt import EMT as EMTCalculator

    out = []
    for name, system in systems.items():
        starts = [equilibrated_state(system, r) for r in range(runs)]
        todo = [(EMT, EMTCalculator())] + [(m, c) for m, c, covers in calculators if name in covers]
        for model, calc in todo:
            for r, start in enumerate(starts):
                res = run_nve(
                    start,
                    calc,
                    system,
                    steps=steps,
                    interval=interval,
                    model=model,
                    run=r,
                    min_distance_factor=min_distance_factor,
                    max_temperature_factor=max_temperature_factor,
                )
                out.append(res)
                log(
                    f"{name} {model} run {r}: {res.steps} steps, {res.cpu_ms_per_step:.1f} CPU ms/step, drift "
                    f"{drift_per_atom_per_ns(res):.3g} eV/atom/ns{'' if res.physical else ', stopped: ' + res.stopped}"
                )
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", nargs="+", default=[], metavar="NAME=PATH", help="trained checkpoints")
    src.add_argument("--train", nargs="+", default=[], metavar="MODEL", help="train these models first")
    src.add_argument("--scan-timesteps", action="store_true", help="only EMT's drift at several time steps")
    p.add_argument(
        "--scan-ps", nargs=2, type=float, default=[5.0, 2.0], metavar=("CU", "MOLECULE"), help="ps per scanned run"
    )
    p.add_argument("--train-steps", type=int, default=300, help="optimiser steps per model and task (--train)")
    p.add_argument("--train-tasks", nargs="+", default=["molecules", "bulk_metal"])
    p.add_argument("--systems", nargs="+", default=["cu", "molecule"], choices=["cu", "molecule"])
    p.add_argument("--molecule", default="CH4", help="the G2 molecule of the molecule system")
    p.add_argument("--steps", type=int, default=2000, help="NVE steps per run (see Cost in the docstring)")
    p.add_argument("--runs", type=int, default=2, help="runs (equilibrated starting states) per model and system")
    p.add_argument("--temperature", type=float, default=300.0, help="target temperature, K")
    p.add_argument("--dt-cu", type=float, default=5.0, help="time step of the Cu runs, fs")
    p.add_argument("--dt-molecule", type=float, default=0.5, help="time step of the molecule runs, fs")
    p.add_argument(
        "--equilibrate-ps", type=float, default=None, help="EMT Langevin before each run (default: Cu 1, molecule 0.5)"
    )
    p.add_argument("--interval", type=int, default=10, help="steps between samples and checks")
    p.add_argument("--min-distance-factor", type=float, default=0.5)
    p.add_argument("--max-temperature-factor", type=float, default=5.0)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: the committed runs' setting)")
    p.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md, energy.png")
    args = p.parse_args(argv)
    for name in ("steps", "runs", "interval", "train_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> int:
    import torch

    from irrepnet.calculator import IrrepnetCalculator
    from irrepnet.provenance import provenance

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    systems = {
        k: make_system(
            k,
            temperature=args.temperature,
            timestep_fs=args.dt_cu if k == "cu" else args.dt_molecule,
            molecule=args.molecule,
            equilibrate_fs=None if args.equilibrate_ps is None else 1000 * args.equilibrate_ps,
        )
        for k in args.systems
    }
    meta = {
        **provenance(args.device),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]) if argv is None else shlex.join(argv),
        **{k: v for k, v in vars(args).items() if k not in ("out",)},
    }
    scan = []
    if args.scan_timesteps:
        grids = {"cu": (1.0, 2.0, 5.0, 10.0), "molecule": (0.1, 0.25, 0.5, 1.0)}
        for k, system in systems.items():
            scan += timestep_scan(system, grids[k], duration_ps=args.scan_ps[k == "molecule"], runs=args.runs)
        runs = []
    else:
        pairs = parse_checkpoints(args.checkpoint)
        if args.train:
            pairs = train_checkpoints(args.train, args.train_tasks, args.out, args.train_steps)
        calculators = []
        for name, path in pairs:
            calc = IrrepnetCalculator.from_checkpoint(path, device=args.device, dtype=args.dtype)
            covers = covered_systems(calc.species, systems)
            if not covers:
                print(f"{name} ({path}): trained on {calc.species}, none of the systems {list(systems)}; skipped")
            calculators.append((name, calc, covers))
        runs = benchmark(
            calculators,
            systems,
            steps=args.steps,
            runs=args.runs,
            interval=args.interval,
            min_distance_factor=args.min_distance_factor,
            max_temperature_factor=args.max_temperature_factor,
        )
    meta["wall_s"] = time.perf_counter() - t0
    rows = summarise(runs, systems) if runs else []
    every = max(1, args.steps // args.interval // 500)  # at most ~500 samples per run in the JSON
    payload = {
        "meta": {**meta, "out": str(args.out)},
        "systems": {
            k: {f: (v if not callable(v) else None) for f, v in s.__dict__.items() if f != "build"}
            for k, s in systems.items()
        },
        "rows": rows,
        "runs": [run_to_json(r, every) for r in runs],
        "timestep_scan": scan,
    }
    (args.out / "results.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    (args.out / "results.md").write_text(results_markdown(meta, systems, rows, scan))
    if runs:
        plot_energy(runs, systems, args.out / "energy.png")
    print(f"wrote {args.out}/results.json, results.md{', energy.png' if runs else ''} in {meta['wall_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
