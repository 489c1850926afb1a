#!/usr/bin/env python
"""Regenerate the tutorial notebooks from their jupytext sources and execute them.

Each tutorial is written as ``tutorials/NN_name.py`` in jupytext's "percent" format
(``# %%`` code cells, ``# %% [markdown]`` cells); ``NN_name.ipynb`` is generated from it
and committed *executed*. For every source this script:

1. reads it with ``jupytext.read(path, fmt="py:percent")`` and gives the cells stable ids
   (a hash of their content, so that regenerating an unchanged notebook changes nothing);
2. executes it with nbclient (kernel ``python3``, working directory ``tutorials/``, a
   timeout per cell);
3. drops volatile metadata (execution timestamps) and writes ``NN_name.ipynb``.

By default the kernel runs in *this* interpreter (the one running the script, where
irrepnet is installed), whatever ``python3`` kernelspec a user-level Jupyter installation
may hold; ``--kernel NAME`` uses an installed kernelspec instead.

``--check`` executes nothing: it verifies that the code cells of each ``.ipynb`` equal
those of its ``.py`` source (and that every source has its notebook), exit status 1 if not.

Usage::

    python tutorials/run_notebooks.py                # all tutorials
    python tutorials/run_notebooks.py 01 03          # those whose name starts with 01 or 03
    python tutorials/run_notebooks.py --check        # .py and .ipynb in sync?
    IRREPNET_FULL=1 python tutorials/run_notebooks.py 02   # full-size run (not for committing)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_GLOB = "[0-9][0-9]_*.py"
CELL_TIMEOUT = 600
KERNEL_NAME = "python3"
# cell metadata that changes on every run or every UI interaction
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    """``text`` without ANSI colour codes (IPython colours the tracebacks it reports)."""
    return _ANSI.sub("", text)


def sources(directory: Path = HERE) -> list[Path]:
    """The tutorial sources ``NN_*.py`` in ``directory``, sorted."""
    return sorted(directory.glob(SOURCE_GLOB))


def notebook_of(source: Path) -> Path:
    return source.with_suffix(".ipynb")


def source_of(notebook: Path) -> Path:
    return notebook.with_suffix(".py")


def _stable_ids(nb) -> None:
    """Cell ids from a hash of each cell's type and source; repeats get a suffix."""
    seen = {}
    for cell in nb.cells:
        digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        count = seen.get(digest, 0)
        seen[digest] = count + 1
        cell["id"] = digest if count == 0 else f"{digest}-{count}"


def read_source(source: Path):
    """The notebook (no outputs) that the percent-format ``source`` describes."""
    import jupytext

    nb = jupytext.read(source, fmt="py:percent")
    # jupytext records the text format it read; keep only the pairing ("formats")
    nb.metadata.get("jupytext", {}).pop("text_representation", None)
    _stable_ids(nb)
    return nb


def code_cells(nb) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def check_sync(source: Path) -> list[str]:
    """Problems keeping ``source`` and its ``.ipynb`` apart; empty when the code cells agree."""
    import nbformat

    notebook = notebook_of(source)
    if not notebook.exists():
        return [f"{notebook.name} is missing; run `python tutorials/run_notebooks.py {source.stem[:2]}`"]
    want = code_cells(read_source(source))
    got = code_cells(nbformat.read(notebook, as_version=4))
    problems = []
    if len(want) != len(got):
        problems.append(f"{notebook.name} has {len(got)} code cells but {source.name} has {len(want)}")
    for i, (a, b) in enumerate(zip(want, got)):
        if a != b:
            first = next((line for line in a.splitlines() if line.strip()), "")
            problems.append(
                f"code cell {i + 1} differs between {source.name} and {notebook.name} "
                f"(source cell starts {first[:60]!r})"
            )
            break
    if problems:
        problems.append(f"regenerate it: python tutorials/run_notebooks.py {source.stem[:2]}")
    return problems


@contextlib.contextmanager
def own_python_kernel(name: str = KERNEL_NAME) -> Iterator[str]:
    """Make kernel ``name`` run ``sys.executable`` for the duration of the block.

    A ``python3`` kernelspec is looked up in ``$JUPYTER_PATH`` first, then the user's
    data directory (``~/.local/share/jupyter``), then ``sys.prefix/share/jupyter`` (where
    ipykernel installs its own in a virtual environment), then system directories. A
    user-level spec may point at another interpreter, one without irrepnet; a spec for
    this interpreter written to a temporary directory put first on ``$JUPYTER_PATH``
    takes precedence over all of them.
    """
    from ipykernel.kernelspec import write_kernel_spec

    old = os.environ.get("JUPYTER_PATH")
    with tempfile.TemporaryDirectory(prefix="irrepnet-kernel-") as tmp:
        write_kernel_spec(Path(tmp) / "kernels" / name, overrides={"display_name": f"Python 3 ({sys.executable})"})
        os.environ["JUPYTER_PATH"] = tmp if not old else tmp + os.pathsep + old
        try:
            yield name
        finally:
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old


