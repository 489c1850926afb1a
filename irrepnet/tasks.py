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
=============  ==============================================  ===================

On nbody the paper's target, positions at frame 40, is ``pos + displacement``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import keys as K
from .interface import TaskSpec

TASKS = ("twelve_body", "nbody")


@dataclass
class Task:
    spec: TaskSpec
    train: object
    test: object
    valid: Optional[object] = None


def task_spec(name: str, *, history: int = 0, num_nodes: Optional[int] = None, delta_t: float = 1.0,
              bonds: bool = False) -> TaskSpec:
    """The :class:`TaskSpec` of task ``name`` (no data is loaded).

    ``bonds=True`` (twelve_body only) declares the nodes a chain bonded in ``node_index``
    order: models that read bonds (:mod:`irrepnet.nn.topology`) then get each edge's chain
    separation as an edge feature; ``extras["bonds"]`` is ``"chain"``.
    """
    if bonds and name != "twelve_body":
        raise ValueError(f"bonds: only the twelve_body task is a bonded chain; task {name!r} has no bonds")
    if name == "twelve_body":
        if history < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        inputs = {K.POS: "1o", K.NODE_INDEX: None}
        if history >= 1:
            inputs.update({K.VEL: "1o", K.VEL_HISTORY: f"{history}x1o"})
        extras = {"history": history, **({"bonds": "chain"} if bonds else {})}
        return TaskSpec(name, inputs, K.DISPLACEMENT, num_nodes=num_nodes if num_nodes is not None else 12,
                        extras=extras)
    if name == "nbody":
        return TaskSpec(name, {K.POS: "1o", K.VEL: "1o", K.CHARGE: "0e", K.NODE_INDEX: None}, K.DISPLACEMENT,
                        num_nodes=num_nodes if num_nodes is not None else 5, extras={"delta_t": delta_t})
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")


def load_task(name: str, *, data: Optional[str] = None, history: int = 0, split: str = "chronological",
              seed: int = 0, n_train: int = 3000, expect_dmol: bool = False, dtype=None, bonds: bool = False) -> Task:
    """Datasets and spec of task ``name``.

    Parameters
    ----------
    data : str, optional
        twelve_body only: a trajectory file in the dmol format (``paths.npz``); the
        built-in polymer simulator is used when omitted.
    history : int
        twelve_body only: frames of velocity history given as input.
    bonds : bool
        twelve_body only: tell the models that the beads are bonded in chain order
        (see :func:`task_spec`).
    n_train : int
        nbody only: training samples (the EGNN protocol uses 3000).
    """
    from . import data as D  # imported here: loading a task is the only thing that needs numpy datasets

    kwargs = {} if dtype is None else {"dtype": dtype}
    if bonds and name != "twelve_body":
        raise ValueError(f"bonds: only the twelve_body task is a bonded chain; drop bonds for task {name!r}")
    if name == "twelve_body":
        train, test = D.twelve_body(data, history=history, split=split, seed=seed, expect_dmol=expect_dmol, **kwargs)
        n = train[0][K.POS].shape[0]
        return Task(task_spec(name, history=history, num_nodes=n, bonds=bonds), train, test)
    if name == "nbody":
        if data is not None:
            raise ValueError("the nbody task is simulated; it takes no --data file")
        if history:
            raise ValueError("the nbody task has physical velocities, not a history; drop --history")
        train = D.nbody("train", n_train=n_train, **kwargs)
        valid = D.nbody("valid", n_train=n_train, **kwargs)
        test = D.nbody("test", n_train=n_train, **kwargs)
        return Task(task_spec(name, delta_t=train.delta_t), train, test, valid)
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
