#!/usr/bin/env bash
# scripts/kube-assets.sh: builds the real Kubernetes control plane that the
# Kubernetes-mode tests run against — kube-apiserver, kube-controller-manager
# and etcd — from the Go module proxy, and caches the binaries outside the
# checkout. It prints the cache directory as its last line of stdout:
#
#   export KUBEBUILDER_ASSETS="$(scripts/kube-assets.sh)"
#
#   scripts/kube-assets.sh            build if missing, print the directory
#   scripts/kube-assets.sh --print    print the directory it would use, build nothing
#   scripts/kube-assets.sh --check    exit 0 if the binaries are cached, 1 if not
#
# How: a throwaway module in a temporary directory requires k8s.io/kubernetes
# at KUBE_VERSION, replaces every module that k8s.io/kubernetes's own go.mod
# points at ./staging/... with the published k8s.io/X v0.MINOR.PATCH (the list
# is read from that go.mod, so it follows the release), adds `tool` lines for
# the three commands so that `go mod tidy` keeps them, and `go build`s each
# with the version stamped in (so /version answers the release). etcd is
# go.etcd.io/etcd/server/v3 at the version k8s.io/kubernetes's go.mod pins.
# Never `go get -u` here: a newer k8s.io/kube-openapi needs a newer Go.
#
# The build uses the same CGO_ENABLED and no -trimpath, like `go test`, so the
# k8s.io packages the tests also compile come from the same Go build cache.
# On a quiet 2-core machine: etcd about 1 min, kube-apiserver about 7,
# kube-controller-manager about 5 more, and about 5 GB of Go caches.
#
# The cache directory is keyed by the release and a hash of this script:
#   ${SWITCHYARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard}/kube/KUBE_VERSION-HASH/
# The binaries are built into a temporary directory beside it that is renamed
# into place only when all three are complete; a lock keeps two runs from
# building at once. Older cache directories are left alone (remove them by hand).
#
# Environment:
#   KUBE_VERSION      Kubernetes release (default below)
#   SWITCHYARD_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard)
#   KUBE_ASSETS_NICE  niceness of the build (default 10)
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
NICE="${KUBE_ASSETS_NICE:-10}"
SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

mode=build
case "${1:-}" in
"") ;;
--print) mode=print ;;
--check) mode=check ;;
-h | --help)
	sed -n "2,/^set -euo/p" "$SCRIPT" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "kube-assets.sh: unknown argument $1 (see --help)" >&2
	exit 2
	;;
esac

# go needs HOME (or GOCACHE); CI may run with a bare environment.
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
export PATH="$PATH:/usr/local/go/bin"

if [[ ! $KUBE_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]]; then
	echo "kube-assets.sh: KUBE_VERSION=$KUBE_VERSION is not a release like v1.37.2" >&2
	exit 2
fi
minor="${BASH_REMATCH[1]}" patch="${BASH_REMATCH[2]}"
staging_version="v0.$minor.$patch"

hash="$(sha256sum "$SCRIPT" | cut -c1-12)"
root="${SWITCHYARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard}/kube"
dest="$root/$KUBE_VERSION-$hash"
bins=(etcd kube-apiserver kube-controller-manager)

complete() {
	local b
	for b in "${bins[@]}"; do
		[[ -x $1/$b ]] || return 1
	done
}

case $mode in
print)
	echo "$dest"
	exit 0
	;;
check)
	complete "$dest"
	exit
	;;
esac

if complete "$dest"; then
	echo "$dest"
	exit 0
fi

mkdir -p "$root"
# One build at a time: a second caller waits, then finds the cache.
exec 9>"$root/.lock"
if ! flock -n 9; then
	echo "kube-assets.sh: another build holds $root/.lock; waiting for it" >&2
	flock 9
fi
if complete "$dest"; then
	echo "$dest"
	exit 0
fi

