"""The names of the tasks and their groups, importable without torch.

The CLI offers them as ``--task`` choices before anything heavy is imported (``irrepnet
--help`` stays instant); :mod:`irrepnet.tasks` re-exports them next to the tasks themselves.
"""

TASKS = ("twelve_body", "nbody", "molecules", "qm9", "bulk_metal", "energy")
#: ``data`` value of the nbody task that replays the published generator's draws
NBODY_EGNN_GENERATOR = "egnn-generator"
#: tasks whose target is a graph energy with forces as its negative gradient
ENERGY_TASKS = ("molecules", "bulk_metal", "energy")
#: energy tasks on periodic cells (cell and pbc per graph; stress as a label)
PERIODIC_TASKS = ("bulk_metal",)
#: tasks whose target is a graph-level invariant property (no forces)
PROPERTY_TASKS = ("qm9",)
