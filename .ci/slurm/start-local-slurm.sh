#!/usr/bin/env bash
# start-local-slurm.sh - bring up a REAL single-node Slurm cluster on this machine
# (adapted for evalfleet's tests from the tested starter in the project's shared tools)
# (munged + slurmctld + slurmd, optionally MariaDB + slurmdbd so that `sacct` works),
# from Debian 12 packages, as plain background daemons (no systemd).
#
# Usage:  start-local-slurm.sh [STATE_DIR]        (run as root)
#   STATE_DIR  default: $LOCAL_SLURM_DIR or /tmp/local-slurm
#              everything (config, keys, spool, logs, PID files) lives under it.
#
# Environment knobs (all optional):
#   LOCAL_SLURM_ACCOUNTING=1   also install/start MariaDB + slurmdbd (real `sacct`); default 0
#   LOCAL_SLURM_RESTD=1        also install/start slurmrestd on unix socket STATE_DIR/run/slurmrestd.sock
#                              (rest_auth/local, e.g. curl --unix-socket ... http://x/slurm/v0.0.38/ping)
#   LOCAL_SLURM_PMIX=1         install libpmix2 so `srun --mpi=pmix` works (Debian's mpi_pmix plugin
#                              dlopen()s pmix2/lib/libpmix.so, which only libpmix-dev ships: we add
#                              that one symlink instead of pulling autoconf & co. via libpmix-dev)
#   LOCAL_SLURM_CPUS=N         advertise N CPUs instead of the real count (more concurrent
#                              1-CPU jobs; uses SlurmdParameters=config_overrides)
#   LOCAL_SLURM_CTLD_PORT=6817 LOCAL_SLURM_SLURMD_PORT=6818 LOCAL_SLURM_DBD_PORT=6819
#   LOCAL_SLURM_MYSQL_PORT=3307
#   LOCAL_SLURM_LINK_ETC=1     symlink /etc/slurm/slurm.conf -> STATE_DIR/etc/slurm.conf if that
#                              path is absent, dangling or already ours, so clients need no
#                              SLURM_CONF (stop-local-slurm.sh removes the link again); 0 = never
#   LOCAL_SLURM_EXTRA_CONF=..  lines appended to slurm.conf (e.g. a second partition)
#   LOCAL_SLURM_NO_INSTALL=1   never run apt-get (fail if binaries are missing)
#   LOCAL_SLURM_TIMEOUT=60     seconds to wait for the node to become idle
#
# Idempotent: daemons already running from this STATE_DIR (checked via their PID files,
# process name and command line) are left alone; config is only (re)written when none of
# the Slurm daemons of this STATE_DIR is running.
# Prints `export SLURM_CONF=...` on stdout at the end (also written to STATE_DIR/env.sh).
set -euo pipefail

