"""Build, run and check the cases of the bad-input corpus (see README.md here).

Every case is a directory ``cases/<id>/`` holding ``case.yaml`` (what to change in the
base project, the mini fixture ``tests/fixtures/mini``) and ``expected.txt`` (the exact
message, normalised as :func:`normalise` describes). The builder copies the base
project's ``config/`` and ``data/`` into a working directory and applies the edits in
order; the test (tests/test_corpus.py) then runs the repository's real workflow there.

Run it by hand to look at a case::

    python tests/corpus/build.py <case-id> <dir>           # build the case into <dir>
    python tests/corpus/build.py --run <case-id> <dir>     # build, run, show the message
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BASE = REPO / "tests" / "fixtures" / "mini"
CASES = HERE / "cases"
#: Short names of the base project's files used in ``case.yaml``.
FILES = {
    "studies": "data/raw/studies.csv",
    "proportions": "data/raw/proportions.csv",
    "survival": "data/raw/survival.csv",
    "config": "config/config.yaml",
}
SENTINEL = "results/SENTINEL.txt"
SENTINEL_TEXT = "written by the corpus test before the run; must survive unchanged\n"


@dataclass
class Case:
    """One corpus case, as read from ``cases/<id>/``."""

    id: str
    about: str
    expected: str
    edits: list[dict[str, Any]] = field(default_factory=list)
    exit: int = 1
    args: list[str] = field(default_factory=list)
    same_tables_as_base: bool = False
    needs: str | None = None
    absent: list[str] = field(default_factory=list)


def load_cases() -> list[Case]:
    """Every case, in directory-name order."""
    out = []
    for folder in sorted(p for p in CASES.iterdir() if (p / "case.yaml").is_file()):
        spec = yaml.safe_load((folder / "case.yaml").read_text(encoding="utf-8"))
        unknown = set(spec) - {"about", "edits", "exit", "args", "same_tables_as_base",
                               "needs", "absent"}
        if unknown:
            raise ValueError(f"{folder.name}/case.yaml: unknown keys {sorted(unknown)}")
        expected = (folder / "expected.txt").read_text(encoding="utf-8")
        out.append(Case(id=folder.name, expected=expected, **spec))
    return out


# --------------------------------------------------------------------------- building


def _path(root: Path, name: str) -> Path:
    return root / FILES.get(name, name)


def _read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _write_rows(path: Path, rows: list[list[str]], delimiter: str = ",") -> None:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _column(header: list[str], name: str) -> int:
    if name not in header:
        raise ValueError(f"no column {name!r} in {header}")
    return header.index(name)


def _walk(config: Any, path: list[Any]) -> tuple[Any, Any]:
    node = config
    for key in path[:-1]:
        node = node[key]
    return node, path[-1]


def apply_edit(root: Path, edit: dict[str, Any]) -> None:
    """Apply one edit of ``case.yaml`` to the project in ``root``."""
    edit = dict(edit)
    op = edit.pop("op")
    path = _path(root, edit.pop("file", "config"))
    if op == "set":  # one cell; row counts data rows from 1 as the messages do
        rows = _read_rows(path)
        rows[edit["row"]][_column(rows[0], edit["column"])] = str(edit["value"])
        _write_rows(path, rows)
    elif op == "append":  # a data row; unnamed columns stay empty
        rows = _read_rows(path)
        new = [""] * len(rows[0])
        for column, value in edit["values"].items():
            new[_column(rows[0], column)] = str(value)
        _write_rows(path, rows + [new])
    elif op == "drop_column":
        rows = _read_rows(path)
        i = _column(rows[0], edit["column"])
        _write_rows(path, [r[:i] + r[i + 1:] for r in rows])
    elif op == "rename_column":
        rows = _read_rows(path)
        rows[0][_column(rows[0], edit["column"])] = edit["to"]
        _write_rows(path, rows)
    elif op == "add_column":  # a new last column with one value for every data row
        rows = _read_rows(path)
        _write_rows(path, [rows[0] + [edit["name"]]] + [r + [edit["value"]] for r in rows[1:]])
    elif op == "reverse_columns":
        _write_rows(path, [r[::-1] for r in _read_rows(path)])
    elif op == "clear_rows":  # keep the header only
        _write_rows(path, _read_rows(path)[:1])
    elif op == "separator":  # rewrite the CSV with another delimiter
        _write_rows(path, _read_rows(path), delimiter=edit["sep"])
    elif op == "pad_cells":  # surround every cell, header included, with whitespace
        rows = _read_rows(path)
        _write_rows(path, [[f"{edit['left']}{c}{edit['right']}" for c in r] for r in rows])
    elif op == "replace":  # literal text, which must occur exactly `count` times
        text = path.read_text(encoding="utf-8")
        count = edit.get("count", 1)
        if text.count(edit["old"]) != count:
            raise ValueError(f"{path.name}: {edit['old']!r} occurs {text.count(edit['old'])} "
                             f"times, not {count}")
        path.write_text(text.replace(edit["old"], edit["new"]), encoding="utf-8")
    elif op == "write":  # the whole file, in an encoding (latin-1 writes \xNN bytes as is)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(edit["text"].encode(edit.get("encoding", "utf-8")))
    elif op == "encode":  # re-encode a UTF-8 file: BOM, line endings, encoding
        text = path.read_text(encoding="utf-8")
        text = text.replace("\n", edit.get("newline", "\n"))
        data = text.encode(edit.get("encoding", "utf-8"))
        if edit.get("bom"):
            data = b"\xef\xbb\xbf" + data
        path.write_bytes(data)
    elif op == "delete":
        path.unlink()
    elif op in ("config_set", "config_delete", "config_rename"):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        node, key = _walk(config, edit["path"])
        if op == "config_set":
            node[key] = edit["value"]
        elif op == "config_delete":
            del node[key]
        else:  # rename a key in place, keeping the order of the mapping
            items = [(edit["to"] if k == key else k, v) for k, v in node.items()]
            node.clear()
            node.update(items)
        path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
                        encoding="utf-8")
    else:
        raise ValueError(f"unknown edit op {op!r}")


def build(case: Case, root: Path) -> Path:
    """Create the case's project in ``root`` (base copy + edits + the results sentinel)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("config", "data"):
        shutil.copytree(BASE / name, root / name)
    for edit in case.edits:
        apply_edit(root, edit)
    sentinel = root / SENTINEL
    sentinel.parent.mkdir(parents=True, exist_ok=True)
    sentinel.write_text(SENTINEL_TEXT, encoding="utf-8")
    return root


