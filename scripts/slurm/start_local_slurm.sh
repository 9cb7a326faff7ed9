#!/usr/bin/env bash
# start_local_slurm.sh - a real single-node SLURM cluster on this machine, for testing
# metapool's SLURM profile (tests/test_slurm.py) on Debian/Ubuntu, as root, without
# systemd.
#
#   munged -> mariadbd -> slurmdbd -> slurmctld -> slurmd
#
# What it does, in order:
#   1. installs the Debian packages that are missing (munge, mariadb-server, slurmctld,
#      slurmd, slurmdbd, slurm-client), waiting for the dpkg lock if another apt-get
#      runs, with service start-up disabled during the install;
#   2. writes every config, key, database, state, log and pid file into one dedicated
#      directory, $METAPOOL_SLURM_DIR (default /var/lib/metapool-slurm): its own munge
#      key and socket, its own MariaDB data directory on a unix socket only
#      (--skip-networking), its own slurm.conf (cgroup-free, 127.0.0.1 only) and
#      slurmdbd.conf (owner slurm, mode 0600). Outside it: only the link
#      /run/slurm/conf -> $METAPOOL_SLURM_DIR/etc, for the job steps (see step 5).
#      Nothing in /etc is written and no system service is touched;
#   3. starts the daemons above in that order, each only if it is not already running
#      (one start or stop at a time: they wait for each other's lock, $METAPOOL_SLURM_DIR/.lock),
#      and records each one's PID (with its start time) in $METAPOOL_SLURM_DIR/run/daemons,
#      so that stop_local_slurm.sh stops exactly these processes. Every daemon also
#      carries METAPOOL_SLURM_DIR=<the directory> in its environment (so do the job
#      steps slurmd forks): the stop script's check that a process is this cluster's;
#   4. waits until `sinfo` shows the node idle and the cluster and the account exist in
#      slurmdbd, then runs a job (`sbatch --wait`) and waits until `sacct` lists it.
#
# Idempotent: a second call only checks; when a generated config changed, the daemons
# that read it are restarted. Ends by printing the shell line that points the SLURM
# commands at this cluster: `export SLURM_CONF=$METAPOOL_SLURM_DIR/etc/slurm.conf`
# (also in $METAPOOL_SLURM_DIR/env.sh; sbatch, srun, sinfo, sacct and the Snakemake
# plugin all need it).
#
# Settings (environment variables):
#   METAPOOL_SLURM_DIR        dedicated directory       (/var/lib/metapool-slurm)
#   METAPOOL_SLURM_PARTITION  the partition, Default=YES (debug)
#   METAPOOL_SLURM_ACCOUNT    account created for root   (metapool)
#   METAPOOL_SLURM_PORT       slurmctld port; slurmd and slurmdbd use the next two (6817)
#   METAPOOL_SLURM_NO_APT=1   never call apt-get: fail if a package is missing
#
# Stop: scripts/slurm/stop_local_slurm.sh (same settings).
set -euo pipefail

BASE=${METAPOOL_SLURM_DIR:-/var/lib/metapool-slurm}
PARTITION=${METAPOOL_SLURM_PARTITION:-debug}
ACCOUNT=${METAPOOL_SLURM_ACCOUNT:-metapool}
CTLD_PORT=${METAPOOL_SLURM_PORT:-6817}
SLURMD_PORT=$((CTLD_PORT + 1))
DBD_PORT=$((CTLD_PORT + 2))
CLUSTER=metapool
NODE=$(hostname -s)
PACKAGES=(munge mariadb-server slurmctld slurmd slurmdbd slurm-client)

ETC=$BASE/etc
RUN=$BASE/run
LOG=$BASE/log
REGISTRY=$RUN/daemons            # "name pid starttime" of every daemon started here
MUNGE_SOCKET=$RUN/munge/munge.socket
DB_SOCKET=$RUN/mysqld/mysqld.sock
DB_PASS=metapool-local           # the database listens on its unix socket only

