#!/usr/bin/env bash
# `make demo`: a throwaway project that runs the quick start's `analyze` example twice.
# The first run computes and records; the second finds every result on disk.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="${DEMO_DIR:-$(mktemp -d)/deathstar}"
mkdir -p "$project"
cd "$project"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Creating a throwaway project in $project"
git init -q
git config user.name >/dev/null || git config user.name "smttask demo"
git config user.email >/dev/null || git config user.email "demo@example.org"
python -c 'from smttask.config import render_config as r; print(r("deathstar", dirty_directories=["reports", "labnotes"]), end="")' > smttask.toml
mkdir -p deathstar reports labnotes
touch deathstar/__init__.py reports/.keep labnotes/.keep
cp "$here/tasks.py" deathstar/tasks.py
cp "$here/run.py" run.py
printf '.smt/\ndata/\ntasks/\n' > .gitignore
git add -A && git commit -qm "Demo project"
cat smttask.toml

step "First run: every task computes, writes its result and is recorded"
python run.py

step "Second run: every result is loaded from disk"
python run.py

step "Sumatra's own lab book lists the three records (smt list)"
smt list

step "The newest record"
python "$here/show_record.py"
printf '\nThe project stays in %s (delete it when you are done).\n' "$project"
