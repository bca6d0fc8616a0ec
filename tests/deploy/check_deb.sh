#!/bin/sh
# check_deb.sh -- builds the Debian packages from binaries already built
# (deploy/deb/build.sh), then checks them: control fields and Depends
# against what the binaries link, conffiles, file modes, units, man pages
# and migrations in the archives; lintian (any error, or a warning not
# explained in deploy/deb/README.md, fails); the man pages (mandoc -T lint,
# or groff warnings) and that they document every option of the --help
# texts and every configuration key the parsers know; and a real
# installation into a scratch root with dpkg --root, maintainer scripts
# included (user, directories, modes, keys, unit enablement, reinstall,
# remove, purge).  Closes with "deb: N passed, M failed".
#
# Environment: BINDIR (default bin, relative to the top of the tree).
# Needs dpkg-dev, lintian, mandoc (or groff), systemd (systemd-sysusers)
# and, when not run as root, fakeroot.
set -u
cd "$(dirname "$0")/../.." || exit 2
BINDIR=${BINDIR:-bin}
CHECK_SUITE=deb
. tests/lib/checklib.sh

tmp=$(mktemp -d /tmp/mtdebchk.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 143' TERM INT

# Warnings lintian may give, each explained in deploy/deb/README.md.
LINTIAN_WARN_OK="initial-upload-closes-no-bugs"

missing=
for tool in dpkg-deb dpkg-shlibdeps dpkg-gencontrol lintian objdump \
    systemd-sysusers; do
	command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ "$(id -u)" -ne 0 ] && ! command -v fakeroot >/dev/null 2>&1; then
	missing="$missing fakeroot"
fi
if [ -n "$missing" ]; then
	echo "check_deb: not found:$missing (deploy/install-deps.sh installs them)"
	fail "tools installed"
	finish; exit
fi

# ---- build ----------------------------------------------------------------
out=$tmp/out
if sh deploy/deb/build.sh "$BINDIR" "$out" >"$tmp/build.log" 2>&1; then
	pass "build: deploy/deb/build.sh $BINDIR"
else
	cat "$tmp/build.log"
	fail "build: deploy/deb/build.sh $BINDIR"
	finish; exit
fi
VERSION=$(sed -n 's/^#define[[:space:]]*VERSION[[:space:]]*"\([^"]*\)".*/\1/p' agent/main.c)
if [ -f common/version.h ]; then
	VERSION=$(sed -n 's/^#define[[:space:]]*MTASTS_VERSION[[:space:]]*"\([^"]*\)".*/\1/p' common/version.h)
fi
ARCH=$(dpkg --print-architecture)
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
AGENT_DEB=$out/mtasts-watch-agent_${VERSION}-1_$ARCH.deb
COLL_DEB=$out/mtasts-watch-collector_${VERSION}-1_$ARCH.deb
for deb in "$AGENT_DEB" "$COLL_DEB"; do
	if [ ! -f "$deb" ]; then
		fail "build: $(basename "$deb") missing"
		finish; exit
	fi
done

# ---- the archives ---------------------------------------------------------
field() {
	dpkg-deb --field "$1" "$2"
}

# Every library a binary needs (NEEDED) must come from a package in Depends:
# checks what dpkg-shlibdeps computed against the binaries themselves.
depends_cover() {
	deb=$1 dir=$2
	deps=$(field "$deb" Depends | tr ',|' '\n' |
	    sed 's/^ *//; s/ .*//')
	ok=0
	for b in "$dir"/usr/bin/*; do
		for so in $(objdump -p "$b" | awk '$1 == "NEEDED" { print $2 }'); do
			pkgs=$(dpkg -S "*/$MULTIARCH/$so" 2>/dev/null |
			    sed 's/:.*//; s/, /\n/g' | sort -u)
			found=
			for p in $pkgs; do
				if printf '%s\n' "$deps" | grep -qxF "$p"; then
					found=$p
				fi
			done
			if [ -z "$found" ]; then
				echo "  $(basename "$b") needs $so (from" \
				    "${pkgs:-no package}), not in Depends"
				ok=1
			fi
		done
	done
	return $ok
}

