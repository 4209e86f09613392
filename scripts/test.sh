#!/usr/bin/env bash
# scripts/test.sh: Switchyard's one test command (CI runs it through .ci/run).
#
#   scripts/test.sh                 install what the tests need, go vet, all tests,
#                                   then -race on the fast packages
#   scripts/test.sh --short         go vet and go test -short; installs nothing
#   scripts/test.sh PKG...          the same on these packages only (default ./...)
#
# Options:
#   --short        go test -short, no installs, no race pass
#   --no-install   do not install system packages (tests needing them skip, or
#                  fail when CI=true)
#   --no-race      skip the -race pass
#
# Environment:
#   CI=true        missing tools fail tests instead of skipping them, and
#                  integration tests run even with -short
#   RACE_PKGS      packages for the -race pass (default below; only those that exist run)
#   TEST_TIMEOUT   go test -timeout for the main pass (default 15m)
#   TEST_LOG       where to keep the raw `go test -json` output
#   KUBEBUILDER_ASSETS  directory with etcd, kube-apiserver and
#                  kube-controller-manager for the Kubernetes tests (default:
#                  built by scripts/kube-assets.sh into its cache)
#   SWITCHYARD_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard)
#
# On Debian 12 it installs with apt-get (through sudo when not root): nginx,
# libnginx-mod-http-lua (nginx mode's lua balancer), haproxy, hey, wrk,
# prometheus, curl, iproute2 and kubectl (kubernetes-client), without starting their system services;
# tests start their own instances on loopback. It also builds the real
# Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)
# from the Go module proxy with scripts/kube-assets.sh when its cache lacks
# them: about 15 min the first time on 2 cores, then nothing (see
# docs/kubernetes-testing.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# go needs HOME (or GOCACHE); CI may run with a bare environment.
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

RACE_PKGS="${RACE_PKGS:-./internal/spec/... ./internal/rollout/... ./internal/analysis/... ./internal/proxy/... ./internal/store/... ./internal/admin/... ./internal/daemon/... ./internal/cli/... ./internal/testenv/... ./scripts/...}"
TEST_TIMEOUT="${TEST_TIMEOUT:-15m}"
CACHE="${SWITCHYARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard}"
TEST_LOG="${TEST_LOG:-$CACHE/last-test.json}"

short=0 install=1 race=1
pkgs=()
while (($#)); do
	case "$1" in
	--short) short=1 install=0 race=0 ;;
	--no-install) install=0 ;;
	--no-race) race=0 ;;
	-h | --help)
		sed -n "2,/^set -euo/p" "$ROOT/scripts/test.sh" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "test.sh: unknown option $1 (see --help)" >&2
		exit 2
		;;
	*) pkgs+=("$1") ;;
	esac
	shift