log() { printf '[start_local_slurm %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# ---- process bookkeeping --------------------------------------------------------------
# A daemon counts as ours when its PID, command name and start time (field 22 of
# /proc/PID/stat, clock ticks since boot) match what was recorded: a recycled PID does not.
starttime() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }
comm_of() { cat "/proc/$1/comm" 2>/dev/null; }
recorded() { # recorded NAME -> "pid starttime" or nothing
    if [[ -f $REGISTRY ]]; then awk -v n="$1" '$1 == n {print $2, $3}' "$REGISTRY"; fi
}
running() { # running NAME: the recorded process is still the one we started
    local pid start
    read -r pid start < <(recorded "$1") || return 1
    [[ -n $pid ]] && [[ $(comm_of "$pid") == "$1" ]] && [[ $(starttime "$pid") == "$start" ]]
}
record() { # record NAME PID
    local tmp
    tmp=$(mktemp "$RUN/.daemons.XXXXXX")
    { [[ -f $REGISTRY ]] && awk -v n="$1" '$1 != n' "$REGISTRY"; } >"$tmp" || true
    echo "$1 $2 $(starttime "$2")" >>"$tmp"
    mv "$tmp" "$REGISTRY"
}
waitfor() { # waitfor SECONDS COMMAND...: until COMMAND succeeds (each try at most 10 s)
    local deadline=$((SECONDS + $1))
    shift
    while ((SECONDS < deadline)); do
        if timeout -k 2 10 "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    return 1
}
pid_from() { # pid_from PIDFILE NAME SECONDS -> PID once the daemon wrote its pidfile
    local pidfile=$1 name=$2 i pid
    for ((i = 0; i < $3 * 4; i++)); do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [[ $pid =~ ^[0-9]+$ ]] && [[ $(comm_of "$pid") == "$name" ]]; then
            echo "$pid"
            return 0
        fi
        sleep 0.25
    done
    return 1
}
logtail() { tail -n 15 "$1" 2>/dev/null | sed 's/^/    /' >&2 || true; }
stop_recorded() { # stop_recorded NAME: stop our process (to restart it with a new config)
    local pid start i
    running "$1" || return 0
    read -r pid start < <(recorded "$1")
    log "restarting $1 (pid $pid): its config changed"
    kill -TERM "$pid"
    for ((i = 0; i < 120; i++)); do
        [[ $(starttime "$pid") == "$start" ]] || return 0
        sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
}

