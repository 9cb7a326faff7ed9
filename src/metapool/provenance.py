"""The reproducibility record of a run: ``results/manifest.json``.

Input and output file hashes, the configuration, package versions, the git commit of
the workflow and the time of the run. It is the one output that records a time: every
table and figure is byte-identical across runs on the same inputs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from . import __version__

__all__ = ["file_sha256", "build_manifest", "write_manifest", "PACKAGES"]

#: Packages whose versions are recorded.
PACKAGES = ("metapool", "numpy", "scipy", "pandas", "statsmodels", "pymare", "matplotlib",
            "seaborn", "jinja2", "jsonschema", "snakemake")


def file_sha256(path):
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions():
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["metapool"] = __version__
    return out


def _git_commit(where):
    """The commit of the git checkout holding ``where``, or None outside one."""
    try:
        result = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    if result.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain"],
                           capture_output=True, text=True, timeout=10, check=False)
    return commit + ("+uncommitted changes" if dirty.stdout.strip() else "")


def build_manifest(*, inputs, outputs, config, workflow_dir, now=None):
    """The manifest as a dict.

    Parameters
    ----------
    inputs, outputs : iterable of path
        Files whose SHA-256 is recorded (relative paths are kept as given).
    config : dict
        The configuration the run used (after defaults were filled in).
    workflow_dir : path
        Directory of the workflow, for its git commit.
    now : datetime, optional
        The run time (UTC); default: now.
    """
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return {
        "metapool": __version__,
        "created_utc": now.replace(microsecond=0).isoformat(),
        "workflow_commit": _git_commit(workflow_dir),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": _versions(),
        "config": config,
        "inputs": {str(p): file_sha256(p) for p in sorted(map(str, inputs))},
        "outputs": {str(p): file_sha256(p) for p in sorted(map(str, outputs))},
    }


def write_manifest(path, manifest):
    """Write the manifest as indented JSON (atomic replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True)
                   + "\n", encoding="utf-8")
    os.replace(tmp, path)
