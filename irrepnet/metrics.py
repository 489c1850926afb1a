r"""Accuracy, rollout and speed metrics of a trained model, in physical units.

Accuracy
--------
``mse``
    :math:`\frac{1}{S N d}\sum (\hat y - y)^2`, the test MSE per coordinate of the
    target (the displacement), the quantity of the baselines table.
``r2``
    :math:`1 - \sum(\hat y - y)^2 / \sum(y - \bar y)^2` on the **displacement**, with
    :math:`\bar y` the mean of each Cartesian axis; axes on which the truth is constant
    (z of 2-D data padded with zeros) are left out. On positions R² would be close to
    1 for any model, because :math:`x(t)` dominates :math:`x(t+1)`.
``correlations``
    the reference write-up's four Pearson correlations, here between predicted and true
    displacement: of the centre of mass, of the first particle, of particle 7's x and
    of the last particle's y (``com``, ``particle0``, ``particle6_x``, ``last_y``).

Energies and forces
-------------------
:func:`energy_force_errors` (energy tasks): mean absolute and root mean square errors of
the energy per molecule and per atom (``energy_mae``, ``energy_per_atom_mae``, in the
data's energy unit, eV for molecules) and of the force components (``forces_mae``, eV/Å).
:func:`predict_energy_forces` returns the predictions themselves and
:func:`per_molecule_errors` splits those figures into one error per molecule, whose
mean is the figure (the benchmark's intervals resample them).

Rollout
-------
:func:`rollout` feeds predictions back: from a true state at frame :math:`t_0` (and
its ``h`` past steps), :math:`\hat x(t+1) = \hat x(t) + f(\hat x(t), \dots)` for K
steps; the error at horizon k is the MSE per coordinate of :math:`\hat x(t_0+k)`
against the trajectory.

Shapes
------
``pred``, ``true``: ``(S, N, 3)`` float64 numpy arrays; rollout positions
``(B, K+1, N, 3)``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch

from . import keys as K
from .data.windows import window_batch
from .train.device import synchronize
from .train.loop import move, target_field


def _device_dtype(model: torch.nn.Module, device, dtype):
    """``device``/``dtype`` if given, else the model's (CPU float64 for a parameter-free model)."""
    param = next(model.parameters(), None)
    device = device or (param.device if param is not None else torch.device("cpu"))
    dtype = dtype or (param.dtype if param is not None else torch.float64)
    return device, dtype


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset,
    *,
    output: str = K.DISPLACEMENT,
    batch_size: int = 256,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
):
    """``(pred, true)`` of ``output`` over ``dataset``, each ``(S, N, d)`` float64 numpy."""
    device, dtype = _device_dtype(model, device, dtype)
    model.eval()
    preds, trues = [], []
    truth = target_field(output)
    for start in range(0, len(dataset), batch_size):
        idx = list(range(start, min(len(dataset), start + batch_size)))
        cpu_batch = dataset.batch(idx)
        preds.append(
            model(move(cpu_batch, device, dtype))[output].double().cpu().reshape(len(idx), dataset.num_nodes, -1)
        )
        trues.append(cpu_batch[truth].double().reshape(len(idx), dataset.num_nodes, -1))
    return torch.cat(preds).numpy(), torch.cat(trues).numpy()


