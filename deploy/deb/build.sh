#!/bin/sh
# build.sh -- builds the Debian packages mtasts-watch-agent and
# mtasts-watch-collector from binaries already built.  No debhelper: each
# package's tree is staged under a scratch debian/ directory, Depends comes
# from dpkg-shlibdeps, DEBIAN/control from dpkg-gencontrol (which also
# computes Installed-Size), and dpkg-deb builds the archive with root as
# owner of every file, so neither root nor fakeroot is needed.
#
# usage: sh deploy/deb/build.sh [BINDIR [DEST]]
#
# BINDIR (default bin) holds mtasts-agent, mtasts-collector and
# mtasts-report; DEST (default build/deb) receives the .deb files.  Both may
# also come from the environment; arguments win.  Relative paths are taken
# from the current directory.  Other environment:
#   DEB_REVISION       Debian revision (default 1)
#   DEB_MAINTAINER     "Name <address>" for the Maintainer field
#   SOURCE_DATE_EPOCH  changelog date and file times (default: the last
#                      commit's time, else now)
#   DEB_BUILD_OPTIONS  "nostrip" keeps the symbols in the binaries
# Prints the path of each package built.  Needs dpkg-dev (dpkg-shlibdeps,
# dpkg-gencontrol), binutils (strip) and gzip.
set -eu
umask 022

BINDIR=${1:-${BINDIR:-bin}}
DEST=${2:-${DEST:-build/deb}}
DEB_REVISION=${DEB_REVISION:-1}
DEB_MAINTAINER=${DEB_MAINTAINER:-mtasts-watch maintainers <maintainers@users.noreply.r-seed-a3f1ec81.example>}

die() {
	echo "deb: $*" >&2
	exit 1
}

for tool in dpkg-deb dpkg-shlibdeps dpkg-gencontrol strip gzip; do
	command -v "$tool" >/dev/null 2>&1 ||
	    die "$tool not found (apt-get install dpkg-dev binutils gzip)"
done
[ -d "$BINDIR" ] || die "$BINDIR: no such directory (build first: make)"
BINDIR=$(cd "$BINDIR" && pwd)
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
cd "$(dirname "$0")/../.."
for b in mtasts-agent mtasts-collector mtasts-report; do
	[ -x "$BINDIR/$b" ] || die "$BINDIR/$b missing (build first: make)"
done

# The version has one home in the source: MTASTS_VERSION in
# common/version.h when that file exists, else VERSION in agent/main.c.
# The binaries must say the same, or they are stale.
if [ -f common/version.h ]; then
	VERSION=$(sed -n 's/^#define[[:space:]]*MTASTS_VERSION[[:space:]]*"\([^"]*\)".*/\1/p' common/version.h)
else
	VERSION=$(sed -n 's/^#define[[:space:]]*VERSION[[:space:]]*"\([^"]*\)".*/\1/p' agent/main.c)
fi
[ -n "$VERSION" ] || die "no version found in common/version.h or agent/main.c"
got=$("$BINDIR/mtasts-agent" version 2>/dev/null || true)
[ "$got" = "mtasts-agent $VERSION" ] ||
    die "$BINDIR/mtasts-agent says '$got', the source $VERSION: rebuild"
DEB_VERSION=$VERSION-$DEB_REVISION
ARCH=$(dpkg --print-architecture)

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