STATE=${1:-${LOCAL_SLURM_DIR:-/tmp/local-slurm}}
STATE=$(realpath -m -- "$STATE")
ACCOUNTING=${LOCAL_SLURM_ACCOUNTING:-0}
RESTD=${LOCAL_SLURM_RESTD:-0}
PMIX=${LOCAL_SLURM_PMIX:-0}
CTLD_PORT=${LOCAL_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${LOCAL_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${LOCAL_SLURM_DBD_PORT:-6819}
MYSQL_PORT=${LOCAL_SLURM_MYSQL_PORT:-3307}
LINK_ETC=${LOCAL_SLURM_LINK_ETC:-1}
TIMEOUT=${LOCAL_SLURM_TIMEOUT:-60}
CLUSTER=localci
NODE=localhost
PARTITION=debug

CONF=$STATE/etc/slurm.conf
DBDCONF=$STATE/etc/slurmdbd.conf
MSOCK=$STATE/munge/munge.socket
export SLURM_CONF=$CONF

log() { echo "[local-slurm $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ ${#MSOCK} -lt 100 ] || die "state dir path too long for a unix socket: $STATE"

# ---------------------------------------------------------------- install
need=()
for b in slurmctld slurmd sbatch munged; do command -v "$b" >/dev/null 2>&1 || need+=("$b"); done
if [ "$ACCOUNTING" = 1 ]; then
  for b in slurmdbd mariadbd mariadb-install-db; do command -v "$b" >/dev/null 2>&1 || need+=("$b"); done
  [ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/accounting_storage_mysql.so ] || ls /usr/lib/*/slurm-wlm/accounting_storage_mysql.so >/dev/null 2>&1 || need+=(mysql-plugin)
fi
if [ "$RESTD" = 1 ]; then command -v slurmrestd >/dev/null 2>&1 || need+=(slurmrestd); fi
PMIXDIR=/usr/lib/$(uname -m)-linux-gnu/pmix2/lib
if [ "$PMIX" = 1 ]; then [ -e "$PMIXDIR/libpmix.so.2" ] || need+=(libpmix2); fi
if [ ${#need[@]} -gt 0 ]; then
  [ "${LOCAL_SLURM_NO_INSTALL:-0}" = 1 ] && die "missing: ${need[*]} and LOCAL_SLURM_NO_INSTALL=1"
  pkgs=(slurmctld slurmd slurm-client munge)
  [ "$ACCOUNTING" = 1 ] && pkgs+=(slurmdbd slurm-wlm-mysql-plugin mariadb-server)
  [ "$RESTD" = 1 ] && pkgs+=(slurmrestd)
  [ "$PMIX" = 1 ] && pkgs+=(libpmix2)
  log "installing ${pkgs[*]} (missing: ${need[*]})"
  t0=$(date +%s)
  # Keep package maintainer scripts from starting system-wide services (Docker-style
  # policy-rc.d); only created if absent, removed again right after.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${pkgs[@]}"
  } >"/tmp/local-slurm-apt.$$.log" 2>&1 || rc=$?
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || { tail -30 "/tmp/local-slurm-apt.$$.log" >&2; die "apt-get failed (rc=$rc)"; }
  rm -f "/tmp/local-slurm-apt.$$.log"
  log "install done in $(( $(date +%s) - t0 ))s"
fi

if [ "$PMIX" = 1 ] && [ ! -e "$PMIXDIR/libpmix.so" ]; then
  ln -s libpmix.so.2 "$PMIXDIR/libpmix.so"
  log "created $PMIXDIR/libpmix.so -> libpmix.so.2 (restart slurmd if it was already running)"
fi

# ---------------------------------------------------------------- helpers
# is_ours PIDFILE NAME -> prints pid and returns 0 if PIDFILE names a live process called
# NAME whose command line mentions this STATE dir (guards against PID reuse / foreign daemons).
# alive PID: exists and is not a zombie (PID 1 of this VM reaps orphans lazily)
alive() { local st; st=$(sed -n 's/.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1; [ -n "$st" ] && [ "$st" != Z ]; }
is_ours() {
  local pf=$1 name=$2 pid
  [ -s "$pf" ] || return 1
  pid=$(tr -dc '0-9' < "$pf"); [ -n "$pid" ] || return 1
  alive "$pid" || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  # our daemons carry STATE_DIR in their command line (slurmdbd, which has no -f option,
  # in its SLURM_CONF environment variable)
  cat "/proc/$pid/cmdline" "/proc/$pid/environ" 2>/dev/null | tr '\0' '\n' | grep -qF -- "$STATE/" || return 1
  echo "$pid"
}
wait_pidfile() { # PIDFILE NAME SECONDS LOGFILE
  local i
  for ((i = 0; i < $3 * 10; i++)); do is_ours "$1" "$2" >/dev/null && return 0; sleep 0.1; done
  log "$2 did not come up; last lines of $4:"; tail -25 "$4" >&2 || true
  return 1
}

mkdir -p "$STATE"/{etc,run,log,spool/ctld,spool/d,munge}
chmod 755 "$STATE" "$STATE/etc" "$STATE/log"
touch "$STATE/.local-slurm"        # marker: stop --purge only deletes dirs carrying it

# ---------------------------------------------------------------- munge
chown munge:munge "$STATE/munge"; chmod 755 "$STATE/munge"
if [ ! -s "$STATE/munge/munge.key" ]; then
  dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
fi
chown munge:munge "$STATE/munge/munge.key"; chmod 400 "$STATE/munge/munge.key"
if pid=$(is_ours "$STATE/munge/munged.pid" munged); then
  log "munged already running (pid $pid)"
else
  rm -f "$STATE/munge/munged.pid"
  runuser -u munge -- /usr/sbin/munged --force \
    --socket="$MSOCK" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" \
    --seed-file="$STATE/munge/munged.seed"
  wait_pidfile "$STATE/munge/munged.pid" munged 10 "$STATE/munge/munged.log" || die "munged failed"
  log "munged started (pid $(cat "$STATE/munge/munged.pid"))"
fi
munge -n -S "$MSOCK" | unmunge -S "$MSOCK" >/dev/null || die "munge self-test failed"

# ---------------------------------------------------------------- config
ctld_pid=$(is_ours "$STATE/run/slurmctld.pid" slurmctld || true)
slurmd_pid=$(is_ours "$STATE/run/slurmd.pid" slurmd || true)
dbd_pid=$(is_ours "$STATE/run/slurmdbd.pid" slurmdbd || true)
if [ -z "$ctld_pid$slurmd_pid$dbd_pid" ] || [ ! -s "$CONF" ]; then
  hw=$(slurmd -C | head -1)            # NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 ...
  get() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  mem=$(get RealMemory)
  if [ -n "${LOCAL_SLURM_CPUS:-}" ]; then
    nodehw="CPUs=$LOCAL_SLURM_CPUS RealMemory=$mem"
    overrides="SlurmdParameters=config_overrides"
  else
    nodehw="CPUs=$(get CPUs) Boards=$(get Boards) SocketsPerBoard=$(get SocketsPerBoard) CoresPerSocket=$(get CoresPerSocket) ThreadsPerCore=$(get ThreadsPerCore) RealMemory=$mem"
    overrides="#SlurmdParameters=config_overrides"
  fi
  if [ "$ACCOUNTING" = 1 ]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# munge socket used towards slurmdbd (default would be /run/munge/munge.socket.2)
AccountingStoragePass=$MSOCK
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
  else
    acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
  fi
  cat > "$CONF.new" <<EOF
# generated by start-local-slurm.sh - single node, no cgroups, no systemd
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MSOCK
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# default batch_sched_delay=3s made job starts take 1-3s; with 0 they start within ~1s
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MpiDefault=none
$acct
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
# keep finished jobs visible to scontrol/squeue -t all for 1h
MinJobAge=3600
DependencyParameters=kill_invalid_depend
ReturnToService=2
KillWait=5
InactiveLimit=0
MailProg=/bin/true
$overrides
NodeName=$NODE NodeAddr=127.0.0.1 $nodehw State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
${LOCAL_SLURM_EXTRA_CONF:-}
EOF
  mv "$CONF.new" "$CONF"
  chmod 644 "$CONF"
  log "wrote $CONF"
else
  log "Slurm daemons already running, keeping existing $CONF"
fi

# ---------------------------------------------------------------- accounting (optional)
if [ "$ACCOUNTING" = 1 ]; then
  MY=$STATE/mysql
  mkdir -p "$MY/data"; chown -R mysql:mysql "$MY"; chmod 750 "$MY"
  if [ ! -d "$MY/data/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$MY/data" --auth-root-authentication-method=socket \
      --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 || { tail "$STATE/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
  fi
  if pid=$(is_ours "$MY/mariadbd.pid" mariadbd); then
    log "mariadbd already running (pid $pid)"
  else
    rm -f "$MY/mariadbd.pid"
    setsid mariadbd --no-defaults --user=mysql --datadir="$MY/data" --socket="$MY/mysqld.sock" \
      --pid-file="$MY/mariadbd.pid" --log-error="$STATE/log/mariadb.log" \
      --bind-address=127.0.0.1 --port="$MYSQL_PORT" --skip-name-resolve \
      --innodb-buffer-pool-size=32M --innodb-log-file-size=16M \
      --innodb-lock-wait-timeout=900 --performance-schema=OFF \
      </dev/null >/dev/null 2>&1 &
    wait_pidfile "$MY/mariadbd.pid" mariadbd 30 "$STATE/log/mariadb.log" || die "mariadbd failed"
    for ((i = 0; i < 100; i++)); do mariadb -S "$MY/mysqld.sock" -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
    log "mariadbd started (pid $(cat "$MY/mariadbd.pid"))"
  fi
  mariadb -S "$MY/mysqld.sock" -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || die "mariadb user setup failed"
  cat > "$DBDCONF" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MSOCK
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DBDCONF"
  if pid=$(is_ours "$STATE/run/slurmdbd.pid" slurmdbd); then
    log "slurmdbd already running (pid $pid)"
  else
    rm -f "$STATE/run/slurmdbd.pid"
    # slurmdbd has no -f: it reads slurmdbd.conf next to $SLURM_CONF
    SLURM_CONF=$CONF slurmdbd
    wait_pidfile "$STATE/run/slurmdbd.pid" slurmdbd 30 "$STATE/log/slurmdbd.log" || die "slurmdbd failed"
    for ((i = 0; i < 100; i++)); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.2; done
    log "slurmdbd started (pid $(cat "$STATE/run/slurmdbd.pid"))"
  fi
  sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" ||
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed"
fi

# ---------------------------------------------------------------- slurmctld / slurmd
if pid=$(is_ours "$STATE/run/slurmctld.pid" slurmctld); then
  log "slurmctld already running (pid $pid)"
else
  rm -f "$STATE/run/slurmctld.pid"
  slurmctld -f "$CONF"
  wait_pidfile "$STATE/run/slurmctld.pid" slurmctld 20 "$STATE/log/slurmctld.log" || die "slurmctld failed"
  log "slurmctld started (pid $(cat "$STATE/run/slurmctld.pid"))"
fi
if pid=$(is_ours "$STATE/run/slurmd.pid" slurmd); then
  log "slurmd already running (pid $pid)"
else
  rm -f "$STATE/run/slurmd.pid"
  slurmd -f "$CONF" -N "$NODE"
  wait_pidfile "$STATE/run/slurmd.pid" slurmd 20 "$STATE/log/slurmd.log" || die "slurmd failed"
  log "slurmd started (pid $(cat "$STATE/run/slurmd.pid"))"
fi

# ---------------------------------------------------------------- slurmrestd (optional)
if [ "$RESTD" = 1 ]; then
  if pid=$(is_ours "$STATE/run/slurmrestd.pid" slurmrestd); then
    log "slurmrestd already running (pid $pid)"
  else
    rm -f "$STATE/run/slurmrestd.pid" "$STATE/run/slurmrestd.sock"
    # slurmrestd refuses to run as root unless told otherwise; it does not daemonize itself
    SLURMRESTD_SECURITY=disable_user_check setsid slurmrestd -f "$CONF" -a rest_auth/local \
      "unix:$STATE/run/slurmrestd.sock" </dev/null >>"$STATE/log/slurmrestd.log" 2>&1 &
    echo $! > "$STATE/run/slurmrestd.pid"
    for ((i = 0; i < 100; i++)); do [ -S "$STATE/run/slurmrestd.sock" ] && break; sleep 0.1; done
    is_ours "$STATE/run/slurmrestd.pid" slurmrestd >/dev/null && [ -S "$STATE/run/slurmrestd.sock" ] ||
      { tail "$STATE/log/slurmrestd.log" >&2; die "slurmrestd failed"; }
    log "slurmrestd started (pid $(cat "$STATE/run/slurmrestd.pid")), socket $STATE/run/slurmrestd.sock"
  fi
fi

# ---------------------------------------------------------------- client config location
if [ "$LINK_ETC" = 1 ]; then
  mkdir -p /etc/slurm
  # take /etc/slurm/X only if it is absent, a dangling symlink, or already points to us
  link_ok() { [ ! -e "$1" ] || [ "$(readlink "$1" 2>/dev/null)" = "$2" ]; }
  if link_ok /etc/slurm/slurm.conf "$CONF"; then
    ln -sfn "$CONF" /etc/slurm/slurm.conf
    if [ "$ACCOUNTING" = 1 ] && link_ok /etc/slurm/slurmdbd.conf "$DBDCONF"; then
      ln -sfn "$DBDCONF" /etc/slurm/slurmdbd.conf
    fi
  else
    log "NOTE: /etc/slurm/slurm.conf exists and is not ours; not touching it - export SLURM_CONF=$CONF"
  fi
fi
echo "export SLURM_CONF=$CONF" > "$STATE/env.sh"

# ---------------------------------------------------------------- wait for idle node
resumed=0
for ((i = 0; i < TIMEOUT * 5; i++)); do
  st=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1 || true)
  case $st in
    idle|mixed|allocated|completing) break ;;
    down*|drain*|fail*)
      if [ $resumed = 0 ] && [ $i -gt 10 ]; then
        log "node state '$st', trying RESUME"; scontrol update NodeName="$NODE" State=RESUME || true; resumed=1
      fi ;;
  esac
  sleep 0.2
done
case $st in
  idle|mixed|allocated|completing) log "node $NODE is $st - cluster ready (state dir $STATE)" ;;
  *) tail -20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
     die "node $NODE not ready after ${TIMEOUT}s (state '$st')" ;;
esac
echo "export SLURM_CONF=$CONF"
