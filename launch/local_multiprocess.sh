#!/usr/bin/env bash
# Runs NUM_PROCESSES kacjax processes on this machine as one JAX cluster on the CPU, each with
# DEVICES_PER_PROCESS fake devices: multi-host code paths without a pod. See docs/launch.md.
set -euo pipefail

usage() {
  cat >&2 <<'USAGE'
usage: CONFIG=experiments/<name>.py WORKDIR=<dir> [NUM_PROCESSES=2] [DEVICES_PER_PROCESS=2]
       [PORT=<free port>] [EXTRA='--config.key=value ...'] [KACJAX='python -m kacjax']
       launch/local_multiprocess.sh
USAGE
  exit 2
}
[[ -n ${CONFIG:-} && -n ${WORKDIR:-} ]] || usage

num_processes=${NUM_PROCESSES:-2}
devices=${DEVICES_PER_PROCESS:-2}
address=127.0.0.1:${PORT:-$((20000 + RANDOM % 20000))}
read -r -a kacjax <<<"${KACJAX:-kacjax}"
read -r -a extra <<<"${EXTRA:-}"

# Each process runs in its own process group (set -m), so a failure or Ctrl-C stops whole groups.
set -m
stop_running() {
  local pid
  for pid in $(jobs -pr); do kill -- "-$pid" 2>/dev/null || true; done
}
trap stop_running EXIT
trap 'exit 130' INT TERM

echo "coordinator $address: $num_processes processes x $devices CPU devices" >&2
for ((i = 0; i < num_processes; i++)); do
  (
    XLA_FLAGS="--xla_force_host_platform_device_count=$devices" JAX_PLATFORMS=cpu \
      PYTHONUNBUFFERED=1 \
      "${kacjax[@]}" --config "$CONFIG" --workdir "$WORKDIR" --distributed \
      --coordinator_address="$address" --num_processes="$num_processes" --process_id="$i" \
      "${extra[@]}" 2>&1 | sed "s/^/[process $i] /"
  ) &
done

# The first failure stops the others (they would wait for it forever) and sets the exit status.
for ((i = 0; i < num_processes; i++)); do
  wait -n || {
    status=$?
    echo "a process failed with exit status $status; stopping the others" >&2
    exit "$status"
  }
done