# mode_of LISTING PATH: "MODE OWNER" of PATH in dpkg-deb --contents output.
mode_of() {
	awk -v p="./$2" '$6 == p { print $1, $2 }' "$1"
}

# want_mode LISTING PATH "MODE OWNER"
want_mode() {
	got=$(mode_of "$1" "$2")
	if [ "$got" != "$3" ]; then
		echo "  $2: '${got:-missing}', want '$3'"
		return 1
	fi
}

check_archive() {
	pkg=$1 deb=$2 conf=$3 unit=$4
	shift 4
	listing=$tmp/$pkg.contents
	dir=$tmp/x-$pkg
	dpkg-deb --contents "$deb" >"$listing"
	rm -rf "$dir"
	dpkg-deb --raw-extract "$deb" "$dir"

	check "$pkg: Package, Version, Architecture" test \
	    "$(field "$deb" Package) $(field "$deb" Version) $(field "$deb" Architecture)" = \
	    "$pkg $VERSION-1 $ARCH"
	check "$pkg: Depends covers every NEEDED library" \
	    depends_cover "$deb" "$dir"
	check "$pkg: Depends names adduser and libc6" sh -c \
	    "dpkg-deb --field '$deb' Depends | grep -q 'libc6 (>= ' &&
	     dpkg-deb --field '$deb' Depends | grep -qw adduser"
	check "$pkg: Installed-Size set" sh -c \
	    "dpkg-deb --field '$deb' Installed-Size | grep -qx '[0-9][0-9]*'"
	check "$pkg: conffiles lists /etc/mtasts-watch/$conf only" test \
	    "$(cat "$dir/DEBIAN/conffiles")" = "/etc/mtasts-watch/$conf"
	check "$pkg: /etc/mtasts-watch/$conf is root 0644 in the archive" \
	    want_mode "$listing" "etc/mtasts-watch/$conf" "-rw-r--r-- root/root"
	check "$pkg: shipped $conf is deploy/examples/$conf" \
	    cmp -s "$dir/etc/mtasts-watch/$conf" "deploy/examples/$conf"
	check "$pkg: unit lib/systemd/system/$unit as in deploy/systemd" \
	    cmp -s "$dir/lib/systemd/system/$unit" "deploy/systemd/$unit"
	check "$pkg: unit mode 0644" want_mode "$listing" \
	    "lib/systemd/system/$unit" "-rw-r--r-- root/root"
	check "$pkg: sysusers file" cmp -s \
	    "$dir/usr/lib/sysusers.d/$pkg.conf" deploy/systemd/mtasts-watch.sysusers
	for s in postinst prerm postrm; do
		check "$pkg: $s executable, sh -n, set -e" sh -c \
		    "test -x '$dir/DEBIAN/$s' && sh -n '$dir/DEBIAN/$s' &&
		     grep -qx 'set -e' '$dir/DEBIAN/$s'"
	done
	check "$pkg: md5sums match the files" sh -c \
	    "cd '$dir' && md5sum --quiet -c DEBIAN/md5sums"
	check "$pkg: copyright and changelog.Debian.gz" test \
	    -f "$dir/usr/share/doc/$pkg/copyright" -a \
	    -f "$dir/usr/share/doc/$pkg/changelog.Debian.gz"
	for b in "$@"; do
		case $b in
		*.[158])
			check "$pkg: man page $b" want_mode "$listing" \
			    "usr/share/man/man${b##*.}/$b.gz" "-rw-r--r-- root/root"
			;;
		*)
			check "$pkg: usr/bin/$b 0755, stripped, runs" sh -c \
			    "test \"\$(awk -v p=./usr/bin/$b '\$6 == p { print \$1, \$2 }' '$listing')\" = '-rwxr-xr-x root/root' &&
			     ! objdump -h '$dir/usr/bin/$b' | grep -q '\.debug_info' &&
			     '$dir/usr/bin/$b' --help >/dev/null"
			;;
		esac
	done
}

