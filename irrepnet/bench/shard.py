"""Sharded suites: run parts of a benchmark on several machines, then merge them into one.

A suite's work is a list of *units*, one per (variant, model, seed), in suite order
(variants, then models, then seeds). ``irrepnet bench --suite S --shard I/N`` runs
the units ``k`` with ``k mod N = I - 1`` (round robin, so that each shard gets a share
of every variant and model), and every shard also scores the physical baselines,
which are cheap. A model's learning-rate tuning runs on the suite's first seed in
every shard that trains one of its seeds, so all shards make the same choice as an
unsharded run. ``irrepnet report OUT --merge DIR...`` checks that the shards belong
together (same suite, same commit, shards 1..N each once, the same baseline numbers),
copies their run folders into ``OUT``, rebuilds each model row from its seeds and
recomputes intervals and paired comparisons over the merged rows: on the CPU the
merged ``results.json`` has the rows of an unsharded run (timings aside).

As a scheduler array job (SLURM; ``$SLURM_ARRAY_TASK_ID`` runs 1..4)::

    #SBATCH --array=1-4
    irrepnet bench --suite dmol --data paths.npz --shard $SLURM_ARRAY_TASK_ID/4 --out runs/dmol-$SLURM_ARRAY_TASK_ID
    # afterwards, once:
    irrepnet report runs/dmol --merge runs/dmol-1 runs/dmol-2 runs/dmol-3 runs/dmol-4
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..runlock import LOCK_NAME
from .compare import finalize_group
from .records import aggregate_seeds, budget, finite, new_row, now, write_json
from .schema import validate

Unit = tuple[str, str, int]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``1 <= I <= N``; anything else is a ``ValueError`` saying the form."""
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard expects I/N such as 2/4 (the second of four parts), got {text!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard I/N needs 1 <= I <= N, got {text!r}")
    return i, n


def all_units(variants, names: Sequence[str], seeds: Sequence[int]) -> list[Unit]:
    """Every (variant id, model, seed) of a suite, in suite order."""
    return [(v.id, name, int(seed)) for v in variants for name in names for seed in seeds]


def shard_units(variants, names: Sequence[str], seeds: Sequence[int], shard: tuple[int, int]) -> list[Unit]:
    """The units of shard ``(i, n)``: every n-th unit, starting at the i-th."""
    i, n = shard
    return [u for k, u in enumerate(all_units(variants, names, seeds)) if k % n == i - 1]


class _Settings:
    """What :func:`~irrepnet.bench.compare.finalize_group` reads of a suite, from a results file."""

    def __init__(self, suite: dict[str, Any], groups: list[dict[str, Any]]):
        described = next((g["bootstrap"] for g in groups if g.get("bootstrap")), {}) or {}
        self.bootstrap_block = int(suite.get("bootstrap_block", described.get("block_length", 1)))
        self.bootstrap_resamples = int(suite.get("bootstrap_resamples", described.get("resamples", 2000)))


def _load_shard(folder: Path) -> dict[str, Any]:
    path = folder / "results.json" if folder.is_dir() else folder
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give the output folders of 'irrepnet bench --shard I/N'")
    results = validate(json.loads(path.read_text()))
    if "shard" not in results:
        raise ValueError(f"{path} is not a shard (it was run without --shard); merge only shards of one suite")
    if not results.get("finished"):
        raise ValueError(
            f"{path}: shard {results['shard']['index']}/{results['shard']['count']} has not finished; "
            "continue it with irrepnet bench ... --resume before merging"
        )
    return results


def _check_together(shards: list[tuple[Path, dict[str, Any]]]) -> None:
    (first_dir, first), problems = shards[0], []
    count = first["shard"]["count"]
    for folder, res in shards[1:]:
        if res["suite"] != first["suite"]:
            problems.append(f"{folder} ran another suite or other options than {first_dir}")
        for key in ("commit", "dirty"):
            if res["provenance"].get(key) != first["provenance"].get(key):
                problems.append(
                    f"{folder} ran {key} {res['provenance'].get(key)!r}, {first_dir} ran "
                    f"{first['provenance'].get(key)!r}"
                )
        if res["shard"]["count"] != count:
            problems.append(f"{folder} is a shard of {res['shard']['count']} parts, {first_dir} of {count}")
    indices = sorted(res["shard"]["index"] for _, res in shards)
    if not problems and indices != list(range(1, count + 1)):
        problems.append(f"need shards 1..{count} each once, got {indices}")
    if problems:
        raise ValueError("these shards do not belong together: " + "; ".join(problems))


def _baseline_figure(row: dict[str, Any]) -> Any:
    """The number that tells two shards' baselines apart: the test MSE, or on energy tasks the energy MAE."""
    metrics = row["metrics"]
    return metrics["energy_mae"] if "energy_mae" in metrics else metrics["test_mse"]


def merge_shards(out: Path, folders: Sequence[Path], *, report: bool = True) -> dict[str, Any]:
    """Merge finished shards into a new folder ``out``; returns the merged results (also ``out/results.json``)."""
    out = Path(out)
    if out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()):  # the lock of this merge aside
        raise FileExistsError(f"{out} is not empty; merge into a new folder")
    if not folders:
        raise ValueError("give the shard folders to merge after the output folder")
    shards = [(Path(f), _load_shard(Path(f))) for f in folders]
    _check_together(shards)
    shards.sort(key=lambda s: s[1]["shard"]["index"])
    first = shards[0][1]
    seeds = list(first["suite"]["seeds"])
    merged = copy.deepcopy({k: v for k, v in first.items() if k != "shard"})
    merged["merged_from"] = [
        {
            "folder": str(f),
            "index": r["shard"]["index"],
            "provenance": r["provenance"],
            "started": r["started"],
            "finished": r["finished"],
        }
        for f, r in shards
    ]
    out.mkdir(parents=True, exist_ok=True)
    for folder, _ in shards:  # run folders of distinct units have distinct paths; shared ones are identical
        for item in folder.iterdir():
            if item.is_dir():
                shutil.copytree(item, out / item.name, dirs_exist_ok=True)
    settings = _Settings(first["suite"], first["groups"])
    for gi, group in enumerate(merged["groups"]):
        baselines = [r for r in group["rows"] if r.get("kind") == "baseline"]
        for folder, res in shards[1:]:
            theirs = {
                r["name"]: _baseline_figure(r)
                for r in res["groups"][gi]["rows"]
                if r.get("kind") == "baseline" and r.get("metrics")
            }
            ours = {r["name"]: _baseline_figure(r) for r in baselines if r.get("metrics")}
            if theirs != ours:
                raise ValueError(
                    f"{folder}: the baselines of group {group['id']!r} differ from shard 1's "
                    "(another data file?); these shards do not belong together"
                )
        rows = list(baselines)
        for name in first["suite"]["models"]:
            pieces = [
                r
                for _, res in shards
                for r in res["groups"][gi]["rows"]
                if r.get("kind") == "model" and r["name"] == name
            ]
            if pieces:
                rows.append(_merge_model_rows(name, pieces, seeds))
        group["rows"] = rows
        group["budget"] = budget(group)
        finalize_group(group, out, settings)
    merged["finished"] = max(r["finished"] for _, r in shards) or now()
    validate(json.loads(json.dumps(finite(merged))))
    write_json(merged, out / "results.json")
    on_disk = json.loads((out / "results.json").read_text())
    if report:
        from .report import write_all

        write_all(on_disk, out)
    return on_disk


def _merge_model_rows(name: str, pieces: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """One model row from its shards' rows: an error or skip anywhere wins, else re-aggregated over all seeds."""
    for status in ("error", "skipped"):
        bad = [p for p in pieces if p.get("status") == status]
        if bad:
            return bad[0]
    records = sorted((rec for p in pieces for rec in p["seeds"]), key=lambda rec: seeds.index(rec["seed"]))
    base = {k: pieces[0].get(k) for k in ("symmetry", "train", "parameters", "config", "tuning")}
    return new_row(name, "model", **base, **aggregate_seeds(records), seeds=records)
