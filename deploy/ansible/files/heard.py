#!/usr/bin/env python3
"""heard.py -- has the collector heard agent NAME lately?  Run on the
collector host by the playbook's verification, once per poll.

    heard.py --name NAME --max-age SECS [--report PATH] [--psql PATH]
             [--runas USER]

The database is the libpq conninfo in $MTASTS_DATABASE (kept out of the
command line, so a password in it stays out of Ansible's output).  When
`mtasts-report --format json agents` exists it is asked; otherwise, or if
its answer cannot be read, psql reads the agents table.  A row counts when
its name is NAME and last_seen is at most SECS old (the collector moves
last_seen on every hello and heartbeat).

Prints one JSON object and exits 0 when heard, 1 when not (yet), 2 when the
database cannot be asked.
"""

import argparse
import datetime
import json
import os
import pwd
import subprocess
import sys

QUERY_TIMEOUT = 20


def run(argv, runas, **kw):
    if runas and runas != pwd.getpwuid(os.geteuid()).pw_name:
        # Peer authentication maps the Unix user to the database role.
        argv = ["runuser", "-u", runas, "--"] + argv
    return subprocess.run(argv, capture_output=True, timeout=QUERY_TIMEOUT,
                          **kw)


def dig(entry, *paths):
    """The first of the dotted paths that entry has, else None.  The rows
    of mtasts-report are ECS-shaped (observer.name, mtasts.last_seen)."""
    for path in paths:
        v = entry
        for k in path.split("."):
            v = v.get(k) if isinstance(v, dict) else None
        if v is not None:
            return v
    return None


def age_of(entry):
    """Seconds since entry's last_seen, or None when it carries none."""
    ts = dig(entry, "mtasts.last_seen", "last_seen")
    if not isinstance(ts, str):
        return None
    t = datetime.datetime.fromisoformat(ts.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return (datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()


def via_report(args):
    """(found, region, age) from `mtasts-report agents`, or None when it has
    no such command or says something we cannot read."""
    if not os.access(args.report, os.X_OK):
        return None
    try:
        helped = run([args.report, "--help"], args.runas)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if b" agents " not in helped.stdout + helped.stderr:
        return None
    # The conninfo comes from $MTASTS_DATABASE, as for psql.
    p = run([args.report, "--format", "json", "agents"], args.runas)
    if p.returncode not in (0, 1):
        return None
    try:
        text = p.stdout.decode()
        # JSON Lines; a single array is read as well.
        rows = []
        for line in text.splitlines():
            if line.strip():
                doc = json.loads(line)
                rows.extend(doc if isinstance(doc, list) else [doc])
        for e in rows:
            if dig(e, "observer.name", "name") == args.name:
                age = age_of(e)
                if age is None:
                    return None
                region = dig(e, "observer.geo.name", "region")
                return True, str(region or ""), age
        return False, "", None
    except (ValueError, TypeError, AttributeError):
        return None


def via_psql(args, db):
    sql = ("SELECT region, floor(extract(epoch FROM now() - last_seen))"
           " FROM agents WHERE name = :'name'"
           " ORDER BY last_seen DESC LIMIT 1;\n")
    p = run([args.psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
             "-v", "name=" + args.name, "-d", db], args.runas,
            input=sql.encode())
    if p.returncode != 0:
        raise RuntimeError("psql: " + p.stderr.decode(errors="replace")
                           .strip())
    line = p.stdout.decode().strip()
    if not line:
        return False, "", None
    region, age = line.split("|", 1)
    return True, region, float(age)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--max-age", type=float, required=True)
    ap.add_argument("--report", default="/usr/bin/mtasts-report")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--runas", default="")
    args = ap.parse_args()
    db = os.environ.get("MTASTS_DATABASE", "")
    if not db:
        print(json.dumps({"heard": False, "error": "MTASTS_DATABASE unset"}))
        return 2
    try:
        got, via = via_report(args), "report"
        if got is None:
            got, via = via_psql(args, db), "psql"
    except (OSError, RuntimeError, ValueError,
            subprocess.TimeoutExpired) as e:
        print(json.dumps({"heard": False, "error": str(e)}))
        return 2
    found, region, age = got
    heard = found and age is not None and age <= args.max_age
    print(json.dumps({"heard": heard, "found": found, "via": via,
                      "name": args.name, "region": region, "age_s": age}))
    return 0 if heard else 1


if __name__ == "__main__":
    sys.exit(main())
