# shellcheck shell=bash
# Shared setup for scripts/test and scripts/demo (sourced, not run).

SHARED=${STRATA_SHARED:-$REPO/../shared}
export STRATA_FIXTURES=${STRATA_FIXTURES:-/var/cache/strata-fixtures}
export STRATA_TEST_REGISTRY=${STRATA_TEST_REGISTRY:-127.0.0.1:5000}

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root() { [[ $(id -u) == 0 ]] || die "run as root: RUN steps use overlay mounts and an OCI runtime"; }

# install_system_packages: the OCI runtimes, registry and image tools the tests and the demo use
install_system_packages() {
  need_root
  local pkgs=(runc crun skopeo umoci docker-registry docker.io mmdebstrap busybox-static curl python3 apache2-utils ca-certificates)
  local missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    step "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup)"
}

# ensure_fixtures: busybox, debian, golang and gcc base images built from Debian packages (cached)
ensure_fixtures() {
  [[ -x $SHARED/fixtures/make-base-images ]] || die "fixtures not found at $SHARED/fixtures (set STRATA_SHARED)"
  step "fixture base images in $STRATA_FIXTURES"
  FIXTURES_DIR=$STRATA_FIXTURES "$SHARED/fixtures/make-base-images"
}

# start_test_registry: the plain-HTTP registry on 127.0.0.1:5000 with the fixture images
start_test_registry() {
  step "local registry on 127.0.0.1:5000"
  "$SHARED/fixtures/start-registry" >/dev/null
  if ! curl -sf http://127.0.0.1:5000/v2/library/busybox/tags/list >/dev/null; then
    FIXTURES_DIR=$STRATA_FIXTURES "$SHARED/fixtures/seed-registry" --no-docker >/dev/null
  fi
}
