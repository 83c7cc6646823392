#!/usr/bin/env bash
# A real one-node Slurm cluster (with accounting, which submitit needs) on a Debian machine, as root,
# without systemd: for trying the cluster path locally and for the integration tests.
#
#   slurm/cluster.sh install   apt packages (munge, slurmctld, slurmd, client, slurmdbd, mariadb)
#   slurm/cluster.sh start     idempotent: starts what is not running, waits until the node is idle
#   slurm/cluster.sh status    daemons and sinfo
#   slurm/cluster.sh stop      stops the daemons by PID (never by name)
#   slurm/cluster.sh purge     stop, then wipe controller state AND the accounting database together
#
# Facts behind each setting: docs/sources.md, "A one-node Slurm cluster" (accounting for sacct, fast requeue, start order).
set -euo pipefail

STATE=${SEQBENCH_SLURM_STATE:-/var/lib/seqbench-slurm}
CONF=/etc/slurm
NODE=$(hostname -s)
CLUSTER=seqbench
PIDS=$STATE/pids

log() { echo "[cluster] $*" >&2; }

need_root() { [ "$(id -u)" = 0 ] || { log "must run as root (starts system daemons)"; exit 2; }; }

install() {
  need_root
  export DEBIAN_FRONTEND=noninteractive
  if command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null; then
    log "packages already installed"; return
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client slurmdbd mariadb-server >/dev/null
  log "installed $(slurmctld -V)"
}

alive() {  # alive NAME: the PID in $PIDS/NAME.pid runs a process whose comm starts with NAME
  local file=$PIDS/$1.pid pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [[ "$(cat /proc/$pid/comm)" == "$1"* ]]
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "timed out waiting for $what"; return 1
}

write_config() {
  mkdir -p "$CONF" "$STATE"/{ctld,d,pids} /var/log/slurm /run/slurm
  local hw
  hw=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //; s/ UpTime=.*//')
  cat > "$CONF/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=1
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
NodeName=$NODE NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  cat > "$CONF/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=seqbench
StorageLoc=slurm_acct_db
PidFile=$PIDS/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
EOF
  chmod 600 "$CONF/slurmdbd.conf"
}

start_munge() {
  mkdir -p /run/munge && chown munge:munge /run/munge
  [ -s /etc/munge/munge.key ] || { /usr/sbin/mungekey --create >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    wait_for 10 munged sh -c 'munge -n | unmunge'
  fi
  # munged forks into the background: the pid to keep is the one the daemon writes itself once it
  # serves (pgrep right after the start could catch the parent, which exits a moment later)
  for _ in $(seq 50); do
    [ -s /run/munge/munged.pid ] && [[ "$(cat "/proc/$(cat /run/munge/munged.pid)/comm" 2>/dev/null)" == munged* ]] && break
    sleep 0.1
  done
  cp /run/munge/munged.pid "$PIDS/munged.pid"
}

start_mariadb() {
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if ! alive mariadbd; then
    setsid mariadbd --user=mysql --bind-address=127.0.0.1 --innodb-buffer-pool-size=512M \
      --pid-file=/run/mysqld/mariadbd.pid >/var/log/slurm/mariadb.log 2>&1 < /dev/null &
    wait_for 30 mariadb mysqladmin ping
    cp /run/mysqld/mariadbd.pid "$PIDS/mariadbd.pid"  # mysql cannot write into the root-owned state dir
  fi
  mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
            CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'seqbench';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
}

start() {
  need_root
  command -v slurmctld >/dev/null || { log "Slurm is not installed: run '$0 install' first"; exit 2; }
  mkdir -p "$PIDS"
  write_config
  start_munge
  start_mariadb
  if ! alive slurmdbd; then
    slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
  fi
  sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
  if ! alive slurmctld; then slurmctld; wait_for 30 slurmctld scontrol ping; fi
  if ! alive slurmd; then slurmd -N "$NODE"; fi
  for _ in $(seq 150); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    case "$state" in
      idle|mixed|allocated) log "node $NODE is $state"; return 0 ;;
      down*|drain*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
  done
  log "node did not become idle (state: ${state:-none}); see /var/log/slurm/"; exit 1
}

status() {
  for daemon in munged mariadbd slurmdbd slurmctld slurmd; do
    if alive $daemon; then echo "$daemon running (pid $(cat "$PIDS/$daemon.pid"))"; else echo "$daemon stopped"; fi
  done
  sinfo 2>/dev/null || true
}

stop() {
  for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
    if alive $daemon; then kill "$(cat "$PIDS/$daemon.pid")"; fi
  done
  for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
    for _ in $(seq 50); do alive $daemon || break; sleep 0.2; done
    rm -f "$PIDS/$daemon.pid"
  done
  log "stopped"
}

purge() {
  need_root
  stop
  rm -rf "$STATE/ctld" "$STATE/d"
  start_mariadb
  mysql -e "DROP DATABASE IF EXISTS slurm_acct_db;"
  kill "$(cat "$PIDS/mariadbd.pid")" && rm -f "$PIDS/mariadbd.pid"
  log "purged controller state and accounting database"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  status) status ;;
  stop) stop ;;
  purge) purge ;;
  *) echo "usage: $0 install|start|status|stop|purge" >&2; exit 2 ;;
esac
