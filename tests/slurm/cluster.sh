#!/usr/bin/env bash
# A one-node Slurm cluster in a private directory, for tests: munged, slurmctld and slurmd run as
# root from DIR with their own config, state, spool, logs, pid files, munge socket and free ports,
# so nothing clashes with a Slurm installed on the machine.
#
#   tests/slurm/cluster.sh start DIR [WATCH_PID]   # prints SLURM_CONF=DIR/etc/slurm.conf
#   tests/slurm/cluster.sh stop DIR
#
# Clients find the cluster through SLURM_CONF. With WATCH_PID, a watchdog stops the cluster when
# that process ends, even if it is killed before it can call stop. `start` exits 77 with the
# reason when the machine cannot run Slurm (not root, packages missing), 1 when a daemon fails.
set -euo pipefail

die() { echo "cluster.sh: $*" >&2; exit 1; }
unavailable() { echo "cluster.sh: cannot run a Slurm cluster here: $*" >&2; exit 77; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

write_config() {
  local dir=$1 node
  # slurmd -C: "NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105", the machine's own figures.
  node=$(slurmd -C | head -1)
  [[ $node == NodeName=*RealMemory=* ]] || die "slurmd -C did not describe this node: $node"
  mkdir -p "$dir"/{etc,state,spool,log,run,munge}
  cat > "$dir/etc/slurm.conf" <<EOF
ClusterName=myelintest
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=30
MinJobAge=600
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$(hostname -s) Default=YES MaxTime=INFINITE State=UP
EOF
  # Read only by the cgroup plugins, which this cluster does not load (proctrack/linuxproc,
  # task/none); written so that no system-wide cgroup.conf is picked up instead.
  cat > "$dir/etc/cgroup.conf" <<EOF
CgroupPlugin=autodetect
IgnoreSystemd=yes
EOF
}

start_munge() {
  local dir=$1
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$dir/munge/munge.key"
  chmod 0700 "$dir/munge"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" || die "munged did not start: $(tail -5 "$dir/log/munged.log")"
}

wait_idle() {
  local dir=$1
  for _ in $(seq 1 60); do
    if [[ $(sinfo -h -o '%t' 2>/dev/null | head -1) == idle ]]; then return 0; fi
    sleep 0.5
  done
  echo "cluster.sh: the node did not become idle in 30 s; sinfo says: $(sinfo 2>&1)" >&2
  tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  return 1
}

watch() {
  local dir=$1 pid=$2 self
  self=$(readlink -f "$0")
  # A detached watchdog: when the test process ends (killed included), stop the cluster.
  setsid bash -c "while kill -0 $pid 2>/dev/null && [[ -e '$dir/etc/slurm.conf' ]]; do sleep 1; done; '$self' stop '$dir'" \
    > "$dir/log/watchdog.log" 2>&1 < /dev/null &
  echo $! > "$dir/run/watchdog.pid"
}

start() {
  local dir=$1 watch_pid=${2:-}
  [[ $(id -u) == 0 ]] || unavailable "the daemons run as root here, and this is uid $(id -u)"
  for cmd in munged slurmctld slurmd sbatch sinfo; do
    command -v "$cmd" > /dev/null || unavailable "$cmd is not installed (scripts/install-deps.sh installs slurmctld, slurmd, slurm-client and munge)"
  done
  dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
  write_config "$dir"
  export SLURM_CONF=$dir/etc/slurm.conf
  [[ -n $watch_pid ]] && watch "$dir" "$watch_pid"
  start_munge "$dir"
  slurmctld -i -f "$SLURM_CONF" || { tail -20 "$dir/log/slurmctld.log" >&2; die "slurmctld did not start"; }
  slurmd -f "$SLURM_CONF" || { tail -20 "$dir/log/slurmd.log" >&2; die "slurmd did not start"; }
  wait_idle "$dir" || { stop "$dir"; die "the cluster did not come up"; }
  echo "SLURM_CONF=$SLURM_CONF"
}

kill_pidfile() {
  local file=$1 pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$file"; return 0; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}

stop() {
  local dir=$1
  [[ -d $dir/run ]] || return 0
  export SLURM_CONF=$dir/etc/slurm.conf
  # Jobs first (their processes are children of slurmstepd), then the daemons.
  scancel --full --signal=KILL --user=root 2>/dev/null || true
  kill_pidfile "$dir/run/slurmd.pid"
  kill_pidfile "$dir/run/slurmctld.pid"
  kill_pidfile "$dir/run/munged.pid"
  # The watchdog last, unless it is what runs this.
  if [[ -f $dir/run/watchdog.pid && $(cat "$dir/run/watchdog.pid") != "$PPID" ]]; then
    kill_pidfile "$dir/run/watchdog.pid"
  fi
}

case "${1:-}" in
  start) start "${2:?usage: cluster.sh start DIR [WATCH_PID]}" "${3:-}" ;;
  stop) stop "${2:?usage: cluster.sh stop DIR}" ;;
  *) echo "usage: cluster.sh start DIR [WATCH_PID] | stop DIR" >&2; exit 2 ;;
esac