[[ $(id -u) == 0 ]] || die "must run as root (it installs packages and starts daemons)"
[[ $BASE == /* ]] || die "METAPOOL_SLURM_DIR must be an absolute path: $BASE"
[[ $PARTITION =~ ^[A-Za-z0-9_-]+$ ]] || die "bad METAPOOL_SLURM_PARTITION: $PARTITION"
[[ $ACCOUNT =~ ^[a-z0-9_-]+$ ]] || die "bad METAPOOL_SLURM_ACCOUNT (lower case): $ACCOUNT"
[[ $CTLD_PORT =~ ^[0-9]+$ ]] || die "bad METAPOOL_SLURM_PORT: $CTLD_PORT"

# One start or stop at a time: a second caller waits for the first to finish.
install -d -m 0755 -o root -g root "$BASE"
exec 9>"$BASE/.lock"
flock -w 900 9 || die "another start/stop of this cluster has held $BASE/.lock for 15 minutes"

# ---- 1. packages ----------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
if ((${#missing[@]})); then
    [[ ${METAPOOL_SLURM_NO_APT:-0} == 1 ]] && die "missing packages: ${missing[*]}"
    command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get"
    log "installing ${missing[*]}"
    # Without systemd, the packages' maintainer scripts would start munged and a system
    # MariaDB through their init scripts: deny that for the install (policy-rc.d exit
    # 101), unless a policy is in place already.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, from metapool start_local_slurm.sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        own_policy=1
        trap 'if [[ $own_policy == 1 ]]; then rm -f "$policy"; fi' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    aptlog=$BASE/apt.log
    # Lock::Timeout: wait for the dpkg/apt locks if another apt-get is running.
    apt=(apt-get -q -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    for attempt in 1 2 3; do
        "${apt[@]}" update >"$aptlog" 2>&1 && break
        log "apt-get update failed (attempt $attempt), retrying in 10 s:"
        logtail "$aptlog"
        sleep 10
    done
    "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >>"$aptlog" 2>&1 || {
        logtail "$aptlog"
        die "apt-get install ${missing[*]} failed (full log: $aptlog)"
    }
    if ((own_policy)); then rm -f "$policy"; own_policy=0; fi
    log "installed: $(dpkg-query -W -f='${Package} ${Version}, ' "${missing[@]}")"
fi
for user in munge slurm mysql; do
    id -u "$user" >/dev/null 2>&1 || die "user $user does not exist (package scripts failed?)"
done

# The plugin starts each rule inside its SLURM job with `srun`, after removing every
# SLURM_* variable, SLURM_CONF included, from srun's environment. srun then looks for
# /etc/slurm/slurm.conf, then /run/slurm/conf/slurm.conf: the link that a "configless"
# slurmd keeps to its copy of the cluster's config. This script makes that link to
# $METAPOOL_SLURM_DIR/etc (step 5) and stop_local_slurm.sh removes it; so this machine
# must not be a client of another cluster, nor run another configless slurmd.
[[ ! -e /etc/slurm/slurm.conf ]] ||
    die "/etc/slurm/slurm.conf exists: job steps would use that cluster, not this one"
if [[ -e /run/slurm/conf || -L /run/slurm/conf ]] &&
    [[ $(readlink /run/slurm/conf) != "$ETC" ]]; then
    die "/run/slurm/conf belongs to another slurmd: $(readlink /run/slurm/conf)"
fi

# ---- 2. the dedicated directory -------------------------------------------------------
install -d -m 0755 -o root -g root "$BASE" "$ETC" "$RUN" "$BASE/spool"
install -d -m 0755 -o slurm -g slurm "$LOG" "$RUN/slurm" "$BASE/state"
install -d -m 0700 -o munge -g munge "$BASE/munge"      # key, seed, log of munged
install -d -m 0755 -o munge -g munge "$RUN/munge"       # its socket: every user connects
install -d -m 0750 -o mysql -g mysql "$BASE/mysql"      # MariaDB data
install -d -m 0755 -o mysql -g mysql "$RUN/mysqld"
export SLURM_CONF=$ETC/slurm.conf
# Every daemon (and every job step slurmd forks) carries this in its environment.
export METAPOOL_SLURM_DIR=$BASE

# ---- 3. munged ------------------------------------------------------------------------
if [[ ! -s $BASE/munge/munge.key ]]; then
    log "creating a munge key for this cluster"
    mungekey --create --keyfile="$BASE/munge/munge.key" ||
        dd if=/dev/urandom of="$BASE/munge/munge.key" bs=1024 count=1 status=none
fi
chown munge:munge "$BASE/munge/munge.key"
chmod 0400 "$BASE/munge/munge.key"        # munged refuses a key others can read
if ! running munged; then
    log "starting munged"
    rm -f "$RUN/munge/munged.pid"
    runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" \
        --key-file="$BASE/munge/munge.key" --seed-file="$BASE/munge/munged.seed" \
        --log-file="$BASE/munge/munged.log" --pid-file="$RUN/munge/munged.pid" 9>&- ||
        { logtail "$BASE/munge/munged.log"; die "munged did not start"; }
    pid=$(pid_from "$RUN/munge/munged.pid" munged 15) ||
        { logtail "$BASE/munge/munged.log"; die "munged wrote no pidfile"; }
    record munged "$pid"
fi
waitfor 15 bash -c "munge -S '$MUNGE_SOCKET' -n </dev/null | unmunge -S '$MUNGE_SOCKET'" || die "munge round trip fails on $MUNGE_SOCKET"

# ---- 4. MariaDB (unix socket only) ----------------------------------------------------
mysql_client=(mariadb --no-defaults --protocol=socket --socket="$DB_SOCKET" -u root)
if ! running mariadbd; then
    if [[ ! -d $BASE/mysql/mysql ]]; then
        log "initialising the MariaDB data directory"
        mariadb-install-db --no-defaults --user=mysql --datadir="$BASE/mysql" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG/mariadb-install-db.log" 2>&1 ||
            { logtail "$LOG/mariadb-install-db.log"; die "mariadb-install-db failed"; }
    fi
    log "starting mariadbd (unix socket $DB_SOCKET, no TCP)"
    rm -f "$RUN/mysqld/mysqld.pid"
    # --no-defaults: ignore /etc/mysql (a system MariaDB's settings are not ours)
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$BASE/mysql" \
        --socket="$DB_SOCKET" --pid-file="$RUN/mysqld/mysqld.pid" --skip-networking \
        --log-error="$LOG/mariadbd.log" --innodb-buffer-pool-size=1G \
        --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 9>&- &
    pid=$(pid_from "$RUN/mysqld/mysqld.pid" mariadbd 60) ||
        { logtail "$LOG/mariadbd.log"; die "mariadbd did not start"; }
    record mariadbd "$pid"
fi
waitfor 60 "${mysql_client[@]}" -e 'SELECT 1' ||
    { logtail "$LOG/mariadbd.log"; die "mariadbd does not answer on $DB_SOCKET"; }
"${mysql_client[@]}" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL

# ---- 5. configs -----------------------------------------------------------------------
# The node as slurmd detects it: declaring more CPUs or memory than it has would drain it.
read -r CPUS SOCKETS CORES THREADS MEM < <(slurmd -C | head -n 1 | tr ' ' '\n' | awk -F= '
    /^CPUs=/ {c = $2} /^SocketsPerBoard=/ {s = $2} /^CoresPerSocket=/ {k = $2}
    /^ThreadsPerCore=/ {t = $2} /^RealMemory=/ {m = $2} END {print c, s, k, t, m}')
[[ $CPUS =~ ^[0-9]+$ && $MEM =~ ^[0-9]+$ ]] || die "could not read CPUs/memory from 'slurmd -C'"

write_conf() { # write_conf FILE OWNER MODE < content; exit status 0 when it changed
    local file=$1 new
    new=$(cat)
    if [[ -f $file ]] && [[ $(cat "$file") == "$new" ]]; then
        chown "$2" "$file"
        chmod "$3" "$file"
        return 1
    fi
    log "writing $file"
    install -m "$3" -o "${2%%:*}" -g "${2##*:}" /dev/null "$file"
    printf '%s\n' "$new" >"$file"
    return 0
}

slurm_changed=0
write_conf "$ETC/slurm.conf" root:root 0644 <<EOF && slurm_changed=1
# Generated by metapool scripts/slurm/start_local_slurm.sh: a one-node test cluster.
ClusterName=$CLUSTER
# No DNS needed: the controller and the node are this machine at 127.0.0.1.
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
MpiDefault=none
# No cgroups (containers, no systemd): track processes through /proc only.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# Accounting through slurmdbd, so that sacct (the plugin's status command) works.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# For auth/munge this is the munge socket used on connections to slurmdbd.
AccountingStoragePass=$MUNGE_SOCKET
JobCompType=jobcomp/none
# Keep the job comment (the plugin's rule/group name) in the database, for sacct.
AccountingStoreFlags=job_comment
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A node left down by an unclean stop comes back by itself.
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$RUN/slurm/slurmctld.pid
SlurmdPidFile=$RUN/slurm/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Boards=1 SocketsPerBoard=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEM State=UNKNOWN
# DefMemPerCPU: without it a job that gives no --mem takes all the node's memory.
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=1000
EOF

dbd_changed=0
# slurmdbd refuses a slurmdbd.conf that is not owned by SlurmUser with mode 0600.
write_conf "$ETC/slurmdbd.conf" slurm:slurm 0600 <<EOF && dbd_changed=1
# Generated by metapool scripts/slurm/start_local_slurm.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=slurm
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF

cat >"$BASE/env.sh" <<EOF
# Point the SLURM commands (sbatch, srun, sinfo, sacct, scontrol) at the metapool test
# cluster: source this file. Written by scripts/slurm/start_local_slurm.sh.
export SLURM_CONF=$ETC/slurm.conf
EOF

install -d -m 0755 /run/slurm
ln -sfn "$ETC" /run/slurm/conf

if ((dbd_changed)); then stop_recorded slurmdbd; fi
if ((slurm_changed)); then
    stop_recorded slurmd
    stop_recorded slurmctld
fi

# ---- 6. slurmdbd ----------------------------------------------------------------------
if ! running slurmdbd; then
    log "starting slurmdbd"
    rm -f "$RUN/slurm/slurmdbd.pid"
    # slurmdbd reads slurmdbd.conf next to $SLURM_CONF; MYSQL_UNIX_PORT points the
    # MariaDB client library at our socket.
    MYSQL_UNIX_PORT=$DB_SOCKET slurmdbd 9>&- ||
        { logtail "$LOG/slurmdbd.log"; die "slurmdbd did not start"; }
    pid=$(pid_from "$RUN/slurm/slurmdbd.pid" slurmdbd 60) ||
        { logtail "$LOG/slurmdbd.log"; die "slurmdbd wrote no pidfile"; }
    record slurmdbd "$pid"
fi
waitfor 60 sacctmgr -n list cluster ||
    { logtail "$LOG/slurmdbd.log"; die "slurmdbd does not answer (sacctmgr list cluster)"; }

# ---- 7. slurmctld and slurmd ----------------------------------------------------------
if ! running slurmctld; then
    log "starting slurmctld"
    rm -f "$RUN/slurm/slurmctld.pid"
    slurmctld 9>&- || { logtail "$LOG/slurmctld.log"; die "slurmctld did not start"; }
    pid=$(pid_from "$RUN/slurm/slurmctld.pid" slurmctld 60) ||
        { logtail "$LOG/slurmctld.log"; die "slurmctld wrote no pidfile"; }
    record slurmctld "$pid"
fi
waitfor 60 bash -c 'scontrol ping | grep -q UP' ||
    { logtail "$LOG/slurmctld.log"; die "slurmctld does not answer (scontrol ping)"; }
if ! running slurmd; then
    log "starting slurmd"
    rm -f "$RUN/slurm/slurmd.pid"
    # -N: the node name, without looking the host name up
    slurmd -N "$NODE" 9>&- || { logtail "$LOG/slurmd.log"; die "slurmd did not start"; }
    pid=$(pid_from "$RUN/slurm/slurmd.pid" slurmd 60) ||
        { logtail "$LOG/slurmd.log"; die "slurmd wrote no pidfile"; }
    record slurmd "$pid"
fi

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null || true; }
for ((i = 0; i < 240; i++)); do
    state=$(node_state)
    [[ $state == idle || $state == mixed || $state == allocated ]] && break
    # a node left down or drained by an earlier unclean stop: put it back
    if [[ $state == down* || $state == drain* ]]; then
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 0.25
done
[[ $state == idle || $state == mixed || $state == allocated ]] || {
    logtail "$LOG/slurmd.log"
    die "node $NODE is '$state', not idle: $(sinfo -h -N -o '%N %T %E')"
}

# ---- 8. accounting: cluster (registered by slurmctld itself) and account -------------
waitfor 60 \
    bash -c "sacctmgr -n -P list cluster format=cluster | grep -qx $CLUSTER" ||
    { logtail "$LOG/slurmctld.log"; die "slurmctld did not register cluster $CLUSTER"; }
sacctmgr -n -P list account "$ACCOUNT" format=account | grep -qx "$ACCOUNT" ||
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
        Description="metapool tests" Organization=metapool >/dev/null
sacctmgr -n -P -s list user root format=account | grep -qx "$ACCOUNT" ||
    sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null

# ---- 9. a job runs, and sacct lists it ------------------------------------------------
jobid=$(timeout 60 sbatch --parsable -p "$PARTITION" -A "$ACCOUNT" -J metapool-smoke \
    -n 1 -t 1 --mem=50 -o /dev/null --wait --wrap true) ||
    die "a trivial job did not run: sbatch --wait failed"
jobid=${jobid%%;*}
waitfor 30 bash -c \
    "sacct -n -X -P -j $jobid -o State | grep -qx COMPLETED" ||
    die "sacct does not list job $jobid as COMPLETED: $(sacct -j "$jobid" 2>&1 | tail -n 3)"

log "cluster up: node $NODE ($CPUS CPUs, $MEM MB), partition $PARTITION, account $ACCOUNT;" \
    "job $jobid ran and sacct lists it"
echo "export SLURM_CONF=$ETC/slurm.conf"