# --------------------------------------------------------------------------- running

#: Lines Snakemake itself prints around a message: they carry dates, hosts, paths and
#: versions, and are not part of what a case checks.
_NOISE = [re.compile(p) for p in (
    r"^Using workflow specific profile .* for setting default command line arguments\.$",
    r"^Assuming unrestricted shared filesystem usage\.$",
    r"^host: \S+$",
    r"^Building DAG of jobs\.\.\.$",
    r"^SNAKEMAKE$",
    r"^=+$",
    (r"^  (Date|Workflow ID|Platform|Host|User|Snakemake version|Python version|Command|"
     r"Snakefile|Base directory|Run directory|Working directory|Config file\(s\)|"
     r"Config MD5): "),
)]


#: Where Snakemake says one of its own errors happened: the line number moves whenever the
#: Snakefile is edited, so it is written <n>.
_LOCATION = re.compile(r'^(\w+ in file ".*", line )\d+:$')


def normalise(stderr: str, workdir: Path) -> str:
    """The message of a run, as ``expected.txt`` holds it.

    1. line endings become ``\\n`` and trailing whitespace is removed from every line;
    2. Snakemake's own banner lines are dropped (:data:`_NOISE`: the workflow profile
       line, the SNAKEMAKE block with date, host, versions and paths, "Building DAG of
       jobs..."), and so are blank lines;
    3. the case's working directory is written ``<workdir>`` and the repository
       ``<repo>``; in Snakemake's own ``<Error> in file "...", line N:`` lines the line
       number is written ``<n>``.
    """
    lines = []
    for line in stderr.replace("\r\n", "\n").split("\n"):
        line = line.rstrip()
        if not line or any(p.match(line) for p in _NOISE):
            continue
        line = line.replace(str(workdir), "<workdir>").replace(str(REPO), "<repo>")
        lines.append(_LOCATION.sub(r"\1<n>:", line))
    return "\n".join(lines) + "\n"


def command(case: Case, workdir: Path) -> list[str]:
    """The real pipeline command; accepted inputs (exit 0) are checked with a dry run."""
    args = [sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(workdir),
            "-s", str(REPO / "Snakefile")]
    if case.exit == 0:
        args.append("--dry-run")
    return args + list(case.args)


def run(case: Case, workdir: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the workflow on a built case. stdout is where Snakemake lists a dry run's jobs."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(command(case, workdir), cwd=workdir, capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


def precheck_installed() -> bool:
    """Whether workflow/Snakefile checks config/config.yaml before Snakemake reads it."""
    return "check_config_file" in (REPO / "workflow" / "Snakefile").read_text(encoding="utf-8")


def main(argv: list[str]) -> int:
    do_run = argv[:1] == ["--run"]
    if do_run:
        argv = argv[1:]
    if len(argv) != 2:
        print(__doc__)
        return 2
    case = next(c for c in load_cases() if c.id == argv[0])
    workdir = build(case, Path(argv[1]).resolve())
    print(f"built {case.id} in {workdir}")
    if do_run:
        result = run(case, workdir)
        print(f"exit status {result.returncode} (expected {case.exit})")
        message = normalise(result.stderr, workdir)
        print(message, end="")
        print("matches expected.txt" if message == case.expected else "DIFFERS from expected.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
