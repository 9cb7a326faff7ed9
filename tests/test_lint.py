"""The workflow lints clean, is formatted, and its documented contract is complete.

`snakemake --lint` and `snakefmt --check` are what the Snakemake workflow catalog runs
on every listed workflow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_snakemake_lint_is_clean():
    result = run("snakemake", "--lint")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Lints for" not in output, output
    assert "Congratulations" in output, output


def test_snakefmt_check_passes():
    result = run("snakefmt", "--check", "Snakefile", "workflow/")
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_readme_documents_every_column_and_key():
    """config/README.md is the data contract users read: it must not fall behind."""
    readme = (REPO / "config" / "README.md").read_text(encoding="utf-8")
    missing = []
    for table in ("studies", "proportions", "survival", "risk_of_bias"):
        path = REPO / "src" / "metapool" / "schemas" / f"{table}.schema.json"
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert f"### `{table}.csv`" in readme
        missing += [
            f"{table}.{c}" for c in schema["properties"] if f"`{c}`" not in readme
        ]

    config_schema = yaml.safe_load(
        (REPO / "workflow" / "schemas" / "config.schema.yaml").read_text()
    )

    def keys(schema):
        for key, sub in (schema.get("properties") or {}).items():
            yield key
            yield from keys(sub)

    analysis = config_schema["$defs"]["analysis"]
    missing += [k for k in [*keys(config_schema), *keys(analysis)] if k not in readme]
    assert not missing, f"not documented in config/README.md: {missing}"
