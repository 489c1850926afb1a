"""The data a checkpoint was trained on: recorded when training, checked when resuming,
reloaded when auditing.

:func:`irrepnet.tasks.load_task` describes its data (:mod:`irrepnet.data.identity`);
:func:`training_record` adds what training made of it (split sizes, the normaliser's
length scale) and the :class:`~.loop.Trainer` keeps the result as ``meta["data"]`` in
every ``best.pt`` and ``last.pt``. Then

- :func:`check_resumed_data` refuses to resume on other data (a different file or
  content, or another generator config): mixing them would pick the best epoch by
  comparing validation losses measured on two data sets (issue 25, item 2);
- :func:`task_of_checkpoint` loads the recorded data again, so that ``irrepnet audit
  --checkpoint`` audits a model on what it was trained on, and says which data it uses.

Checkpoints written before the record existed still load: the data cannot be checked,
and a warning says so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..data.identity import PATH_KINDS, data_option, describe, recorded_location, same_data
from .checkpoint import CheckpointError, load_checkpoint

logger = logging.getLogger(__name__)

#: keys under which a normaliser may keep a length scale (``scales[key]``, a float)
LENGTH_SCALE_KEYS = ("length_scale", "length")


class DataMismatchError(ValueError):
    """The data at hand is not the data a checkpoint was trained on."""


def recorded_length_scale(scales: dict[str, Any]) -> float | None:
    """The length scale the normaliser stores in ``scales``, if it has one (else ``None``)."""
    for key in LENGTH_SCALE_KEYS:
        value = scales.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def training_record(
    identity: dict[str, Any] | None, sizes: dict[str, Any], scales: dict[str, Any]
) -> dict[str, Any] | None:
    """``identity`` with the split ``sizes`` trained on and the length scale of ``scales``.

    ``None`` when the task has no identity (datasets put together by hand).
    """
    if identity is None:
        return None
    return {**identity, "sizes": dict(sizes), "length_scale": recorded_length_scale(scales)}


def check_resumed_data(recorded: dict[str, Any] | None, current: dict[str, Any] | None, checkpoint) -> None:
    """Refuse to resume ``checkpoint`` (trained on ``recorded``) on ``current``, other data.

    Raises
    ------
    DataMismatchError
        one line naming both data and the fix.
    """
    if current is None:  # the caller built its datasets by hand: nothing to compare with
        return
    if recorded is None:
        logger.warning(
            "%s records no data (written before irrepnet recorded it): cannot check that %s is the data "
            "it was trained on",
            checkpoint,
            describe(current),
        )
        return
    if same_data(recorded, current):  # other split options (history...) are the task record's to check
        return
    rewritten = recorded.get("abspath") is not None and recorded.get("abspath") == current.get("abspath")
    if rewritten and recorded.get("kind") in PATH_KINDS:  # naming the same path as the fix would not help
        raise DataMismatchError(
            f"cannot resume {checkpoint}: {current['path']} has changed since it was trained on it (sha256 "
            f"{str(recorded['sha256'])[:12]}..., now {str(current['sha256'])[:12]}...); restore the original "
            "file, or start a new run with another --out (or --overwrite)"
        )
    raise DataMismatchError(
        f"cannot resume {checkpoint}: it was trained on {describe(recorded)}, not {describe(current)}; "
        f"resume with {data_option(recorded)}, or start a new run with another --out (or --overwrite)"
    )


def check_folder_data(folder, current: dict[str, Any] | None) -> None:
    """Refuse to resume ``folder`` (a bench group's) if its checkpoints were trained on other data.

    ``bench --resume`` keeps finished rows without training again, so the seed folders'
    checkpoints are compared here, before anything runs; one readable checkpoint speaks
    for the folder (a group's rows share their data).

    Raises
    ------
    DataMismatchError
        as :func:`check_resumed_data`, naming the checkpoint.
    """
    if current is None:
        return
    for path in sorted(Path(folder).glob("**/last.pt")) + sorted(Path(folder).glob("**/best.pt")):
        try:
            ck = load_checkpoint(path)
        except CheckpointError:  # a truncated file: the bench's own resume deals with it
            continue
        check_resumed_data(ck.get("meta", {}).get("data"), current, path)
        return


def task_of_checkpoint(ck: dict[str, Any], checkpoint, data: str | None = None):
    """The task a checkpoint was trained on, loaded from its recorded data.

    ``data`` (the user's ``--data``) replaces the recorded data. One log line says which
    data is used: INFO for the recorded data, WARNING for other data or when the
    checkpoint records none (older checkpoints: the data cannot be checked).

    Raises
    ------
    FileNotFoundError
        the recorded file is gone (the message names it and ``--data``).
    DataMismatchError
        the recorded file is there but its content changed since training.
    """
    from ..tasks import load_task

    meta = ck.get("meta", {})
    task_meta = meta["task"]
    recorded = meta.get("data")
    options: dict[str, Any] = {}
    if task_meta["name"] == "twelve_body":
        options.update(history=int(task_meta.get("history", 0)), bonds=bool(task_meta.get("bonds", False)))
    if task_meta["name"] == "qm9":
        options.update(target=task_meta.get("target"), pooling=task_meta.get("pooling", "sum"))
    if data is not None or recorded is None:
        task = load_task(task_meta["name"], data=data, **options)
        if recorded is None:
            logger.warning(
                "%s records no data (written before irrepnet recorded it): using %s, which cannot be checked",
                checkpoint,
                describe(task.identity),
            )
        elif same_data(recorded, task.identity):
            logger.info("using the data of --data, the data %s was trained on: %s", checkpoint, describe(task.identity))
        else:
            logger.warning(
                "using the data of --data, %s, not the data %s was trained on, %s",
                describe(task.identity),
                checkpoint,
                describe(recorded),
            )
        return task
    load = dict(recorded.get("load", {}))
    try:
        load["data"] = recorded_location(recorded)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{checkpoint} was trained on {recorded.get('path')}, which no longer exists; "
            f"pass --data with that data (sha256 {str(recorded.get('sha256'))[:12]}...)"
        ) from None
    task = load_task(task_meta["name"], **load, **options)
    if not same_data(recorded, task.identity):
        raise DataMismatchError(
            f"{checkpoint} was trained on {describe(recorded)}, but {load['data']} has changed since "
            f"(now {describe(task.identity)}); pass --data with the original data"
        )
    moved = recorded.get("kind") in PATH_KINDS and load["data"] != recorded.get("abspath")
    where = f", found at {load['data']}" if moved else ""
    logger.info("using the data recorded in %s: %s%s", checkpoint, describe(recorded), where)
    return task
