#!/usr/bin/env bash
# stop_local_slurm.sh - stop the test cluster of start_local_slurm.sh, as root.
#
# Stops exactly the daemons that start_local_slurm.sh started, as recorded in
# $METAPOOL_SLURM_DIR/run/daemons (PID and start time: never by name, never a recycled
# PID), in reverse start order: first cancels the cluster's jobs, then slurmd, the job
# steps (slurmstepd) it left, slurmctld, slurmdbd, mariadbd, munged. SIGTERM first,
# SIGKILL after 30 s. A daemon missing from the record (e.g. the start script was killed
# between starting it and recording it) is found by the mark that start_local_slurm.sh
# puts in the environment of every daemon it starts: METAPOOL_SLURM_DIR=<the directory>.
# Removes the /run/slurm/conf link made by the start script. Idempotent: with nothing
# running it only says so. Exits 1 if a daemon could not be stopped.
#
# Settings (environment variables):
#   METAPOOL_SLURM_DIR     the directory given to start_local_slurm.sh
#                          (/var/lib/metapool-slurm)
#   METAPOOL_SLURM_WIPE=1  also delete the cluster's state: job history (the database),
#                          slurmctld state, spool and logs; the next start begins afresh
set -uo pipefail

BASE=${METAPOOL_SLURM_DIR:-/var/lib/metapool-slurm}
RUN=$BASE/run
REGISTRY=$RUN/daemons
export SLURM_CONF=$BASE/etc/slurm.conf

log() { printf '[stop_local_slurm %s] %s\n' "$(date +%T)" "$*" >&2; }
starttime() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }
comm_of() { cat "/proc/$1/comm" 2>/dev/null; }
ours() { # ours PID: the process carries the mark of this cluster in its environment
    tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep -qxF "METAPOOL_SLURM_DIR=$BASE"
}
alive() { # alive NAME PID START: the process is still the one that was recorded
    [[ $(comm_of "$2") == "$1" ]] && [[ $(starttime "$2") == "$3" ]]
}
terminate() { # terminate NAME PID START: SIGTERM, wait up to 30 s, then SIGKILL
    local i
    alive "$@" || return 0
    log "stopping $1 (pid $2)"
    kill -TERM "$2" 2>/dev/null
    for ((i = 0; i < 120; i++)); do
        alive "$@" || return 0
        sleep 0.25
    done
    log "$1 (pid $2) ignored SIGTERM for 30 s: SIGKILL"
    kill -KILL "$2" 2>/dev/null
    for ((i = 0; i < 20; i++)); do
        alive "$@" || return 0
        sleep 0.25
    done
    return 1
}
pidfile_of() {
    case $1 in
    munged) echo "$RUN/munge/munged.pid" ;;
    mariadbd) echo "$RUN/mysqld/mysqld.pid" ;;
    *) echo "$RUN/slurm/$1.pid" ;;
    esac
}
targets() { # targets NAME -> "pid starttime" of each running daemon NAME of this cluster
    local pid start
    if [[ -f $REGISTRY ]]; then
        read -r pid start < <(awk -v n="$1" '$1 == n {print $2, $3}' "$REGISTRY") || pid=
        if [[ -n $pid ]] && alive "$1" "$pid" "$start"; then echo "$pid $start"; fi
    fi
    # Not (or no longer) recorded, e.g. the start script was killed right after starting
    # it: a process of that name with this cluster's mark in its environment.
    for p in $(pgrep -x "$1"); do
        if [[ $p != "${pid:-}" ]] && ours "$p"; then
            log "$1 (pid $p) is not recorded in $REGISTRY but is this cluster's"
            echo "$p $(starttime "$p")"
        fi
    done
}

[[ $(id -u) == 0 ]] || {
    log "ERROR: must run as root"
    exit 1
}

if [[ ! -d $BASE ]]; then
    log "no $BASE: nothing to stop"
    exit 0
fi
# One start or stop at a time: wait for a running start_local_slurm.sh to finish.
exec 9>"$BASE/.lock"
flock -w 900 9 || {
    log "ERROR: another start/stop of this cluster has held $BASE/.lock for 15 minutes"
    exit 1
}

# ---- jobs -----------------------------------------------------------------------------
# Cancel what is still queued or running, while slurmctld is up to do it.
if [[ -n $(targets slurmctld 2>/dev/null) ]]; then
    ids=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [[ -n ${ids// /} ]]; then
        log "cancelling jobs $ids"
        # shellcheck disable=SC2086
        timeout 10 scancel $ids 2>/dev/null
        for ((i = 0; i < 60; i++)); do
            [[ -z $(timeout 10 squeue -h -o %i 2>/dev/null) ]] && break
            sleep 0.25
        done
    fi
fi

# ---- daemons, in reverse start order --------------------------------------------------
# slurmstepd: the job steps, forked by our slurmd (they inherit its environment).
stopped=0 failed=0
for name in slurmd slurmstepd slurmctld slurmdbd mariadbd munged; do
    while read -r pid start; do
        [[ -n $pid ]] || continue
        if terminate "$name" "$pid" "$start"; then
            [[ $name == slurmstepd ]] || stopped=$((stopped + 1))
        else
            log "ERROR: could not stop $name (pid $pid)"
            failed=1
        fi
    done < <(targets "$name")
    if [[ -f $REGISTRY ]] && ! targets "$name" 2>/dev/null | grep -q .; then
        awk -v n="$name" '$1 != n' "$REGISTRY" >"$REGISTRY.tmp" && mv "$REGISTRY.tmp" "$REGISTRY"
        rm -f "$(pidfile_of "$name")"
    fi
done
if [[ -f $REGISTRY && ! -s $REGISTRY ]]; then rm -f "$REGISTRY"; fi

# The link through which job steps find this cluster's slurm.conf (start_local_slurm.sh).
if [[ -L /run/slurm/conf && $(readlink /run/slurm/conf) == "$BASE/etc" ]]; then
    rm -f /run/slurm/conf
    rmdir /run/slurm 2>/dev/null
fi

if ((failed)); then exit 1; fi
if [[ ${METAPOOL_SLURM_WIPE:-0} == 1 ]]; then
    log "deleting the cluster's state in $BASE (database, slurmctld state, spool, logs)"
    rm -rf "${BASE:?}/mysql" "$BASE/state" "$BASE/spool" "$BASE/log"
fi
if ((stopped)); then log "stopped $stopped daemons"; else log "nothing was running"; fi
