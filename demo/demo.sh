#!/usr/bin/env bash
# `make demo`: the whole loop in a throwaway project. `smttask project init` creates it,
# its run.py writes a parameter sweep as task files, `smttask run` runs them with two
# workers, a second `smttask run` finds every result on disk, the lab book lists the
# records (smttask store, and Sumatra's own smt); then the task graph, the records with
# their parameters, a comparison, a diff, the template update check; every record is
# reproduced at its commit, and the newest result is exported as an RO-Crate.
set -euo pipefail
project="${DEMO_DIR:-$(mktemp -d)/deathstar}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# The demo commits; give git an identity if the machine has none.
git config --global user.email >/dev/null 2>&1 || export GIT_AUTHOR_NAME="smttask demo" \
  GIT_AUTHOR_EMAIL="demo@example.org" GIT_COMMITTER_NAME="smttask demo" \
  GIT_COMMITTER_EMAIL="demo@example.org"

step "smttask project init --no-input $project"
smttask project init --no-input "$project"
cd "$project"
cat smttask.toml

step "python run.py: the example sweep, saved as task files"
python run.py

step "smttask run -n 2 tasks/: every task runs, writes its result and is recorded"
smttask run -n 2 tasks/

step "smttask run -n 2 tasks/ again: every result is loaded from disk"
smttask run -n 2 tasks/

step "smttask store list: the lab book, newest first"
smttask store list

step "smttask store show: everything recorded about the newest run"
newest=$(smttask store list --json --limit 1 | python -c 'import json, sys; print(json.load(sys.stdin)["label"])')
smttask store show "$newest"

step "smttask graph tasks/: the sweep's tasks, their inputs and status, as a tree"
smttask graph tasks/ --dot sweep.dot --svg sweep.svg
head -n 8 sweep.dot

step "smttask store list --params --where: the records with their inputs, filtered"
smttask store list --params --where 'dt>=0.2' --where nbins=20

step "smttask store compare: three runs side by side (inputs that differ, outputs)"
smttask store compare $(smttask store list --json --limit 3 | python -c 'import json, sys; print(" ".join(json.loads(l)["label"] for l in sys.stdin))')

step "smttask diff: two task files (and a task file against a record)"
set -- tasks/*.taskdesc.json
smttask diff "$1" "$2" || true
smttask diff "$1" "$newest" || true

step "smttask project update --dry-run: the project is up to date with its template"
smttask project update --dry-run

step "Sumatra's own smt list sees the same records"
smt list

step "smttask reproduce --all: every record rerun at its commit and compared"
smttask reproduce --all

step "smttask export rocrate: the newest result with its provenance, as one zip file"
smttask export rocrate "$newest" -o reports/results.crate.zip
python -c 'import zipfile; print("\n".join(zipfile.ZipFile("reports/results.crate.zip").namelist()))'
printf '\nThe project stays in %s (delete it when you are done).\n' "$project"
