#!/bin/sh
# Soak xvrd: mixed traffic plus pod churn for SOAK_DURATION (default 5m, at
# most 9m30s), then check that its memory, goroutines and fds are flat; the
# report goes to SOAK_REPORT (default soak-out/report.md). Needs root (network
# namespaces, XDP). The whole run is bounded to 10 minutes plus the build.
set -eu
cd "$(dirname "$0")/.."
duration=${SOAK_DURATION:-5m}
report=${SOAK_REPORT:-soak-out/report.md}
case $report in /*) ;; *) report="$PWD/$report" ;; esac
if [ "$(id -u)" -ne 0 ]; then
	echo "soak: run as root (network namespaces, XDP)" >&2
	exit 1
fi
echo "soak: $duration of traffic and churn; report in $report"
bin=$(mktemp "${TMPDIR:-/tmp}/xvr-soak-e2e.XXXXXX")
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" ./e2e
cd e2e # the e2e tests build the binaries from ../cmd
rc=0
XVR_SOAK_DURATION=$duration XVR_SOAK_REPORT=$report \
	timeout 11m "$bin" -test.run '^TestReliabilitySoak$' -test.count 1 -test.timeout 10m -test.v || rc=$?
[ -f "$report" ] && cat "$report"
exit $rc