check_archive mtasts-watch-agent "$AGENT_DEB" agent.conf \
    mtasts-agent.service mtasts-agent mtasts-agent.8 mtasts-agent.conf.5
check_archive mtasts-watch-collector "$COLL_DEB" collector.conf \
    mtasts-collector.service mtasts-collector mtasts-report \
    mtasts-collector.8 mtasts-collector.conf.5 mtasts-report.1
sql_want=$(cd deploy/sql && ls -- *.sql)
sql_got=$(cd "$tmp/x-mtasts-watch-collector/usr/share/mtasts-watch/sql" \
    2>/dev/null && ls -- *.sql)
check "mtasts-watch-collector: usr/share/mtasts-watch/sql holds deploy/sql" \
    test -n "$sql_want" -a "$sql_want" = "$sql_got"

# ---- lintian --------------------------------------------------------------
lintian --no-tag-display-limit "$AGENT_DEB" "$COLL_DEB" >"$tmp/lintian" 2>&1
errors=$(grep '^E: ' "$tmp/lintian")
warns=$(grep '^W: ' "$tmp/lintian" | grep -vwF "$LINTIAN_WARN_OK")
grep -E '^(E|W|I): ' "$tmp/lintian" | sed 's/^/  /'
if [ -z "$errors" ]; then
	pass "lintian: no error"
else
	fail "lintian: errors"
fi
if [ -z "$warns" ]; then
	pass "lintian: no warning but those explained in deploy/deb/README.md"
else
	fail "lintian: unexplained warnings"
fi

# ---- man pages ------------------------------------------------------------
PAGES="mtasts-agent.8 mtasts-agent.conf.5 mtasts-collector.8
mtasts-collector.conf.5 mtasts-report.1"
for page in $PAGES; do
	f=docs/man/$page
	if command -v mandoc >/dev/null 2>&1; then
		# STYLE messages (such as pages of other packages not
		# installed here) are advice; warnings and errors fail.
		msgs=$(mandoc -T lint -W warning "$f" 2>&1 | grep -v 'mandoc.db')
		how="mandoc -T lint"
	else
		msgs=$(groff -mandoc -ww -z "$f" 2>&1)
		how="groff -ww"
	fi
	if [ -n "$msgs" ]; then
		printf '%s\n' "$msgs" | sed 's/^/  /'
		fail "man: $page: $how"
	else
		pass "man: $page: $how"
	fi
	groff -mandoc -Tascii -P-cbou "$f" >"$tmp/page.txt" 2>/dev/null
	check "man: $page renders with NAME, EXIT STATUS or FILES, SEE ALSO" \
	    sh -c "grep -qx NAME '$tmp/page.txt' &&
		   grep -qxE 'EXIT STATUS|FILES' '$tmp/page.txt' &&
		   grep -qx 'SEE ALSO' '$tmp/page.txt'"
done

