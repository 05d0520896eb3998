#!/usr/bin/env bash
# Runs kacjax on every worker of a Cloud TPU VM (single host or pod slice) as one JAX cluster:
# ships the committed code (git HEAD) to each worker, installs it, and starts
# `python3 -m kacjax ... --distributed` on all workers at once. See docs/launch.md.
set -euo pipefail

usage() {
  cat >&2 <<'USAGE'
usage: TPU_NAME=<tpu> ZONE=<zone> PROJECT=<project> CONFIG=experiments/<name>.py
       WORKDIR=<gs://bucket/dir or absolute path shared by all workers>
       [EXTRA='--config.key=value ...'] [PIP_PACKAGES='jax[tpu]>=0.10.2,<0.11']
       launch/tpu_pod.sh
USAGE
  [[ $# -eq 0 ]] || echo "error: $*" >&2
  exit 2
}
for var in TPU_NAME ZONE PROJECT CONFIG WORKDIR; do
  [[ -n ${!var:-} ]] || usage "$var is not set"
done
# Every worker writes checkpoints to WORKDIR, so it must be the same storage for all of them.
[[ $WORKDIR == gs://* || $WORKDIR == /* ]] || usage "WORKDIR must be gs://... or an absolute shared path"

repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no) ]]; then
  echo "warning: uncommitted changes are not shipped; running $(git -C "$repo" rev-parse --short HEAD)" >&2
fi
archive=$(mktemp --suffix=.tar.gz)
trap 'rm -f "$archive"' EXIT
git -C "$repo" archive --format=tar.gz -o "$archive" HEAD

read -r -a extra <<<"${EXTRA:-}"
read -r -a packages <<<"${PIP_PACKAGES:-jax[tpu]>=0.10.2,<0.11}"
printf -v install '%q ' python3 -m pip install --user --quiet ./kacjax "${packages[@]}"
printf -v train '%q ' python3 -m kacjax --config "$CONFIG" --workdir "$WORKDIR" --distributed "${extra[@]}"

tpu=(--zone="$ZONE" --project="$PROJECT" --worker=all)
gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME:kacjax.tar.gz" "${tpu[@]}"
gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${tpu[@]}" --command="set -euo pipefail
rm -rf kacjax && mkdir kacjax && tar -xzf kacjax.tar.gz -C kacjax
$install
cd kacjax && $train"