done
((${#pkgs[@]})) || pkgs=(./...)

export PATH="$CACHE/bin:$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
mkdir -p "$CACHE/bin" "$(dirname "$TEST_LOG")"

log() { printf '\n==> %s\n' "$*"; }

# --- system packages -------------------------------------------------------

# command -> Debian package
declare -A NEED=(
	[nginx]=nginx
	[haproxy]=haproxy
	[hey]=hey
	[wrk]=wrk
	[prometheus]=prometheus
	[curl]=curl
	[ip]=iproute2
	[kubectl]=kubernetes-client
)
# files -> Debian package, for what is not a command
declare -A NEED_FILES=(
	[/usr/lib/nginx/modules/ngx_http_lua_module.so]=libnginx-mod-http-lua
)

as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo -n "$@"
	else
		echo "test.sh: need root (or sudo) to run: $*" >&2
		return 1
	fi
}

install_packages() {
	local missing=() cmd
	for cmd in "${!NEED[@]}"; do
		command -v "$cmd" >/dev/null || missing+=("${NEED[$cmd]}")
	done
	local f
	for f in "${!NEED_FILES[@]}"; do
		[[ -e $f ]] || missing+=("${NEED_FILES[$f]}")
	done
	((${#missing[@]})) || return 0
	if ! command -v apt-get >/dev/null; then
		echo "test.sh: missing ${missing[*]} and no apt-get; install them yourself" >&2
		return 0
	fi
	log "installing ${missing[*]}"
	# Keep the packages' system services from starting: tests run their own
	# instances with their own configs. policy-rc.d is honoured by
	# invoke-rc.d and deb-systemd-invoke; remove it only if we created it.
	local policy=/usr/sbin/policy-rc.d created=0
	if [[ ! -e $policy ]]; then
		as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
		created=1
	fi
	local rc=0
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
	if ((rc == 0)); then
		# hey may be missing from some Debian releases: install the rest,
		# then fall back to go install below.
		local pkgs_ok=() p
		for p in "${missing[@]}"; do
			if [[ $p == hey ]] && ! apt-cache show hey >/dev/null 2>&1; then continue; fi
			pkgs_ok+=("$p")
		done
		if ((${#pkgs_ok[@]})); then
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
				--no-install-recommends "${pkgs_ok[@]}" || rc=$?
		fi
	fi
	if ((created)); then as_root rm -f "$policy"; fi
	# Where systemd runs, the services were enabled: make sure none runs.
	if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
		as_root systemctl disable --now nginx haproxy prometheus >/dev/null 2>&1 || true
	fi
	if ! command -v hey >/dev/null; then
		log "installing hey with go install into $CACHE/bin"
		GOBIN="$CACHE/bin" go install github.com/rakyll/hey@v0.1.4 || rc=$?
	fi
	if ((rc != 0)); then
		echo "test.sh: installing packages failed (exit $rc); tests that need them will skip, or fail under CI" >&2
	fi
}

# --- run -------------------------------------------------------------------

start=$SECONDS
rm -f "$TEST_LOG.summary" "$TEST_LOG.race.summary"
declare -a results=()
status=0
step() { # step NAME CMD...: run, record the outcome and the time taken (in this shell: exports stay)
	local name=$1 t0=$SECONDS rc=0
	shift
	log "$name"
	"$@" || rc=$?
	results+=("$(printf '%-8s %-40s %4ds' "$([[ $rc -eq 0 ]] && echo ok || echo FAILED)" "$name" $((SECONDS - t0)))")
	((rc == 0)) || status=1
}

if ((install)); then install_packages; fi

# --- Kubernetes control plane ----------------------------------------------

# kube_assets exports KUBEBUILDER_ASSETS for the Kubernetes tests, building
# the binaries first when they are missing and installing is allowed. A
# failed build fails the run under CI; elsewhere the tests then skip.
kube_assets() {
	local script="$ROOT/scripts/kube-assets.sh" dir
	# The same cache root as this script's (the environment is left alone:
	# a nested test.sh, as in scripts/testsh_test.go, must not inherit it).
	assets_sh() { SWITCHYARD_CACHE="$CACHE" "$script" "$@"; }
	dir="$(assets_sh --print)"
	if assets_sh --check; then
		echo "  built: $dir"
		export KUBEBUILDER_ASSETS="$dir"
		return 0
	fi
	if ((!install)); then
		echo "  not built ($dir); the Kubernetes tests skip (or fail under CI); build them with scripts/kube-assets.sh"
		return 0
	fi
	echo "  building them into $dir: about 15 min the first time on 2 cores (etcd ~1, kube-apiserver ~7, kube-controller-manager ~5), ~5 GB of Go caches; later runs reuse them"
	if dir="$(assets_sh)"; then
		export KUBEBUILDER_ASSETS="$dir"
		return 0
	fi
	echo "test.sh: building the Kubernetes binaries failed; the Kubernetes tests skip, or fail under CI" >&2
	if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then return 1; fi
	return 0
}

if [[ -n ${KUBEBUILDER_ASSETS:-} ]]; then
	log "kube assets: KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS (set by the caller)"
else
	step "kube assets" kube_assets
fi

log "tools"
go version
for cmd in nginx haproxy wrk hey prometheus; do
	printf '  %-10s %s\n' "$cmd" "$(command -v "$cmd" || echo 'not installed')"
done
echo "  KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-}"
echo "  CI=${CI:-}"

# The summariser is built first so that a broken package cannot hide results.
summary="$CACHE/bin/testsummary"
go build -o "$summary" ./scripts/testsummary

run_tests() { # run_tests LOG GO-TEST-ARGS...: go test -json through the summariser
	local logfile=$1 rc=0
	shift
	go test -json "$@" >"$logfile" 2>&1 || rc=$?
	"$summary" <"$logfile" | tee "$logfile.summary"
	((PIPESTATUS[0] == 0)) || rc=1
	echo "(raw output: $logfile)"
	return $rc
}

race_pass() { # race_pass PKG...
	# -short without CI: the integration tests already ran in the main
	# pass; this one is for the fast, concurrent core.
	(
		unset CI
		run_tests "$TEST_LOG.race" -race -short -timeout 10m "$@"
	)
}

step "go vet" go vet "${pkgs[@]}"

if ((short)); then
	step "go test -short" run_tests "$TEST_LOG" -short -timeout "$TEST_TIMEOUT" "${pkgs[@]}"
else
	# -count=1: the e2e tests build and run the switchyard binary, which the
	# test cache cannot see; a cached pass could hide a broken binary.
	step "go test" run_tests "$TEST_LOG" -count=1 -timeout "$TEST_TIMEOUT" "${pkgs[@]}"
fi

if ((race)) && [[ "${pkgs[*]}" == "./..." ]]; then
	existing=()
	for p in $RACE_PKGS; do
		d="${p%/...}"
		if [[ -n $(find "$d" -name '*.go' -print -quit 2>/dev/null) ]]; then
			existing+=("$p")
		fi
	done
	if ((${#existing[@]})); then
		step "go test -race -short (${#existing[@]} pkgs)" race_pass "${existing[@]}"
	fi
fi

printf '\n==> summary (%ds)\n' $((SECONDS - start))
printf '  %s\n' "${results[@]}"
# One closing line over every pass, from each summariser's last line
# ("tests: N passed, N cached, N failed, N skipped"). Only the passes that
# ran wrote a summary (--short, --no-race and package arguments skip the race
# pass): reading a missing one would fail the pipeline, and with it an
# all-pass run.
summaries=()
for f in "$TEST_LOG.summary" "$TEST_LOG.race.summary"; do
	[[ -f $f ]] && summaries+=("$f")
done
if ((${#summaries[@]})); then
	awk '/^tests: [0-9]+ passed, [0-9]+ cached, [0-9]+ failed, [0-9]+ skipped$/ { p += $2; c += $4; f += $6; s += $8 }
	     END { printf "total: %d passed, %d cached, %d failed, %d skipped\n", p, c, f, s }' "${summaries[@]}"
fi
exit $status
