#!/usr/bin/env bash
# The project's test command: everything CI checks, in the order a failure is cheapest to see.
#
#   bash scripts/test.sh
#
# Installs what the real-PostgreSQL tests need when it is missing (PostgreSQL server
# binaries, psql, pgbouncer), then runs formatting, clippy, the whole test suite with doc
# tests, the runtime-free check of pg-pool-core, and the shuttle models.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies (PostgreSQL, psql, pgbouncer)"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, all features, warnings are errors; incompatible_msrv checks rust-version)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "pg-pool-core depends on no async runtime"
forbidden=$(cargo tree -p pg-pool-core -e normal --prefix none | grep -E '^(tokio|async-std|async-io|smol|async-executor) ' || true)
if [ -n "$forbidden" ]; then
  echo "pg-pool-core pulls in a runtime:"; echo "$forbidden"; exit 1
fi
echo "ok: no tokio, async-std, async-io, smol or async-executor in pg-pool-core's tree"

step "cargo test (workspace, all features, unit + integration + doc tests)"
cargo test --workspace --all-features

step "shuttle models of the hand-off and accounting (cfg(shuttle))"
RUSTFLAGS="--cfg shuttle" cargo test -p pg-pool-core --test shuttle --target-dir target/shuttle

step "all checks passed"