@torch.no_grad()
def property_errors(
    model: torch.nn.Module,
    dataset,
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """``{"property_mae", "property_rmse"}`` of a graph property over ``dataset``, in the target's unit.

    ``model`` returns ``property (G, 1)`` in physical units; ``dataset`` has ``target_property``.
    """
    device, dtype = _device_dtype(model, device, dtype)
    model.eval()
    abs_sum, sq_sum, count = 0.0, 0.0, 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            cpu_batch = dataset.batch(list(range(start, min(len(dataset), start + batch_size))))
            out = model(move(cpu_batch, device, dtype))
            err = out[K.PROPERTY].double().cpu() - cpu_batch[K.TARGET_PROPERTY].double()
            abs_sum += float(err.abs().sum())
            sq_sum += float(err.pow(2).sum())
            count += err.numel()
    return {"property_mae": abs_sum / max(count, 1), "property_rmse": float(np.sqrt(sq_sum / max(count, 1)))}


def energy_force_errors(
    model: torch.nn.Module,
    dataset,
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """MAE and RMSE of energy (per molecule and per atom) and forces over ``dataset``, in physical units.

    ``model`` returns ``energy (G, 1)`` and ``forces (n, 3)`` (forces are computed under
    gradients inside the model, so this runs without them); ``dataset`` has
    ``target_energy`` and ``target_forces``.
    """
    device, dtype = _device_dtype(model, device, dtype)
    model.eval()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for start in range(0, len(dataset), batch_size):
        cpu_batch = dataset.batch(list(range(start, min(len(dataset), start + batch_size))))
        out = model(move(cpu_batch, device, dtype))
        errors = {}
        # detached: the outputs still hang on the parameters' graph (no no_grad: the forces need autograd)
        e = out[K.ENERGY].detach().double().cpu() - cpu_batch[K.TARGET_ENERGY].double()
        errors["energy"] = e
        errors["energy_per_atom"] = e / cpu_batch[K.NUM_NODES].double()[:, None]
        if K.FORCES in out and K.TARGET_FORCES in cpu_batch:
            errors["forces"] = out[K.FORCES].detach().double().cpu() - cpu_batch[K.TARGET_FORCES].double()
        for name, err in errors.items():
            sums[f"{name}_mae"] = sums.get(f"{name}_mae", 0.0) + float(err.abs().sum())
            sums[f"{name}_rmse"] = sums.get(f"{name}_rmse", 0.0) + float(err.pow(2).sum())
            counts[name] = counts.get(name, 0) + err.numel()
    out = {}
    for key, total in sums.items():
        name, kind = key.rsplit("_", 1)
        mean = total / counts[name]
        out[key] = mean if kind == "mae" else float(np.sqrt(mean))
    return out


@torch.no_grad()
def predict_energy_forces(
    model: torch.nn.Module,
    dataset,
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, np.ndarray]:
    """Predicted and true energies and forces over ``dataset``, float64 numpy, in dataset order.

    Shapes
    ------
    returns ``energy_pred``, ``energy_true``, ``num_nodes`` ``(S,)`` and ``forces_pred``,
    ``forces_true`` ``(n, 3)`` (``n`` atoms of all ``S`` molecules, concatenated).
    """
    device, dtype = _device_dtype(model, device, dtype)
    model.eval()
    parts: dict[str, list] = {k: [] for k in ("energy_pred", "energy_true", "num_nodes", "forces_pred", "forces_true")}
    for start in range(0, len(dataset), batch_size):
        cpu_batch = dataset.batch(list(range(start, min(len(dataset), start + batch_size))))
        out = model(move(cpu_batch, device, dtype))
        parts["energy_pred"].append(out[K.ENERGY].double().cpu().reshape(-1))
        parts["energy_true"].append(cpu_batch[K.TARGET_ENERGY].double().reshape(-1))
        parts["num_nodes"].append(cpu_batch[K.NUM_NODES])
        parts["forces_pred"].append(out[K.FORCES].double().cpu())
        parts["forces_true"].append(cpu_batch[K.TARGET_FORCES].double())
    return {k: torch.cat(v).numpy() for k, v in parts.items()}


def per_molecule_errors(energy_pred, energy_true, num_nodes, forces_pred, forces_true) -> dict[str, np.ndarray]:
    """One error per molecule for each figure of :func:`energy_force_errors`; the mean over molecules is the figure.

    Energies: ``|dE|`` and ``dE^2`` per molecule, ``|dE| / N_s`` per atom. Forces: the
    MAE is over all force components of the set, so molecule ``s`` contributes the sum
    of its ``|dF|`` divided by the mean number of components per molecule, ``3 n / S``
    (likewise the squared errors): their mean is the MAE (MSE) over components, and a
    resample of molecules weighs each by its size, as the figure does.

    Shapes
    ------
    ``energy_pred``, ``energy_true``, ``num_nodes`` ``(S,)``; ``forces_pred``, ``forces_true``
    ``(n, 3)`` with ``n = sum(num_nodes)``, molecules in order. Returns ``energy_abs``,
    ``energy_sq``, ``energy_per_atom_abs``, ``forces_abs``, ``forces_sq``, each ``(S,)`` float64.
    """
    counts = np.asarray(num_nodes, dtype=np.int64).reshape(-1)
    de = np.asarray(energy_pred, dtype=np.float64).reshape(-1) - np.asarray(energy_true, dtype=np.float64).reshape(-1)
    df = np.asarray(forces_pred, dtype=np.float64) - np.asarray(forces_true, dtype=np.float64)
    if de.shape != counts.shape or df.shape != (int(counts.sum()), 3):
        raise ValueError(
            f"{de.size} energies and {counts.size} atom counts (summing to {int(counts.sum())}) do not "
            f"match forces of shape {df.shape}; pass the arrays of one dataset, molecules in order"
        )
    owner = np.repeat(np.arange(counts.size), counts)
    per_component = 3.0 * counts.sum() / counts.size
    return {
        "energy_abs": np.abs(de),
        "energy_sq": de**2,
        "energy_per_atom_abs": np.abs(de) / counts,
        "forces_abs": np.bincount(owner, np.abs(df).sum(1), counts.size) / per_component,
        "forces_sq": np.bincount(owner, (df**2).sum(1), counts.size) / per_component,
    }


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean squared error of ``pred`` against ``true``, in float64."""
    return float(np.mean((np.asarray(pred, dtype=np.float64) - true) ** 2))


def _varying_axes(true: np.ndarray) -> np.ndarray:
    flat = true.reshape(-1, true.shape[-1])
    return flat.std(axis=0) > 0


def r2(pred: np.ndarray, true: np.ndarray) -> float:
    """Coefficient of determination over the non-constant Cartesian axes (see the module docstring)."""
    axes = _varying_axes(true)
    if not axes.any():
        return float("nan")
    p = pred.reshape(-1, pred.shape[-1])[:, axes]
    t = true.reshape(-1, true.shape[-1])[:, axes]
    ss_res = np.sum((p - t) ** 2)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2)
    return float(1.0 - ss_res / ss_tot)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the flattened ``a`` and ``b``; NaN when either is constant."""
    a, b = np.ravel(a), np.ravel(b)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def correlations(pred: np.ndarray, true: np.ndarray) -> dict[str, float] | None:
    """The four correlations of the reference write-up (needs ``N >= 7`` particles), else ``None``."""
    if pred.shape[1] < 7:
        return None
    axes = _varying_axes(true)
    return {
        "com": pearson(pred.mean(axis=1)[:, axes], true.mean(axis=1)[:, axes]),
        "particle0": pearson(pred[:, 0][:, axes], true[:, 0][:, axes]),
        "particle6_x": pearson(pred[:, 6, 0], true[:, 6, 0]),
        "last_y": pearson(pred[:, -1, 1], true[:, -1, 1]),
    }


def accuracy(pred: np.ndarray, true: np.ndarray, zero_mse: float | None = None) -> dict[str, object]:
    """``test_mse``, ``mse_vs_zero``, ``r2`` and ``correlations`` of a prediction."""
    m = mse(pred, true)
    zero = zero_mse if zero_mse is not None else mse(np.zeros_like(true), true)
    return {
        "test_mse": m,
        "mse_vs_zero": m / zero if zero > 0 else None,
        "r2": r2(pred, true),
        "correlations": correlations(pred, true),
    }


# --- rollout ---------------------------------------------------------------------
def rollout_starts(test_frames: np.ndarray, horizon: int, history: int, count: int = 8) -> list[int]:
    """Up to ``count`` evenly spaced start frames ``t0`` inside the test frames with ``t0 + horizon`` still in them."""
    frames = np.asarray(test_frames)
    lo, hi = int(frames.min()), int(frames.max()) + 1  # the last target frame is max(frames) + 1
    lo = max(lo, history)
    last = hi - horizon
    if last < lo:
        raise ValueError(f"the test split (frames {lo}..{hi}) is too short for a rollout of {horizon} steps")
    return sorted(set(np.linspace(lo, last, num=count).round().astype(int).tolist()))


@torch.no_grad()
def rollout(
    model: torch.nn.Module,
    trajectory: np.ndarray,
    starts: Sequence[int],
    horizon: int,
    history: int,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Predicted positions ``(B, horizon+1, N, 3)`` of ``horizon`` fed-back steps from each start frame.

    Index 0 is the true frame ``t0``; index k the prediction for ``t0 + k``.
    """
    device, dtype = _device_dtype(model, device, dtype)
    model.eval()
    x = torch.as_tensor(np.asarray(trajectory, dtype=np.float64))
    starts = list(starts)
    if min(starts) < history or max(starts) + horizon >= x.shape[0]:
        raise ValueError(
            f"rollout starts {starts} with horizon {horizon} and history {history} "
            f"leave the trajectory of {x.shape[0]} frames"
        )
    window = torch.stack([x[t - history : t + 1] for t in starts])  # (B, h+1, N, 3), float64 state
    out = [window[:, -1].clone()]
    for _ in range(horizon):
        data = move(window_batch(window, history), device, dtype)
        dx = model(data)[K.DISPLACEMENT].double().cpu().reshape(window.shape[0], -1, 3)
        nxt = window[:, -1] + dx
        window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
        out.append(nxt)
    return torch.stack(out, dim=1).numpy()


def rollout_errors_per_start(
    pred_positions: np.ndarray, trajectory: np.ndarray, starts: Sequence[int], horizons: Sequence[int]
) -> np.ndarray:
    """``(B, H)``: MSE per coordinate of each start frame's rollout at each horizon (inf/nan if it diverged)."""
    truth = np.stack([trajectory[t : t + pred_positions.shape[1]] for t in starts])
    with np.errstate(over="ignore", invalid="ignore"):
        err = (pred_positions[:, list(horizons)] - truth[:, list(horizons)]) ** 2
        return err.reshape(err.shape[0], err.shape[1], -1).mean(axis=-1)


def rollout_errors(
    pred_positions: np.ndarray, trajectory: np.ndarray, starts: Sequence[int], horizons: Sequence[int]
) -> list[float]:
    """MSE per coordinate at each horizon, averaged over the start frames."""
    per_start = rollout_errors_per_start(pred_positions, trajectory, starts, horizons)
    return [float(np.mean(per_start[:, j])) for j in range(per_start.shape[1])]


# --- speed -----------------------------------------------------------------------
@torch.no_grad()
def inference_speed(
    model: torch.nn.Module,
    dataset,
    *,
    batch_size: int = 256,
    repeats: int = 10,
    warmup: int = 2,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """``infer_graphs_per_s`` on a batch of ``batch_size`` graphs and ``infer_latency_ms`` of one graph (medians)."""
    device, dtype = _device_dtype(model, device, dtype)
    model.eval()
    n = min(batch_size, len(dataset))
    big = move(dataset.batch(range(n)), device, dtype)
    one = move(dataset.batch([0]), device, dtype)

    def median_time(batch):
        for _ in range(warmup):
            model(batch)
        times = []
        for _ in range(repeats):
            synchronize(device)
            t0 = time.perf_counter()
            model(batch)
            synchronize(device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return {"infer_graphs_per_s": n / median_time(big), "infer_latency_ms": 1e3 * median_time(one)}


def time_to_target(history: Sequence[dict[str, float]], target_mse: float | None) -> float | None:
    """Training seconds until the validation MSE first reached ``target_mse`` (``None`` if never)."""
    if target_mse is None:
        return None
    for record in history:
        if record.get("valid_mse") is not None and record["valid_mse"] <= target_mse:
            return float(record["time_s"])
    return None
