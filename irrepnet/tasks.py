"""Tasks as the rest of the toolkit sees them: datasets plus a :class:`TaskSpec`.

A task ties the data modules (:mod:`irrepnet.data`) to the interface: it says which
input fields a model may read, with their irreps, and which output it is scored on.
Builders in the registry read the spec; the CLI, benchmarks and the conformance
tests go through :func:`load_task`.

=============  ==============================================  ===================
task           inputs (irreps)                                 target
=============  ==============================================  ===================
twelve_body    pos 1o, node_index; with history h >= 1 also    displacement 1o
               vel 1o (x(t) - x(t-1)) and vel_history hx1o;
               with bonds, node_index is the chain order
nbody          pos 1o, vel 1o, charge 0e                       displacement 1o
molecules      pos 1o, species_onehot kx0e (k elements)        energy 0e (graph),
                                                               forces 1o (node)
qm9            pos 1o, species_onehot 5x0e (H, C, N, O, F)     property 0e (graph)
bulk_metal     pos 1o, species_onehot 1x0e (one fcc metal);    energy 0e (graph),
               cell and pbc per graph (periodic)               forces 1o, stress
energy         pos 1o, species_onehot kx0e (the file's         energy 0e (graph),
               elements); cell and pbc per graph               forces 1o (node)
=============  ==============================================  ===================

On nbody the paper's target, positions at frame 40, is ``pos + displacement``. On
molecules (:mod:`irrepnet.data.molecules`) graphs differ in size (``num_nodes`` is
``None``); the model predicts the energy and returns the forces as its negative
gradient (:mod:`irrepnet.models.energy`), and ``extras["forces"]`` says that the
forces are scored too (``target_forces`` in the data). On qm9 (:mod:`irrepnet.data.qm9`,
read from the user's copy of PyG's raw files, ``--data DIR``) the target is one of the
twelve QM9 properties (``extras["target"]``, with its ``"unit"``), predicted as the sum
(or mean, ``extras["pooling"]``) of per-atom invariants, without forces. On bulk_metal
(:mod:`irrepnet.data.bulk_metal`: Langevin frames of a periodic fcc supercell labelled
with ASE's EMT) the graphs carry ``cell`` and ``pbc``; ``extras["stress"]`` says that
``target_stress`` is in the data and ``extras["periodic"]`` that the graphs are periodic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from . import keys as K
from .interface import TaskSpec
from .task_names import ENERGY_TASKS, NBODY_EGNN_GENERATOR, PROPERTY_TASKS, TASKS  # noqa: F401  (re-exported)


@dataclass
class Task:
    """The datasets of a task and its spec.

    ``identity`` says which data they came from (:mod:`irrepnet.data.identity`; set by
    :func:`load_task`, ``None`` for tasks built by hand): training stores it in every
    checkpoint, so that ``--resume`` and ``audit --checkpoint`` can check or reload it.
    """

    spec: TaskSpec
    train: object
    test: object
    valid: object | None = None
    identity: dict | None = None


def task_spec(
    name: str,
    *,
    history: int = 0,
    num_nodes: int | None = None,
    delta_t: float = 1.0,
    bonds: bool = False,
    species: Sequence[str] | None = None,
    target: str | None = None,
    pooling: str = "sum",
    periodic: bool = False,
) -> TaskSpec:
    """The :class:`TaskSpec` of task ``name`` (no data is loaded).

    ``target`` (qm9 only) is one of the twelve QM9 targets (default ``homo``; see
    :data:`irrepnet.data.qm9.TARGETS`), ``pooling`` (qm9 only) ``"sum"`` or ``"mean"`` of
    the per-atom outputs.

    ``species`` (molecules only) are the elements of the one-hot atom types, in order
    (default :data:`irrepnet.data.molecules.DEFAULT_SPECIES`, H C N O); on bulk_metal, the
    one metal (default Cu, :data:`irrepnet.data.bulk_metal.ELEMENTS`).

    On the ``energy`` task (:mod:`irrepnet.data.energy_files`) ``species`` are the elements
    of its files, sorted by atomic number, and ``periodic`` says whether any frame is
    periodic (``extras["periodic"]``).

    ``bonds=True`` (twelve_body only) declares the nodes a chain bonded in ``node_index``
    order: models that read bonds (:mod:`irrepnet.nn.topology`) then get each edge's chain
    separation as an edge feature; ``extras["bonds"]`` is ``"chain"``.
    """
    if bonds and name != "twelve_body":
        raise ValueError(f"bonds: only the twelve_body task is a bonded chain; task {name!r} has no bonds")
    if species is not None and name not in ("molecules", "bulk_metal", "energy"):
        raise ValueError(f"species: only the molecules task has atom types; drop species for task {name!r}")
    if (target is not None or pooling != "sum") and name != "qm9":
        raise ValueError(f"target/pooling: only the qm9 task chooses a target property; drop them for {name!r}")
    if name == "qm9":
        return _qm9_spec(history, target, pooling)
    if name == "energy":
        return _energy_spec(history, species, periodic)
    if periodic:
        raise ValueError(f"periodic: only the energy task reads periodic frames from a file; drop it for {name!r}")
    if name == "bulk_metal":
        return _bulk_metal_spec(history, species)
    if name == "molecules":
        if history:
            raise ValueError("the molecules task has static geometries, not trajectories; drop --history")
        species = tuple(species) if species is not None else _default_species()
        if not species:
            raise ValueError("the molecules task needs at least one species (element)")
        return TaskSpec(
            name,
            {K.POS: "1o", K.SPECIES_ONEHOT: f"{len(species)}x0e"},
            K.ENERGY,
            num_nodes=None,
            extras={"forces": True, "species": list(species)},
        )
    if name == "twelve_body":
        if history < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        inputs = {K.POS: "1o", K.NODE_INDEX: None}
        if history >= 1:
            inputs.update({K.VEL: "1o", K.VEL_HISTORY: f"{history}x1o"})
        extras = {"history": history, **({"bonds": "chain"} if bonds else {})}
        return TaskSpec(
            name, inputs, K.DISPLACEMENT, num_nodes=num_nodes if num_nodes is not None else 12, extras=extras
        )
    if name == "nbody":
        return TaskSpec(
            name,
            {K.POS: "1o", K.VEL: "1o", K.CHARGE: "0e", K.NODE_INDEX: None},
            K.DISPLACEMENT,
            num_nodes=num_nodes if num_nodes is not None else 5,
            extras={"delta_t": delta_t},
        )
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")


def _qm9_spec(history: int, target: str | None, pooling: str) -> TaskSpec:
    from .data.qm9 import DEFAULT_TARGET, SPECIES, get_target
    from .models.energy import POOLINGS

    if history:
        raise ValueError("the qm9 task has static geometries, not trajectories; drop --history")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    t = get_target(target if target is not None else DEFAULT_TARGET)
    return TaskSpec(
        "qm9",
        {K.POS: "1o", K.SPECIES_ONEHOT: f"{len(SPECIES)}x0e"},
        K.PROPERTY,
        num_nodes=None,
        extras={"target": t.name, "unit": t.unit, "pooling": pooling, "species": list(SPECIES)},
    )


def _bulk_metal_spec(history: int, species: Sequence[str] | None, temperatures: Sequence[float] | None = None):
    from .data.bulk_metal import DEFAULT_ELEMENT, DEFAULT_TEMPERATURES, ELEMENTS

    if history:
        raise ValueError("the bulk_metal task has independent frames, not trajectories; drop --history")
    species = tuple(species) if species is not None else (DEFAULT_ELEMENT,)
    if len(species) != 1 or species[0] not in ELEMENTS:
        raise ValueError(f"the bulk_metal task has one element, one of {ELEMENTS}; got species {species}")
    return TaskSpec(
        "bulk_metal",
        {K.POS: "1o", K.SPECIES_ONEHOT: "1x0e"},
        K.ENERGY,
        num_nodes=None,
        extras={
            "forces": True,
            "stress": True,
            "periodic": True,
            "species": list(species),
            "element": species[0],
            "temperatures": [float(t) for t in (temperatures or DEFAULT_TEMPERATURES)],
        },
    )


def _energy_spec(history: int, species: Sequence[str] | None, periodic: bool) -> TaskSpec:
    if history:
        raise ValueError("the energy task has independent frames, not trajectories; drop --history")
    species = tuple(species) if species is not None else _default_species()  # no file: a placeholder list
    if not species:
        raise ValueError("the energy task needs at least one species (element)")
    return TaskSpec(
        "energy",
        {K.POS: "1o", K.SPECIES_ONEHOT: f"{len(species)}x0e"},
        K.ENERGY,
        num_nodes=None,
        extras={"forces": True, "species": list(species), "periodic": bool(periodic)},
    )


def _default_species():
    from .data.molecules import DEFAULT_SPECIES  # data modules stay unimported until a task needs them

    return tuple(DEFAULT_SPECIES)


def load_task(
    name: str,
    *,
    data: str | None = None,
    history: int = 0,
    split: str = "chronological",
    seed: int = 0,
    n_train: int | None = None,
    expect_dmol: bool = False,
    dtype=None,
    bonds: bool = False,
    n_valid: int | None = None,
    n_test: int | None = None,
    target: str | None = None,
    pooling: str = "sum",
    time_step: float | None = None,
    energy_key: str | None = None,
    forces_key: str | None = None,
    stress_key: str | None = None,
    valid_fraction: float | None = None,
    test_fraction: float | None = None,
    valid_data: str | None = None,
    test_data: str | None = None,
) -> Task:
    """Datasets and spec of task ``name``.

    Parameters
    ----------
    data : str, optional
        twelve_body: a trajectory file in the dmol format (``paths.npz``); the
        shipped reference trajectory (:mod:`irrepnet.data.reference`) when omitted. nbody: ``"egnn-generator"``
        starts the trajectories from the published EGNN generator's initial states, with
        its frame numbering (:func:`irrepnet.data.nbody_task.nbody`); omitted: irrepnet's draws.
    history : int
        twelve_body only: frames of velocity history given as input.
    bonds : bool
        twelve_body only: tell the models that the beads are bonded in chain order
        (see :func:`task_spec`).
    n_train : int, optional
        nbody and molecules: training samples (default 3000; the EGNN protocol uses 3000 on nbody);
        bulk_metal: training frames (default 2000).
    n_valid, n_test : int, optional
        molecules and bulk_metal only: validation and test molecules or frames (default 500
        each on molecules, 250 on bulk_metal).
    data : str
        qm9: the folder of PyG's raw QM9 files (required; nothing is downloaded).
    target, pooling : str
        qm9 only: see :func:`task_spec`. On qm9 ``n_train``/``n_valid``/``n_test``, when
        given, keep the first molecules of the EGNN split (default: all of it).
    data : str
        energy: any file ``ase.io`` reads with an energy and forces per frame (required).
        twelve_body also takes any such file as a trajectory (:mod:`irrepnet.data.ase_io`).
    time_step : float, optional
        twelve_body with an ASE file: the time between frames in the file's unit (default:
        the file's ``time``/``dt`` info); kept as the datasets' ``time_step`` (rollouts
        written back carry it), not needed by the task.
    energy_key, forces_key, stress_key, valid_fraction, test_fraction, valid_data, test_data
        energy only: see :func:`irrepnet.data.energy_files.energy_splits`; ``seed`` seeds its split.
    """
    from . import data as D  # imported here: loading a task is the only thing that needs numpy datasets
    from .data import identity as I
    from .data.molecules import GENERATOR_VERSION as MOLECULES_VERSION
    from .data.nbody_task import GENERATOR_VERSION as NBODY_VERSION

    kwargs = {} if dtype is None else {"dtype": dtype}
    if bonds and name != "twelve_body":
        raise ValueError(f"bonds: only the twelve_body task is a bonded chain; drop bonds for task {name!r}")
    if (target is not None or pooling != "sum") and name != "qm9":
        raise ValueError(f"target/pooling: only the qm9 task chooses a target property; drop them for {name!r}")
    file_options = {
        "energy_key": energy_key,
        "forces_key": forces_key,
        "stress_key": stress_key,
        "valid_fraction": valid_fraction,
        "test_fraction": test_fraction,
        "valid_data": valid_data,
        "test_data": test_data,
    }
    file_options = {k: v for k, v in file_options.items() if v is not None}
    if file_options and name != "energy":
        raise ValueError(f"{', '.join(file_options)}: options of the energy task (frames from a file); drop them")
    if time_step is not None and name != "twelve_body":
        raise ValueError(f"time_step: the time between the frames of a twelve_body file; drop it for {name!r}")
    if name == "energy":
        if history or n_train is not None or n_valid is not None or n_test is not None:
            raise ValueError("the energy task reads its frames from --data; drop --history and the split sizes")
        return _load_energy(data, seed, file_options, kwargs)
    if name == "qm9":
        return _load_qm9(data, history, target, pooling, n_train, n_valid, n_test, kwargs)
    if name == "bulk_metal":
        return _load_bulk_metal(data, history, n_train, n_valid, n_test, kwargs)
    n_train = 3000 if n_train is None else n_train
    if (n_valid is not None or n_test is not None) and name != "molecules":
        raise ValueError(
            f"n_valid/n_test: only the molecules task generates its splits to size; drop them for {name!r}"
        )
    if name == "molecules":
        if data is not None:
            raise ValueError("the molecules task is generated offline with ASE's EMT; it takes no --data file")
        if history:
            raise ValueError("the molecules task has static geometries, not trajectories; drop --history")
        sizes = {"n_train": n_train}
        sizes.update({k: v for k, v in (("n_valid", n_valid), ("n_test", n_test)) if v is not None})
        train, valid, test = (D.molecules(s, **sizes, **kwargs) for s in ("train", "valid", "test"))
        identity = I.generated_identity(
            I.split_generator(
                "molecules (EMT)",
                {"train": train, "valid": valid, "test": test},
                version=MOLECULES_VERSION,
                displacement=train.displacement,
                species=list(train.species),
            ),
            load={"data": None, **sizes},
        )
        return Task(task_spec(name, species=train.species), train, test, valid, identity)
    if name == "twelve_body":
        train, test = D.twelve_body(data, history=history, split=split, seed=seed, expect_dmol=expect_dmol, **kwargs)
        n = train[0][K.POS].shape[0]
        identity = I.reference_identity(D.REFERENCE_FILE, D.REFERENCE_SHA256) if data is None else I.file_identity(data)
        identity["load"].update(split=split, seed=seed)  # the frames of each split
        if data is not None:  # ASE files may say their time step; rollouts written back carry it
            from .data.ase_io import trajectory_time_step

            train.time_step = test.time_step = trajectory_time_step(data, time_step)
            if time_step is not None:
                identity["load"]["time_step"] = time_step
        return Task(task_spec(name, history=history, num_nodes=n, bonds=bonds), train, test, identity=identity)
    if name == "nbody":
        if data not in (None, NBODY_EGNN_GENERATOR):
            raise ValueError(
                f"the nbody task is simulated; it takes no --data file (--data {NBODY_EGNN_GENERATOR} "
                "replays the published EGNN generator's random draws instead of irrepnet's)"
            )
        if history:
            raise ValueError("the nbody task has physical velocities, not a history; drop --history")
        draws = "irrepnet" if data is None else NBODY_EGNN_GENERATOR
        train, valid, test = (D.nbody(s, n_train=n_train, draws=draws, **kwargs) for s in ("train", "valid", "test"))
        identity = I.generated_identity(
            I.split_generator(
                f"nbody ({draws} draws)",
                {"train": train, "valid": valid, "test": test},
                version=NBODY_VERSION,
                config=dataclasses.asdict(train.config),
            ),
            load={"data": data, "n_train": n_train},
        )
        return Task(task_spec(name, delta_t=train.delta_t), train, test, valid, identity)
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")


def _load_bulk_metal(data, history, n_train, n_valid, n_test, kwargs) -> Task:
    from .data.bulk_metal import GENERATOR_VERSION, bulk_metal
    from .data.identity import generated_identity, split_generator

    if data is not None:
        raise ValueError("the bulk_metal task is generated offline (Langevin MD with ASE's EMT); it takes no --data")
    _bulk_metal_spec(history, None)  # bad options fail before any MD runs
    sizes = {k: v for k, v in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)) if v is not None}
    train, valid, test = (bulk_metal(s, **sizes, **kwargs) for s in ("train", "valid", "test"))
    identity = generated_identity(
        split_generator(
            "bulk_metal (EMT Langevin)",
            {"train": train, "valid": valid, "test": test},
            version=GENERATOR_VERSION,
            config=train.config,
        ),
        load={"data": None, **sizes},
    )
    spec = _bulk_metal_spec(history, train.species, train.config["temperatures"])
    return Task(spec, train, test, valid, identity)


def _load_energy(data, seed, options, kwargs) -> Task:
    from .data.energy_files import energy_identity, energy_splits

    if data is None:
        raise ValueError(
            "the energy task reads your frames: give --data FILE, any file ase.io reads with an energy and "
            "forces per frame (.extxyz, .traj...)"
        )
    splits, species = energy_splits(data, seed=seed, **options, **kwargs)
    periodic = any(bool(ds.arrays()[K.PBC].any()) for ds in splits.values())
    identity = energy_identity(data, {"seed": seed, **options})
    spec = task_spec("energy", species=species, periodic=periodic)
    return Task(spec, splits["train"], splits["test"], splits["valid"], identity)


def _load_qm9(data, history, target, pooling, n_train, n_valid, n_test, kwargs) -> Task:
    from .data.identity import folder_identity
    from .data.qm9 import HOW_TO_GET, load_qm9, raw_paths

    spec = task_spec("qm9", history=history, target=target, pooling=pooling)  # bad options fail before reading
    if data is None:
        raise ValueError(
            f"the qm9 task reads your copy of QM9: give --data DIR, the folder of gdb9.sdf, "
            f"gdb9.sdf.csv and uncharacterized.txt. {HOW_TO_GET}"
        )
    splits = load_qm9(data, target=spec.extras["target"], n_train=n_train, n_valid=n_valid, n_test=n_test, **kwargs)
    identity = folder_identity(
        data,
        raw_paths(data).values(),
        load={"data": str(data), "n_train": n_train, "n_valid": n_valid, "n_test": n_test},
    )
    return Task(spec, splits["train"], splits["test"], splits["valid"], identity)
