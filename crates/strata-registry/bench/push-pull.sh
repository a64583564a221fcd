#!/usr/bin/env bash
# push-pull.sh — benchmark (not a test): pull and push of a fixture image with strata vs
# `skopeo copy`, wall time and peak RSS, against fresh local docker-registry processes.
#
# Usage: push-pull.sh [STRATA_BINARY] [IMAGE]
#   STRATA_BINARY  default: target/release/strata
#   IMAGE          default: library/golang:1.19 on $STRATA_TEST_REGISTRY (127.0.0.1:5000)
# Every run starts from an empty store / OCI directory and an empty target registry, so each
# number is a full transfer. Needs: docker-registry, skopeo, /usr/bin/time.
set -euo pipefail

STRATA=${1:-target/release/strata}
IMAGE=${2:-library/golang:1.19}
SOURCE=${STRATA_TEST_REGISTRY:-127.0.0.1:5000}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_registry NAME -> prints host:port
start_registry() {
  local dir=$WORK/$1 port
  port=$(free_port)
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
  secret: bench
YAML
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break
    sleep 0.1
  done
  echo "127.0.0.1:$port"
}

# measure LABEL COMMAND... : prints "LABEL  <seconds> s  <peak RSS> MB"
measure() {
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr" || {
    cat "$WORK/stderr" >&2
    exit 1
  }
  read -r seconds kb <"$WORK/time"
  printf '%-34s %7.2f s %8.1f MB\n' "$label" "$seconds" "$(echo "$kb / 1024" | bc -l)"
}

size=$(skopeo inspect --raw --tls-verify=false "docker://$SOURCE/$IMAGE" |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]) + m["config"]["size"])')
echo "image $SOURCE/$IMAGE: $((size / 1000000)) MB of compressed blobs"

STRATA_PUSH=$(start_registry strata-target)
SKOPEO_PUSH=$(start_registry skopeo-target)
NAME=${IMAGE#library/}

measure "strata pull (fixture registry)" "$STRATA" --root "$WORK/root" pull -q "$SOURCE/$IMAGE"
measure "skopeo copy docker:// -> oci:" skopeo copy --quiet --src-tls-verify=false \
  "docker://$SOURCE/$IMAGE" "oci:$WORK/oci:$NAME"

"$STRATA" --root "$WORK/root" tag "$SOURCE/$IMAGE" "$STRATA_PUSH/bench/$NAME" >/dev/null
measure "strata push (empty registry)" "$STRATA" --root "$WORK/root" push -q "$STRATA_PUSH/bench/$NAME"
measure "skopeo copy oci: -> docker://" skopeo copy --quiet --dest-tls-verify=false \
  "oci:$WORK/oci:$NAME" "docker://$SKOPEO_PUSH/bench/$NAME"

measure "strata pull (what strata pushed)" "$STRATA" --root "$WORK/root2" pull -q "$STRATA_PUSH/bench/$NAME"
measure "skopeo copy (what skopeo pushed)" skopeo copy --quiet --src-tls-verify=false \
  "docker://$SKOPEO_PUSH/bench/$NAME" "oci:$WORK/oci2:$NAME"

measure "strata pull, second time (no-op)" "$STRATA" --root "$WORK/root" pull -q "$SOURCE/$IMAGE"

# Built-image path: layers stored uncompressed (as `strata load` and builds store them) are
# gzip-compressed on the way out; skopeo compresses a docker-archive's layers the same way.
ARCHIVE=${STRATA_FIXTURES:-/var/cache/strata-fixtures}/docker-archive/${NAME/:/_}.tar
if [[ -f $ARCHIVE ]]; then
  echo "docker-archive $ARCHIVE: $(($(stat -c %s "$ARCHIVE") / 1000000)) MB"
  # Fresh registries: nothing to skip or mount, every layer is compressed and uploaded.
  STRATA_BUILT=$(start_registry strata-built)
  SKOPEO_BUILT=$(start_registry skopeo-built)
  LOADED=strata-fixtures/$NAME
  "$STRATA" --root "$WORK/root3" load -q -i "$ARCHIVE" >/dev/null
  "$STRATA" --root "$WORK/root3" tag "$LOADED" "$STRATA_BUILT/built/$NAME" >/dev/null
  "$STRATA" --root "$WORK/root3" tag "$LOADED" "$STRATA_BUILT/built-again/$NAME" >/dev/null
  measure "strata push (gzip while pushing)" "$STRATA" --root "$WORK/root3" push -q "$STRATA_BUILT/built/$NAME"
  measure "skopeo copy docker-archive: (gzip)" skopeo copy --quiet --dest-tls-verify=false \
    "docker-archive:$ARCHIVE" "docker://$SKOPEO_BUILT/built/$NAME"
  measure "strata push again (mount, no gzip)" "$STRATA" --root "$WORK/root3" push -q "$STRATA_BUILT/built-again/$NAME"
  FAST_BUILT=$(start_registry fast-built)
  "$STRATA" --root "$WORK/root4" load -q -i "$ARCHIVE" >/dev/null
  "$STRATA" --root "$WORK/root4" tag "$LOADED" "$FAST_BUILT/built/$NAME" >/dev/null
  measure "strata push --compression-level 1" "$STRATA" --root "$WORK/root4" push -q \
    --compression-level 1 "$FAST_BUILT/built/$NAME"
  for target in "$STRATA_BUILT" "$FAST_BUILT" "$SKOPEO_BUILT"; do
    bytes=$(skopeo inspect --raw --tls-verify=false "docker://$target/built/$NAME" |
      python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
    echo "pushed to $target: $((bytes / 1000000)) MB of layers"
  done
fi