log() { printf '==> kube-assets: %s\n' "$*" >&2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-kube-assets.XXXXXX")"
out="$(mktemp -d "$root/.building-$KUBE_VERSION-$hash.XXXXXX")"
trap 'rm -rf "$work" "$out"' EXIT

# The throwaway module must not see a go.work, nor download a toolchain.
export GOWORK=off GOTOOLCHAIN=local
go_() { nice -n "$NICE" go "$@"; }

t_all=$SECONDS
log "building Kubernetes $KUBE_VERSION (etcd ~1 min, kube-apiserver ~7, kube-controller-manager ~5 on a quiet 2-core machine) into $dest"
cd "$work"

# -json reports a failure in its output, not on stderr: show it.
if ! dl="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION")"; then
	echo "kube-assets.sh: go mod download k8s.io/kubernetes@$KUBE_VERSION failed:" >&2
	echo "$dl" >&2
	exit 1
fi
kube_mod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$dl")"
if [[ ! -f $kube_mod ]]; then
	echo "kube-assets.sh: go mod download k8s.io/kubernetes@$KUBE_VERSION gave no go.mod:" >&2
	echo "$dl" >&2
	exit 1
fi

# Every `k8s.io/X => ./staging/src/k8s.io/X` of k8s.io/kubernetes's go.mod,
# whether in a replace block or on a replace line.
mapfile -t staged < <(awk '
	/^replace[[:space:]]*\(/ { inblock = 1; next }
	inblock && /^\)/ { inblock = 0; next }
	{ line = $0; sub(/^replace[[:space:]]+/, "", line) }
	(inblock || $1 == "replace") && line ~ /=>[[:space:]]*\.\/staging\// { split(line, f, " "); print f[1] }
' "$kube_mod" | sort -u)
if ((${#staged[@]} == 0)); then
	echo "kube-assets.sh: found no ./staging replacements in $kube_mod" >&2
	exit 1
fi
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$kube_mod")"
if [[ -z $etcd_version ]]; then
	echo "kube-assets.sh: $kube_mod does not pin go.etcd.io/etcd/server/v3" >&2
	exit 1
fi
go_line="$(awk '$1 == "go" { print $2; exit }' "$kube_mod")"
log "k8s.io/kubernetes $KUBE_VERSION: ${#staged[@]} staging modules at $staging_version, etcd $etcd_version, go $go_line"

# The main module's go and godebug lines decide the GODEBUG defaults of the
# binaries: take k8s.io/kubernetes's.
{
	echo "module switchyard.invalid/kube-assets"
	echo
	echo "go $go_line"
	grep -E '^godebug[[:space:]]' "$kube_mod" || true
} >go.mod
edits=(-require="k8s.io/kubernetes@$KUBE_VERSION" -require="go.etcd.io/etcd/server/v3@$etcd_version")
for m in "${staged[@]}"; do
	edits+=(-replace="$m=$m@$staging_version")
done
edits+=(-tool=k8s.io/kubernetes/cmd/kube-apiserver -tool=k8s.io/kubernetes/cmd/kube-controller-manager -tool=go.etcd.io/etcd/server/v3)
go mod edit "${edits[@]}"
t=$SECONDS
go_ mod tidy
log "go mod tidy: $((SECONDS - t))s"

ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

declare -A pkgs=(
	[etcd]=go.etcd.io/etcd/server/v3
	[kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
	[kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
)
timings=()
for b in "${bins[@]}"; do
	t=$SECONDS
	log "go build $b (${pkgs[$b]})"
	go_ build -ldflags "$ldflags" -o "$out/$b" "${pkgs[$b]}"
	timings+=("$b $((SECONDS - t))s")
	log "built $b in $((SECONDS - t))s"
done

cp go.mod "$out/go.mod"
{
	echo "kubernetes $KUBE_VERSION"
	echo "etcd $etcd_version"
	echo "staging $staging_version (${#staged[@]} modules)"
	go version
	echo "CGO_ENABLED=$(go env CGO_ENABLED)"
	echo "script-sha256 $hash"
	echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf 'build %s\n' "${timings[@]}"
	echo "total $((SECONDS - t_all))s"
	echo "size $(du -sh "$out" | cut -f1)"
} >"$out/BUILD-INFO"
"$out/kube-apiserver" --version >&2
chmod 755 "$out" # mktemp made it 0700

# A directory left without all three binaries (by hand) is replaced.
rm -rf "$dest"
mv -T "$out" "$dest"
trap 'rm -rf "$work"' EXIT
log "done in $((SECONDS - t_all))s (${timings[*]}): $dest"
for old in "$root"/v*; do
	[[ $old == "$dest" ]] || log "an older build is still there (remove it when unused): $old"
done
echo "$dest"
