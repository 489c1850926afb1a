"""Sharded suites: ``--shard I/N`` parts merged with ``report --merge`` equal an unsharded run."""

import json
import shutil

import pytest
from test_bench import TINY_V2  # the schema-2 suite of the harness tests

from irrepnet.bench import load_suite, run_suite
from irrepnet.bench.shard import merge_shards, parse_shard, shard_units
from irrepnet.bench.suite import Variant
from irrepnet.cli import main

# two variants (one a residual with input noise), two seeds, an lr x size grid: every kind of unit
SUITE = TINY_V2

#: what must match between a merged and an unsharded run (timings differ)
SAME = ("name", "status", "parameters", "metrics", "rollout", "intervals", "comparisons", "tuning", "train")


def test_parse_and_assign_shards():
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/2", "3/2", "2", "a/b"):
        with pytest.raises(ValueError, match="I/N"):
            parse_shard(bad)
    variants = [Variant("a"), Variant("b")]
    parts = [shard_units(variants, ["m1", "m2"], [0, 1, 2], (i, 3)) for i in (1, 2, 3)]
    assert sorted(u for p in parts for u in p) == sorted(
        (v, m, s) for v in "ab" for m in ("m1", "m2") for s in (0, 1, 2)
    )
    assert [len(p) for p in parts] == [4, 4, 4]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    (root / "tiny2.toml").write_text(SUITE)
    suite = load_suite(str(root / "tiny2.toml"))
    quiet = lambda line: None  # noqa: E731
    whole = run_suite(suite, root / "whole", log=quiet)
    for i in (1, 2, 3):
        run_suite(suite, root / f"part-{i}", log=quiet, shard=(i, 3))
    return root, whole


def test_merged_shards_equal_an_unsharded_run(runs):
    root, whole = runs
    merged = merge_shards(root / "merged", [root / f"part-{i}" for i in (3, 1, 2)])  # any order
    assert [g["id"] for g in merged["groups"]] == [g["id"] for g in whole["groups"]]
    for gm, gw in zip(merged["groups"], whole["groups"]):
        assert [r["name"] for r in gm["rows"]] == [r["name"] for r in gw["rows"]]
        for rm, rw in zip(gm["rows"], gw["rows"]):
            for key in SAME:
                assert rm.get(key) == rw.get(key), (gm["id"], rm["name"], key)
            assert [s["seed"] for s in rm["seeds"]] == [s["seed"] for s in rw["seeds"]]
        assert gm["budget"]["steps"] == gw["budget"]["steps"]
    assert (root / "merged" / "report.md").exists()
    assert len(merged["merged_from"]) == 3 and "shard" not in merged


def test_merge_refuses_what_does_not_belong_together(runs, tmp_path):
    root, _ = runs
    parts = [root / f"part-{i}" for i in (1, 2, 3)]
    with pytest.raises(ValueError, match=r"shards 1\.\.3 each once"):
        merge_shards(tmp_path / "a", parts[:2])
    with pytest.raises(ValueError, match="not a shard"):
        merge_shards(tmp_path / "b", [root / "whole"])
    other = tmp_path / "other"
    shutil.copytree(parts[2], other)
    res = json.loads((other / "results.json").read_text())
    res["provenance"]["commit"] = "0" * 40
    (other / "results.json").write_text(json.dumps(res))
    with pytest.raises(ValueError, match="commit"):
        merge_shards(tmp_path / "c", parts[:2] + [other])
    res["provenance"] = json.loads((parts[2] / "results.json").read_text())["provenance"]
    res["suite"]["seeds"] = [0, 1, 2]
    (other / "results.json").write_text(json.dumps(res))
    with pytest.raises(ValueError, match="another suite"):
        merge_shards(tmp_path / "d", parts[:2] + [other])
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        merge_shards(tmp_path / "e", parts)


def test_cli_shard_and_merge_errors_are_one_line(runs, tmp_path, capsys):
    root, _ = runs
    assert (
        main(["bench", "--task", "twelve_body", "--models", "mlp", "--shard", "3/2", "--out", str(tmp_path / "x")]) == 2
    )
    assert "1 <= I <= N" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "m"), "--merge", str(root / "part-1")]) == 2
    assert "each once" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "m2"), "--merge", *[str(root / f"part-{i}") for i in (1, 2, 3)]]) == 0
    assert "merged 3 shards" in capsys.readouterr().out