work=$(mktemp -d "${TMPDIR:-/tmp}/mtdeb.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 143' TERM INT
mkdir "$work/debian"
sed "s|@MAINTAINER@|$DEB_MAINTAINER|" deploy/deb/control \
    >"$work/debian/control"
{
	echo "mtasts-watch ($DEB_VERSION) unstable; urgency=medium"
	echo
	echo "  * Built from the mtasts-watch source tree by deploy/deb/build.sh."
	echo
	echo " -- $DEB_MAINTAINER  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} >"$work/debian/changelog"

# install_gz SRC DST: a compressed copy, reproducible (no name, no time).
install_gz() {
	gzip -9nc "$1" >"$2"
	chmod 0644 "$2"
}

# maint PKG NAME: a maintainer script with common.sh pasted in at #COMMON#.
maint() {
	src=deploy/deb/$1.$2
	dst=$work/debian/$1/DEBIAN/$2
	awk -v common=deploy/deb/common.sh '
	    $0 == "#COMMON#" {
		while ((getline line < common) > 0)
			print line
		close(common)
		next
	    }
	    { print }' "$src" >"$dst"
	chmod 0755 "$dst"
	sh -n "$dst" || die "$src: syntax error"
}

# stage PKG CONF UNIT MANPAGE...: the files both packages have.
stage() {
	pkg=$1 conf=$2 unit=$3
	shift 3
	root=$work/debian/$pkg
	install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" \
	    "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" \
	    "$root/etc/mtasts-watch" "$root/usr/share/doc/$pkg"
	install -m 0644 "deploy/examples/$conf" "$root/etc/mtasts-watch/$conf"
	echo "/etc/mtasts-watch/$conf" >"$root/DEBIAN/conffiles"
	install -m 0644 "deploy/systemd/$unit" "$root/lib/systemd/system/$unit"
	# Each package ships the same user under its own name, so that
	# either alone creates it and both together do not conflict.
	install -m 0644 deploy/systemd/mtasts-watch.sysusers \
	    "$root/usr/lib/sysusers.d/$pkg.conf"
	for page in "$@"; do
		sect=${page##*.}
		install -d -m 0755 "$root/usr/share/man/man$sect"
		install_gz "docs/man/$page" "$root/usr/share/man/man$sect/$page.gz"
	done
	install -m 0644 deploy/deb/copyright "$root/usr/share/doc/$pkg/copyright"
	install -m 0644 deploy/deb/README.Debian \
	    "$root/usr/share/doc/$pkg/README.Debian"
	install_gz "$work/debian/changelog" \
	    "$root/usr/share/doc/$pkg/changelog.Debian.gz"
	for doc in docs/findings.md docs/operations.md; do
		if [ -f "$doc" ]; then
			install_gz "$doc" \
			    "$root/usr/share/doc/$pkg/$(basename "$doc").gz"
		fi
	done
	for s in postinst prerm postrm; do
		maint "$pkg" "$s"
	done
}

# bin PKG NAME: a binary, stripped unless DEB_BUILD_OPTIONS says nostrip.
bin() {
	dst=$work/debian/$1/usr/bin/$2
	install -m 0755 "$BINDIR/$2" "$dst"
	case " ${DEB_BUILD_OPTIONS:-} " in
	*" nostrip "*) ;;
	*) strip --remove-section=.comment --remove-section=.note \
	    --strip-unneeded "$dst" ;;
	esac
}

stage mtasts-watch-agent agent.conf mtasts-agent.service \
    mtasts-agent.8 mtasts-agent.conf.5
bin mtasts-watch-agent mtasts-agent

stage mtasts-watch-collector collector.conf mtasts-collector.service \
    mtasts-collector.8 mtasts-collector.conf.5 mtasts-report.1
bin mtasts-watch-collector mtasts-collector
bin mtasts-watch-collector mtasts-report
sqldir=$work/debian/mtasts-watch-collector/usr/share/mtasts-watch/sql
install -d -m 0755 "$sqldir"
install -m 0644 deploy/sql/*.sql "$sqldir/"
for doc in docs/api.md docs/notify.md docs/metrics.md docs/architecture.md; do
	if [ -f "$doc" ]; then
		install_gz "$doc" "$work/debian/mtasts-watch-collector/usr/share/doc/mtasts-watch-collector/$(basename "$doc").gz"
	fi
done

for pkg in mtasts-watch-agent mtasts-watch-collector; do
	root=debian/$pkg
	# md5sums of everything but the control area and the conffiles
	# (dpkg keeps those of conffiles itself), as dh_md5sums does.
	sed 's|^/||' "$work/$root/DEBIAN/conffiles" >"$work/$pkg.conffiles"
	(cd "$work/$root" && find . -type f ! -path './DEBIAN/*' |
	    sed 's|^\./||' | LC_ALL=C sort |
	    grep -vxF -f "$work/$pkg.conffiles" | tr '\n' '\0' |
	    xargs -0 md5sum) >"$work/$root/DEBIAN/md5sums"
	chmod 0644 "$work/$root/DEBIAN/md5sums" "$work/$root/DEBIAN/conffiles"
	(cd "$work" &&
	    dpkg-shlibdeps -T"debian/$pkg.substvars" "$root"/usr/bin/* &&
	    dpkg-gencontrol -p"$pkg" -P"$root" -T"debian/$pkg.substvars" \
		-f"debian/files")
	out=$DEST/${pkg}_${DEB_VERSION}_$ARCH.deb
	dpkg-deb --root-owner-group -Zxz --build "$work/$root" "$out" \
	    >/dev/null
	echo "$out"
done