def execute(nb, cwd: Path = HERE, timeout: int = CELL_TIMEOUT, kernel_name: str = KERNEL_NAME):
    """Run every cell of ``nb`` in place (raises ``nbclient.exceptions.CellExecutionError``)."""
    from nbclient import NotebookClient

    # --log-level=ERROR: ipykernel >= 7 warns on every start that the local TCP transport
    # is unencrypted; errors raised by cells reach us through the messages, not this log
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        record_timing=False,
        extra_arguments=["--log-level=ERROR"],
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return nb


def _coalesce_streams(outputs: list) -> list:
    """Merge consecutive stdout (or stderr) outputs: how a cell's prints are split into
    messages depends on flush timing, so the merged form is the reproducible one."""
    merged = []
    for out in outputs:
        if (
            out.get("output_type") == "stream"
            and merged
            and merged[-1].get("output_type") == "stream"
            and merged[-1].get("name") == out.get("name")
        ):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def strip_volatile(nb):
    """Drop what changes from run to run (timestamps, stream splits), so that diffs stay small."""
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = _coalesce_streams(cell.outputs)
    return nb


def write(nb, path: Path) -> None:
    import nbformat

    nbformat.validate(nb)
    nbformat.write(nb, path)


def build(source: Path, timeout: int = CELL_TIMEOUT, kernel: str | None = None) -> float:
    """Regenerate, execute and write the notebook of ``source``; returns seconds taken."""
    nb = read_source(source)
    start = time.perf_counter()
    if kernel is None:
        with own_python_kernel() as name:
            execute(nb, source.parent, timeout, name)
    else:
        execute(nb, source.parent, timeout, kernel)
    elapsed = time.perf_counter() - start
    write(strip_volatile(nb), notebook_of(source))
    return elapsed


def select(names: Sequence[str], directory: Path = HERE) -> list[Path]:
    """Sources whose file name starts with one of ``names`` (all when empty)."""
    found = sources(directory)
    if not names:
        return found
    picked = []
    for name in names:
        stem = Path(name).stem
        match = [s for s in found if s.stem.startswith(stem)]
        if not match:
            raise SystemExit(f"run_notebooks: no tutorial matches {name!r}; have {[s.stem for s in found]}")
        picked += [s for s in match if s not in picked]
    return picked


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "names", nargs="*", help="tutorials to process, by name prefix (01, 02_compare...); default all"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only verify that each .ipynb's code cells equal its .py source; execute nothing",
    )
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell (default %(default)s)")
    parser.add_argument(
        "--kernel", default=None, help="an installed kernelspec to run instead of this interpreter (e.g. python3)"
    )
    args = parser.parse_args(argv)
    chosen = select(args.names)
    if not chosen:
        print(f"run_notebooks: no {SOURCE_GLOB} in {HERE}", file=sys.stderr)
        return 1

    if args.check:
        problems = [p for s in chosen for p in check_sync(s)]
        if not args.names:  # a notebook without a source cannot be regenerated
            problems += [
                f"{nb.name} has no {nb.stem}.py source"
                for nb in sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
                if not source_of(nb).exists()
            ]
        for p in problems:
            print(f"run_notebooks: {p}", file=sys.stderr)
        if not problems:
            print(f"run_notebooks: {len(chosen)} notebook(s) in sync with their sources")
        return 1 if problems else 0

    from nbclient.exceptions import CellExecutionError

    failed = []
    for source in chosen:
        print(f"{source.stem}: executing...", flush=True)
        try:
            elapsed = build(source, args.timeout, args.kernel)
        except CellExecutionError as exc:
            failed.append(source.stem)
            print(f"{source.stem}: FAILED (the .ipynb was not rewritten)\n{plain(str(exc))}", file=sys.stderr)
            continue
        except Exception as exc:  # the kernel did not start or died: not a cell's fault
            failed.append(source.stem)
            print(f"{source.stem}: could not run it: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        size = notebook_of(source).stat().st_size
        print(f"{source.stem}: executed in {elapsed:.1f} s, wrote {notebook_of(source).name} ({size / 1024:.0f} KB)")
    if failed:
        print(f"run_notebooks: {len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
