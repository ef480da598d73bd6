#!/usr/bin/env bash
# `make demo`: appflow's main job on one machine. Starts three sandbox clusters
# (real control planes, kwok nodes), registers them, syncs the plain-manifest
# example of repos-example/ to all of them, waits until it is Ready, and prints
# the apps x clusters status. Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
appflow=".venv/bin/appflow"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "appflow sandbox up --clusters 3"
"$appflow" sandbox up --clusters 3

step "appflow cluster add --from-sandbox"
"$appflow" cluster add --from-sandbox

step "appflow repo add examples ./repos-example --path plain"
"$appflow" repo add examples ./repos-example --path plain

step "appflow sync hello-edge --wait"
"$appflow" sync hello-edge --wait

step "appflow status"
"$appflow" status

cat <<'TXT'

Next: `appflow app diff hello-edge`, `appflow app history hello-edge`,
`appflow sandbox kubeconfig sandbox-1 --path` for kubectl, and
`make demo-down` (appflow sandbox down) to stop the clusters.

The dashboard: `.venv/bin/appflow token create me` (copy the token), then
`.venv/bin/appflow serve` and open http://127.0.0.1:8080/ to sign in.
TXT
