"""Small hand-written modules with known symmetry, for testing the audit and interface.

Each ``Broken*`` module breaks exactly one symmetry, so a test can show the audit
fails that check and passes the others.
"""

import torch

from irrepnet import keys as K
from irrepnet.interface import IrrepsModel, Symmetry


def pairwise(pos, batch):
    """All ordered pairs (i, j), i != j, within each graph: dense mask, fine for tests."""
    same = (batch[:, None] == batch[None, :]) & ~torch.eye(len(batch), dtype=torch.bool)
    i, j = same.nonzero(as_tuple=True)
    return i, j


class PairForce(IrrepsModel):
    """E(3)-equivariant: dx_i = sum_j (x_i - x_j) w(|x_i - x_j|) + a v_i."""

    symmetry = Symmetry.E3

    def __init__(self):
        super().__init__({K.POS: "1o", K.VEL: "1o", K.BATCH: None}, {K.DISPLACEMENT: "1o", K.ENERGY: "0e"})
        self.w = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))
        self.a = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, data):
        pos, batch = data[K.POS], data[K.BATCH]
        i, j = pairwise(pos, batch)
        rel = pos[i] - pos[j]
        msg = rel * self.w(rel.norm(dim=1, keepdim=True))
        disp = torch.zeros_like(pos).index_add_(0, i, msg) + self.a * data[K.VEL]
        g = int(data[K.NUM_NODES].numel())
        energy = torch.zeros(g, 1, dtype=pos.dtype).index_add_(0, batch, (disp * disp).sum(1, keepdim=True))
        return {K.DISPLACEMENT: disp, K.ENERGY: energy}


class BrokenRotation(PairForce):
    """Multiplies by the raw x coordinate of the velocity: not rotation invariant."""

    def forward(self, data):
        out = super().forward(data)
        return {**out, K.DISPLACEMENT: out[K.DISPLACEMENT] * (1 + data[K.VEL][:, :1])}


class BrokenReflection(PairForce):
    """Adds a cross product (a pseudovector, 1e) but declares the output 1o."""

    def forward(self, data):
        out = super().forward(data)
        return {**out, K.DISPLACEMENT: out[K.DISPLACEMENT] + torch.cross(data[K.VEL], out[K.DISPLACEMENT], dim=1)}


class BrokenTranslation(PairForce):
    """Uses absolute positions in a translation-invariant output."""

    def forward(self, data):
        out = super().forward(data)
        return {**out, K.DISPLACEMENT: out[K.DISPLACEMENT] + 0.1 * data[K.POS]}


class BrokenPermutation(PairForce):
    """Mixes nodes by their index (roll), so relabelling nodes changes the output."""

    def forward(self, data):
        out = super().forward(data)
        return {**out, K.DISPLACEMENT: out[K.DISPLACEMENT] + data[K.VEL].roll(1, 0)}


def random_batch(sizes=(4, 5, 3), dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    return {
        K.POS: torch.randn(n, 3, generator=gen, dtype=dtype),
        K.VEL: torch.randn(n, 3, generator=gen, dtype=dtype),
        K.BATCH: torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes)),
        K.NUM_NODES: torch.tensor(sizes),
    }


def toy_molecules(sizes=(3, 5, 8), n_species: int = 4, seed: int = 0, dtype=torch.float64):
    """A batch of molecule-like graphs of different sizes, without ASE (for model tests).

    Atoms sit on a cubic grid of spacing 1.2 Å, jittered by 0.1 Å (no two closer than
    ~0.85 Å, so no edge is degenerate), with random one-hot atom types and random targets.
    """
    from irrepnet.batch import collate

    gen = torch.Generator().manual_seed(seed)
    samples = []
    for n in sizes:
        cells = torch.randperm(27, generator=gen)[:n]
        grid = torch.stack([cells // 9, (cells // 3) % 3, cells % 3], dim=1).to(dtype)
        pos = 1.2 * grid + 0.1 * torch.randn(n, 3, generator=gen, dtype=dtype)
        kinds = torch.randint(n_species, (n,), generator=gen)
        samples.append(
            {
                K.POS: pos,
                K.SPECIES_ONEHOT: torch.nn.functional.one_hot(kinds, n_species).to(dtype),
                K.TARGET_FORCES: torch.randn(n, 3, generator=gen, dtype=dtype),
                K.TARGET_ENERGY: torch.randn(1, 1, generator=gen, dtype=dtype),
            }
        )
    return collate(samples)


def twelve_body_batch(dtype=torch.float64, seed=0):
    """Three small chains (6, 6, 4 nodes) with the twelve_body inputs of history 2: velocities, node index."""
    torch.manual_seed(seed)
    data = random_batch(sizes=(6, 6, 4), dtype=dtype)
    n = data[K.POS].shape[0]
    data[K.VEL_HISTORY] = 0.1 * torch.randn(n, 6, dtype=dtype)
    data[K.VEL] = data[K.VEL_HISTORY][:, :3].clone()
    data[K.NODE_INDEX] = torch.cat([torch.arange(k) for k in data[K.NUM_NODES].tolist()])
    return data
