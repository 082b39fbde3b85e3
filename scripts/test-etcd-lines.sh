#!/usr/bin/env bash
# The version matrix's extra legs (npm test runs this after the whole suite, which runs on
# Debian's etcd 3.4): the backup, restore and crash suites again on each newer etcd line,
# through ETCD_LINE (test/harness/tools.ts). On those lines the suites run their
# representative cases only — one backup, one three-member restore, the worker killed
# everywhere — and report the rest as skipped, so CI stays well inside its limit. Prints
# how long each leg took. ETCD_LINES="3.6" runs one leg.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

files=(test/e2e/backup-workflow.test.ts test/e2e/restore-workflow.test.ts test/e2e/restore-crash.test.ts)
for line in ${ETCD_LINES:-3.5 3.6}; do
  start=$SECONDS
  ETCD_LINE=$line node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
  echo "etcd-lines: the etcd $line leg took $((SECONDS - start)) s"
done
