# common.sh -- helpers of the two postinst scripts.  build.sh pastes this
# file where a script says #COMMON#, so that each script stays one file.
#
# DPKG_ROOT is empty for a normal installation.  dpkg sets it to the target
# root when it installs with --root=DIR --force-script-chrootless, and then
# runs these scripts on the host: every path below is prefixed with it, and
# nothing talks to the running systemd or resolves names through the host's
# NSS.
DPKG_ROOT=${DPKG_ROOT:-}
MW_USER=mtasts-watch

mw_warn() {
	echo "${DPKG_MAINTSCRIPT_PACKAGE:-mtasts-watch}: $*" >&2
}

# The system user and group, from the sysusers.d file this package ships
# (an admin's copy in /etc/sysusers.d wins, as systemd-sysusers does it).
# adduser is the fallback on a host without systemd-sysusers.
mw_add_user() {
	if command -v systemd-sysusers >/dev/null 2>&1; then
		if [ -n "$DPKG_ROOT" ]; then
			systemd-sysusers --root="$DPKG_ROOT" "$1"
		else
			systemd-sysusers "$1"
		fi
	elif [ -n "$DPKG_ROOT" ]; then
		mw_warn "installing into $DPKG_ROOT needs systemd-sysusers"
		return 1
	elif command -v adduser >/dev/null 2>&1; then
		adduser --system --group --quiet --no-create-home \
		    --home /var/lib/mtasts-watch --shell /usr/sbin/nologin \
		    --gecos "mtasts-watch daemons" "$MW_USER"
	else
		mw_warn "neither systemd-sysusers nor adduser found"
		return 1
	fi
}

# Numeric ids of the service user, looked up in the target's own files
# when installing into DPKG_ROOT.  Sets mw_uid and mw_gid.
mw_ids() {
	if [ -n "$DPKG_ROOT" ]; then
		mw_uid=$(awk -F: -v u="$MW_USER" '$1 == u { print $3 }' \
		    "$DPKG_ROOT/etc/passwd")
		mw_gid=$(awk -F: -v u="$MW_USER" '$1 == u { print $3 }' \
		    "$DPKG_ROOT/etc/group")
	else
		mw_uid=$(getent passwd "$MW_USER" | cut -d: -f3)
		mw_gid=$(getent group "$MW_USER" | cut -d: -f3)
	fi
	if [ -z "$mw_uid" ] || [ -z "$mw_gid" ]; then
		mw_warn "user or group $MW_USER not found"
		return 1
	fi
}

# mw_dir MODE UID GID PATH: makes PATH when it is missing.  An existing
# directory is left as the admin has it.
mw_dir() {
	if [ ! -d "$DPKG_ROOT$4" ]; then
		install -d -m "$1" -o "$2" -g "$3" "$DPKG_ROOT$4"
	fi
}

# The configuration is shipped root:root 0644, since the group does not
# exist when dpkg unpacks it; the daemons run as the service user, so it
# becomes root:mtasts-watch 0640 here.  Only a file still as shipped is
# changed, and never one under a dpkg-statoverride: an admin's choice
# stays.
mw_conf_mode() {
	f=$DPKG_ROOT$1
	[ -f "$f" ] || return 0
	if dpkg-statoverride --list "$1" >/dev/null 2>&1; then
		return 0
	fi
	if [ "$(stat -c %u:%g:%a "$f")" = "0:0:644" ]; then
		chown "0:$mw_gid" "$f"
		chmod 0640 "$f"
	fi
}

# Enabled, never started: the shipped configuration needs editing first.
# The same steps as dh_installsystemd's, so that an admin's disable or
# mask survives upgrades.  On upgrade a running daemon is restarted so it
# runs the new binary.
mw_unit_configure() {
	command -v deb-systemd-helper >/dev/null 2>&1 || return 0
	deb-systemd-helper unmask "$1" >/dev/null || true
	if deb-systemd-helper --quiet was-enabled "$1"; then
		deb-systemd-helper enable "$1" >/dev/null || true
	else
		deb-systemd-helper update-state "$1" >/dev/null || true
	fi
	if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			deb-systemd-invoke try-restart "$1" >/dev/null || true
		fi
	fi
}

# mw_owned PATH...: gives files to the service user (after keygen ran as
# root).
mw_owned() {
	for f in "$@"; do
		chown "$mw_uid:$mw_gid" "$DPKG_ROOT$f"
	done
}