# documented PAGE HELPTEXT: every option the usage text shows is in PAGE
# (long ones as "Fl -name", short ones as "Fl x").
documented() {
	page=docs/man/$1
	help=$2
	miss=
	for o in $(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
		grep -qE "Fl -${o#--}( |$)" "$page" || miss="$miss $o"
	done
	for o in $(printf '%s\n' "$help" |
	    grep -oE -- '(^|[[ ])-[a-zA-Z]( |\]|$)' | tr -d '[] ' | sort -u); do
		grep -qE "Fl ${o#-}( |$)" "$page" || miss="$miss $o"
	done
	if [ -n "$miss" ]; then
		echo "  $1 lacks:$miss"
		return 1
	fi
}
agent_help=$("$BINDIR/mtasts-agent" --help 2>&1)
for c in probe run keygen; do
	agent_help="$agent_help
$("$BINDIR/mtasts-agent" "$c" --help 2>&1)"
done
check "man: mtasts-agent.8 documents every option of --help" \
    documented mtasts-agent.8 "$agent_help"
check "man: mtasts-collector.8 documents every option of --help" \
    documented mtasts-collector.8 "$("$BINDIR/mtasts-collector" --help 2>&1)"
check "man: mtasts-report.1 documents every option of --help" \
    documented mtasts-report.1 "$("$BINDIR/mtasts-report" --help 2>&1)"
# Commands: "usage: mtasts-report [...] CMD ..." lines, or one "  CMD ..."
# line each.
report_cmds=$("$BINDIR/mtasts-report" --help 2>&1 |
    sed -n 's/^usage: .*\] \([a-z][a-z]*\).*/\1/p; s/^       .*\] \([a-z][a-z]*\).*/\1/p; s/^  \([a-z][a-z]*\).*/\1/p' |
    sort -u)
miss=
for c in $report_cmds; do
	grep -qE "^\.Cm $c( |$)" docs/man/mtasts-report.1 || miss="$miss $c"
done
check "man: mtasts-report.1 documents every command of --help${miss:+ (lacks$miss)}" \
    test -z "$miss" -a -n "$report_cmds"

# keys_in PAGE KEY...: each KEY is named by "Cm KEY" on an ".It" line.
keys_in() {
	page=docs/man/$1
	shift
	miss=
	[ $# -gt 0 ] || miss=" (no key parsed)"
	for k in "$@"; do
		grep -qE "^\.It (.* )?Cm $k( |$)" "$page" || miss="$miss $k"
	done
	if [ -n "$miss" ]; then
		echo "  $(basename "$page") lacks:$miss"
		return 1
	fi
}
# The parsers' key tables: [K_X] = {"key", ...} and {SEC_X, "key", ...}.
# shellcheck disable=SC2046 # one word per key
check "man: mtasts-agent.conf.5 documents every key of agent_config.c" \
    keys_in mtasts-agent.conf.5 $(sed -n \
    's/^[[:space:]]*\[K_[A-Z_]*\] = {"\([a-z_]*\)".*/\1/p' agent/agent_config.c)
# shellcheck disable=SC2046
check "man: mtasts-collector.conf.5 documents every key of collector_config.c" \
    keys_in mtasts-collector.conf.5 $(sed -n \
    's/^[[:space:]]*\[K_[A-Z_]*\] = {SEC_[A-Z]*, "\([a-z_]*\)".*/\1/p' \
    collector/collector_config.c)

# ---- installation into a scratch root -------------------------------------
# dpkg --root with --force-script-chrootless runs the maintainer scripts on
# this host with DPKG_ROOT set, which they honour; --force-depends because
# the scratch root has no libraries.  Not root: fakeroot keeps the owners
# that the scripts set, across calls, in a state file.
R=$tmp/root
state=$tmp/fakeroot.state
: >"$state"
fr() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	else
		fakeroot -i "$state" -s "$state" -- "$@"
	fi
}
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc"
: >"$R/var/lib/dpkg/status"
: >"$R/var/lib/dpkg/available"
DPKG="dpkg --root=$R --force-not-root --force-script-chrootless --force-depends --log=$tmp/dpkg.log"

# snap: records "PATH MODE UID:GID" of everything in the scratch root, in
# one call (fakeroot with a state file takes a second or two to start).
snap() {
	fr find "$R" -printf '%P %m %U:%G\n' >"$tmp/snap" 2>/dev/null
}
# st PATH: "MODE UID:GID" of PATH in the scratch root, as of the last snap.
st() {
	got=$(awk -v p="${1#/}" '$1 == p { print $2, $3 }' "$tmp/snap")
	echo "${got:-missing}"
}
# want_st PATH "MODE UID:GID"
want_st() {
	got=$(st "$1")
	if [ "$got" != "$2" ]; then
		echo "  $1: $got, want $2"
		return 1
	fi
}

# shellcheck disable=SC2086 # DPKG is words
if fr $DPKG -i "$AGENT_DEB" "$COLL_DEB" >"$tmp/install.log" 2>&1; then
	pass "install: dpkg --root -i both packages"
else
	cat "$tmp/install.log"
	fail "install: dpkg --root -i both packages"
fi
snap
uid=$(awk -F: '$1 == "mtasts-watch" { print $3 }' "$R/etc/passwd" 2>/dev/null)
gid=$(awk -F: '$1 == "mtasts-watch" { print $3 }' "$R/etc/group" 2>/dev/null)
check "install: user and group mtasts-watch in the root's passwd and group" \
    test -n "$uid" -a -n "$gid"
check "install: user's home /var/lib/mtasts-watch, shell nologin" sh -c \
    "grep -q '^mtasts-watch:[^:]*:[0-9]*:[0-9]*:[^:]*:/var/lib/mtasts-watch:/usr/sbin/nologin$' '$R/etc/passwd'"
check "install: /etc/mtasts-watch 755 root" want_st /etc/mtasts-watch "755 0:0"
check "install: agent.conf 640 root:mtasts-watch" \
    want_st /etc/mtasts-watch/agent.conf "640 0:$gid"
check "install: collector.conf 640 root:mtasts-watch" \
    want_st /etc/mtasts-watch/collector.conf "640 0:$gid"
check "install: /etc/mtasts-watch/agent 700 mtasts-watch" \
    want_st /etc/mtasts-watch/agent "700 $uid:$gid"
check "install: /etc/mtasts-watch/collector 700 mtasts-watch" \
    want_st /etc/mtasts-watch/collector "700 $uid:$gid"
check "install: /etc/mtasts-watch/agents 750 root:mtasts-watch" \
    want_st /etc/mtasts-watch/agents "750 0:$gid"
check "install: /var/lib/mtasts-watch 700 mtasts-watch" \
    want_st /var/lib/mtasts-watch "700 $uid:$gid"
check "install: collector key pair made, secret 600 mtasts-watch" \
    want_st /etc/mtasts-watch/collector/collector.key_secret "600 $uid:$gid"
check "install: collector.key 644 mtasts-watch" \
    want_st /etc/mtasts-watch/collector/collector.key "644 $uid:$gid"
check "install: no agent key unless asked, and the hint says how" sh -c \
    "test ! -e '$R/etc/mtasts-watch/agent/agent.key_secret' &&
     grep -q 'mtasts-agent keygen' '$tmp/install.log'"
for u in mtasts-agent mtasts-collector; do
	check "install: $u.service enabled (wants link), not masked" sh -c \
	    "test \"\$(readlink '$R/etc/systemd/system/multi-user.target.wants/$u.service')\" = /lib/systemd/system/$u.service &&
	     test ! -e '$R/etc/systemd/system/$u.service'"
done

# The shipped configurations, pointed at the scratch root, pass -n with the
# key the package made (the agent with the collector's public key copied
# over, as an operator does).
sed "s#/etc/mtasts-watch#$R/etc/mtasts-watch#; s#/usr/share/mtasts-watch#$R/usr/share/mtasts-watch#" \
    "$R/etc/mtasts-watch/collector.conf" >"$tmp/collector.conf"
check "install: packaged collector.conf and key pass mtasts-collector -n" sh -c \
    "'$R/usr/bin/mtasts-collector' --config '$tmp/collector.conf' -n 2>&1 |
     grep -qx 'configuration OK'"
mcoll_before=$(md5sum <"$R/etc/mtasts-watch/collector/collector.key_secret")

# Reinstall (the upgrade path: prerm upgrade, postinst configure OLDVER),
# asked for the agent key this time; an admin's mode on agent.conf stays.
fr chmod 0600 "$R/etc/mtasts-watch/agent.conf"
# shellcheck disable=SC2086
if fr env MTASTS_AGENT_NAME=ams-1 MTASTS_AGENT_REGION=eu-west \
    $DPKG -i "$AGENT_DEB" "$COLL_DEB" >"$tmp/reinstall.log" 2>&1; then
	pass "reinstall: dpkg --root -i again"
else
	cat "$tmp/reinstall.log"
	fail "reinstall: dpkg --root -i again"
fi
snap
check "reinstall: agent key made when asked, secret 600 mtasts-watch" \
    want_st /etc/mtasts-watch/agent/agent.key_secret "600 $uid:$gid"
check "reinstall: agent.key carries name and region" sh -c \
    "grep -q 'name = \"ams-1\"' '$R/etc/mtasts-watch/agent/agent.key' &&
     grep -q 'region = \"eu-west\"' '$R/etc/mtasts-watch/agent/agent.key'"
check "reinstall: collector key kept" test \
    "$(md5sum <"$R/etc/mtasts-watch/collector/collector.key_secret")" = "$mcoll_before"
check "reinstall: admin's mode on agent.conf kept" \
    want_st /etc/mtasts-watch/agent.conf "600 0:$gid"
check "reinstall: collector.conf still 640 root:mtasts-watch" \
    want_st /etc/mtasts-watch/collector.conf "640 0:$gid"
check "reinstall: one mtasts-watch user" test \
    "$(grep -c '^mtasts-watch:' "$R/etc/passwd")" = 1
cp "$R/etc/mtasts-watch/collector/collector.key" "$tmp/collector.key"
sed "s#/etc/mtasts-watch/agent/#$R/etc/mtasts-watch/agent/#; s#/etc/mtasts-watch/collector.key#$tmp/collector.key#; s#/var/lib/mtasts-watch#$R/var/lib/mtasts-watch#" \
    "$R/etc/mtasts-watch/agent.conf" >"$tmp/agent.conf"
check "reinstall: packaged agent.conf and key pass mtasts-agent run -n" sh -c \
    "'$R/usr/bin/mtasts-agent' run --config '$tmp/agent.conf' -n 2>&1 |
     grep -qx 'configuration OK'"

# shellcheck disable=SC2086
if fr $DPKG --remove mtasts-watch-agent >"$tmp/remove.log" 2>&1; then
	pass "remove: dpkg --root --remove mtasts-watch-agent"
else
	cat "$tmp/remove.log"
	fail "remove: dpkg --root --remove mtasts-watch-agent"
fi
check "remove: binary gone, agent.conf and key kept" sh -c \
    "test ! -e '$R/usr/bin/mtasts-agent' &&
     test -f '$R/etc/mtasts-watch/agent.conf' &&
     test -f '$R/etc/mtasts-watch/agent/agent.key_secret'"
check "remove: collector untouched" test -x "$R/usr/bin/mtasts-collector"

# shellcheck disable=SC2086
if fr $DPKG --purge mtasts-watch-agent mtasts-watch-collector \
    >"$tmp/purge.log" 2>&1; then
	pass "purge: dpkg --root --purge both packages"
else
	cat "$tmp/purge.log"
	fail "purge: dpkg --root --purge both packages"
fi
check "purge: /etc/mtasts-watch and /var/lib/mtasts-watch gone" sh -c \
    "test ! -e '$R/etc/mtasts-watch' && test ! -e '$R/var/lib/mtasts-watch'"
check "purge: no unit link or mask left" sh -c \
    "test -z \"\$(find '$R/etc/systemd' -name 'mtasts-*' 2>/dev/null)\""
check "purge: the user stays (files may still belong to it)" \
    grep -q '^mtasts-watch:' "$R/etc/passwd"

finish
