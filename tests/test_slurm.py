"""The workflow runs on a real SLURM cluster through Snakemake's executor plugin.

scripts/slurm/start_local_slurm.sh brings up a one-node cluster on this machine from
Debian packages (munged, MariaDB, slurmdbd, slurmctld, slurmd; installed if missing).
The mini fixture then runs twice, side by side, each in a fresh copy of the workflow:
with the repository's SLURM profile (profiles/slurm: the per-analysis jobs run in
SLURM jobs, a few analyses per job) and locally. The tests check that

* the SLURM run succeeds and `sacct` lists every job it submitted, COMPLETED, in the
  configured partition and account, with one job step per rule job it ran;
* every result table is byte-identical to the local run's;
* scripts/slurm/stop_local_slurm.sh leaves no SLURM, munge or MariaDB process behind.

It needs root (it installs packages and starts daemons) and fails, never skips, when it
cannot have them: CI runs it as root. Select it with `pytest -m slurm`, leave it out
with `-m "not slurm"`. On a 2-CPU machine busy with other work (load about 6) it took
3.5 minutes, most of it in the SLURM jobs, where every rule job starts Snakemake anew
(10-40 s each under that load); the first start adds the package install (about 35 s).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from test_workflow import MINI, make_workdir

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
START = REPO / "scripts" / "slurm" / "start_local_slurm.sh"
STOP = REPO / "scripts" / "slurm" / "stop_local_slurm.sh"
PROFILE = REPO / "profiles" / "slurm"
# The Python running the tests is the project's .venv: SLURM jobs must use it too. Not
# resolved: the venv's bin/ must come first in PATH, not the interpreter it links to.
VENV_BIN = Path(sys.executable).parent
CLUSTER_DIR = os.environ.get("METAPOOL_SLURM_DIR", "/var/lib/metapool-slurm")
PARTITION = "debug"
ACCOUNT = "metapool"
TABLES = ("pooled.csv", "studies.csv", "excluded.csv", "sensitivity.csv")
ANALYSES = list(
    yaml.safe_load((MINI / "config" / "config.yaml").read_text())["analyses"]
)
# Upper bounds, far above the usual (both runs: 2.5-3 minutes on a busy 2-CPU machine).
# The plugin polls job states with sacct and can wait forever when sacct breaks,
# ignoring SIGTERM: `timeout -k` ends it for sure.
START_TIMEOUT = 900  # the first start installs the Debian packages
SNAKEMAKE_TIMEOUT = 600
# Held by the module while it runs (see the fixture); other runs wait this long for it.
LOCK = (
    "/run/lock" if os.path.isdir("/run/lock") else "/tmp"
) + "/metapool-slurm-test.lock"
LOCK_TIMEOUT = 1200
# Every daemon the start script starts, and the job steps they run.
DAEMONS = (
    "munged",
    "mariadbd",
    "mysqld",
    "slurmdbd",
    "slurmctld",
    "slurmd",
    "slurmstepd",
)


@dataclass
class Runs:
    slurm: Path
    local: Path
    slurm_output: str
    slurm_env: dict[str, str]
    started: dt.datetime
    seconds: dict[str, float] = field(default_factory=dict)


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_script(script: Path, timeout: int, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"{script.name} failed (exit {result.returncode}):\n{tail(output)}")
    return output


def cluster_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        METAPOOL_SLURM_DIR=CLUSTER_DIR,
        METAPOOL_SLURM_PARTITION=PARTITION,
        METAPOOL_SLURM_ACCOUNT=ACCOUNT,
        SLURM_CONF=f"{CLUSTER_DIR}/etc/slurm.conf",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def slurm_logs(workdir: Path) -> str:
    logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    return "\n".join(
        f"--- {p}\n{tail(p.read_text(errors='replace'), 30)}" for p in logs
    )


def sacct(env: dict[str, str], *args: str) -> list[list[str]]:
    result = subprocess.run(
        ["sacct", "--noheader", "--parsable2", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [line.split("|") for line in result.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail(
            "the SLURM test must run as root: it installs the Debian packages of SLURM, "
            "munge and MariaDB if missing and starts their daemons "
            "(run `pytest -m 'not slurm'` to leave it out)"
        )
    env = cluster_env()
    seconds = {}
    # One test run at a time on a machine: the cluster, its ports and its directory are
    # machine-wide, and each run stops the cluster at its end.
    lock = open(LOCK, "w")
    t0 = time.monotonic()
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() - t0 > LOCK_TIMEOUT:
                lock.close()
                pytest.fail(f"another SLURM test run has held {LOCK} for too long")
            time.sleep(1)
    seconds["wait for other runs"] = time.monotonic() - t0
    local_run = None
    try:
        t0 = time.monotonic()
        started = dt.datetime.now() - dt.timedelta(seconds=5)
        run_script(START, START_TIMEOUT, env)
        seconds["start cluster"] = time.monotonic() - t0

        base = tmp_path_factory.mktemp("slurm")
        slurm = make_workdir(base / "slurm")
        local = make_workdir(base / "local")

        t0 = time.monotonic()
        # The local run goes on beside the SLURM run, which mostly waits for SLURM.
        local_log = open(base / "local.log", "w+")
        local_run = subprocess.Popen(
            [str(VENV_BIN / "python"), "-m", "snakemake", "--directory", str(local)]
            + ["--workflow-profile", str(local / "profiles" / "default")],
            cwd=local,
            stdout=local_log,
            stderr=subprocess.STDOUT,
        )
        result = subprocess.run(
            ["timeout", "-k", "10", str(SNAKEMAKE_TIMEOUT)]
            + [str(VENV_BIN / "python"), "-m", "snakemake"]
            + ["--workflow-profile", str(PROFILE), "--directory", str(slurm)]
            # first status check after 1 s instead of 40 s
            + ["--slurm-init-seconds-before-status-checks", "1"],
            cwd=slurm,
            env=env,
            capture_output=True,
            text=True,
            timeout=SNAKEMAKE_TIMEOUT + 30,
        )
        seconds["SLURM run"] = time.monotonic() - t0
        output = result.stdout + result.stderr
        assert result.returncode == 0, (
            f"snakemake on SLURM exited {result.returncode}"
            + (" (killed by timeout)" if result.returncode in (124, 137) else "")
            + f":\n{tail(output, 80)}\n{slurm_logs(slurm)}"
        )
        local_run.wait(timeout=SNAKEMAKE_TIMEOUT)
        seconds["both runs"] = time.monotonic() - t0
        local_log.seek(0)
        assert local_run.returncode == 0, tail(local_log.read(), 80)

        yield Runs(slurm, local, output, env, started, seconds)
    finally:
        if local_run is not None and local_run.poll() is None:
            local_run.kill()
            local_run.wait()
        # Also when a test or the runs above failed: no daemon may outlive the module.
        # Once test_stop_leaves_nothing_running has stopped them, this finds nothing.
        subprocess.run(["bash", str(STOP)], env=env, capture_output=True, timeout=300)
        lock.close()
        print(
            "\nSLURM test timings: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()),
            file=sys.stderr,
        )


def test_jobs_ran_through_slurm(runs):
    """sacct lists every job the run submitted, each completed, as configured."""
    out = runs.slurm_output
    ids = set(re.findall(r"submitted with SLURM jobid (\d+)", out))
    # the rule jobs sent to SLURM ("localrule X:" for the others), grouped or not
    remote = re.findall(r"^\s*rule (\w+):", out, flags=re.MULTILINE)
    # the analyses are dealt into at least 4 batches (workflow/rules/common.smk): one
    # pooling and one plotting job per batch, each its own SLURM job
    batches = range(min(len(ANALYSES), 4))
    assert sorted(remote) == sorted(
        [f"pool_batch_{i}" for i in batches] + [f"plots_batch_{i}" for i in batches]
    ), out
    assert len(ids) == len(remote), out

    fields = "JobID,JobName,Partition,Account,State,ExitCode,Comment"
    jobs = {
        row[0]: dict(zip(fields.split(","), row))
        for row in sacct(runs.slurm_env, "-X", "-j", ",".join(ids), "-o", fields)
    }
    assert set(jobs) == ids
    for job in jobs.values():
        assert job["State"] == "COMPLETED", job
        assert job["ExitCode"] == "0:0", job
        assert job["Partition"] == PARTITION, job
        assert job["Account"] == ACCOUNT, job
        # the plugin's comment names the rule of the job
        assert job["Comment"].startswith(("rule_pool_batch_", "rule_plots_batch_")), job

    # Every job of a run is named after the run's id: sacct finds exactly the jobs
    # that Snakemake submitted under that name.
    (run_id,) = re.findall(r"^SLURM run ID: (\S+)$", out, flags=re.MULTILINE)
    assert {job["JobName"] for job in jobs.values()} == {run_id}
    since = runs.started.strftime("%Y-%m-%dT%H:%M:%S")
    named = sacct(runs.slurm_env, "-X", "-S", since, "--name", run_id, "-o", "JobID")
    assert {row[0] for row in named} == ids

    # Inside its allocation each rule job is one job step (srun), all completed.
    steps = [
        row
        for row in sacct(runs.slurm_env, "-j", ",".join(ids), "-o", "JobID,State")
        if re.fullmatch(r"\d+\.\d+", row[0])
    ]
    assert len(steps) == len(remote), steps
    assert all(state == "COMPLETED" for _, state in steps), steps


def test_report_ran_locally(runs):
    """The report is a localrule: built on the submitting machine, not in a job."""
    assert re.search(r"^localrule report:", runs.slurm_output, flags=re.MULTILINE)
    assert (runs.slurm / "results" / "report.html").stat().st_size > 0


def test_result_tables_identical_to_local_run(runs):
    def tables(workdir: Path) -> list[str]:
        return sorted(
            str(p.relative_to(workdir))
            for table in TABLES
            for p in workdir.glob(f"results/*/{table}")
        )

    local = tables(runs.local)
    assert local == tables(runs.slurm)
    assert len(local) >= len(TABLES) * len(ANALYSES)
    different = [
        path
        for path in local
        if (runs.slurm / path).read_bytes() != (runs.local / path).read_bytes()
    ]
    assert not different


def test_stop_leaves_nothing_running(runs):
    """Last test of the module: the stop script ends every daemon the start began."""
    output = run_script(STOP, 300, runs.slurm_env)
    # one name per pgrep: it refuses patterns longer than a process name (15 chars)
    left = [
        subprocess.run(["pgrep", "-a", "-x", name], capture_output=True, text=True)
        for name in DAEMONS
    ]
    assert all(p.returncode == 1 for p in left), (
        "still running:\n" + "".join(p.stdout + p.stderr for p in left) + output
    )
    assert not Path(CLUSTER_DIR, "run", "daemons").exists()
    assert not Path("/run/slurm/conf").exists()
