"""The reproducibility record (metapool.provenance)."""

import datetime as dt
import hashlib
import json

import yaml

from metapool.provenance import build_manifest, file_sha256, write_manifest


def test_manifest_records_hashes_config_versions_and_time(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n")
    out = tmp_path / "o.csv"
    out.write_text("x\n")
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    m = build_manifest(inputs=[table], outputs=[out], config={"k": 1},
                       workflow_dir=tmp_path, now=when)
    assert m["inputs"][str(table)] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert m["outputs"][str(out)] == file_sha256(out)
    assert m["created_utc"] == "2026-01-02T03:04:05+00:00"
    assert m["config"] == {"k": 1} and m["packages"]["numpy"]
    assert m["workflow_commit"] is None  # not a git checkout
    path = tmp_path / "results" / "manifest.json"
    write_manifest(path, m)
    assert json.loads(path.read_text()) == m


def test_citation_file_is_valid_yaml_with_required_keys():
    from pathlib import Path
    cff = yaml.safe_load((Path(__file__).parents[1] / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "version"):
        assert cff[key]
