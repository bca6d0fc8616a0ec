#!/usr/bin/env python3
"""report_cli.py -- `mtasts-report` against a populated schema.

Makes a private schema on $MTASTS_TEST_PG (tests/run.sh provides it), lets
`mtasts-report domains add` apply the migrations, fills one compared
round of example.com seen by two agents (certificates, hosts, chains) and
two incidents with psql, then runs every command of mtasts-report in each
output format and checks what it prints and its exit status.  Prints
"ok NAME" / "FAIL NAME: why" and closes with "report: N passed, M failed".
"""

import csv
import io
import json
import os
import pty
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ROUND = 1000
# A comma and a quote in a DN: CSV must quote the field and double the
# quote (RFC 4180).
ISSUER = 'CN=Test CA,O="Q, Inc."'

FIXTURE = """
INSERT INTO agents (public_key, name, region, first_seen, last_seen)
VALUES ('KEYA0000000000000000000000000000000000000', 'agent-1', 'eu-west',
        now() - interval '30 days', now()),
       ('KEYB0000000000000000000000000000000000000', 'agent-2', 'us-east',
        now() - interval '30 days', now() - interval '2 hours');
INSERT INTO certificates (sha256, spki_sha256, der, subject, issuer, serial,
    not_before, not_after, san, key_type, key_bits, sig_alg)
VALUES (decode(repeat('11', 32), 'hex'), decode(repeat('aa', 32), 'hex'),
        '\\x00', 'CN=mta-sts.example.com', '{issuer}', 'ABCD',
        now() - interval '1 day', now() + interval '10 days 1 hour',
        '{{mta-sts.example.com}}', 'EC', 256, 'ecdsa-with-SHA256'),
       (decode(repeat('22', 32), 'hex'), decode(repeat('bb', 32), 'hex'),
        '\\x00', 'CN=mx1.example.com', '{issuer}', 'BCDE',
        now() - interval '1 day', now() + interval '100 days 1 hour',
        '{{mx1.example.com}}', 'RSA', 2048, 'sha256WithRSAEncryption');
INSERT INTO results (agent_id, seq, domain, round, started_at, duration_ms,
    completed, received_at)
SELECT id, 1, 'example.com', {round}, now(), 800, true, now() FROM agents;
INSERT INTO dns_observations (result_id, received_at, sts_present, sts_id,
    sts_valid, tlsrpt_present)
SELECT id, received_at, true, '20240101', true, false FROM results;
INSERT INTO policy_observations (result_id, received_at, http_status,
    sha256, mode, mx, max_age, valid)
SELECT id, received_at, 200, decode(repeat('cd', 32), 'hex'), 'enforce',
       '{{mx1.example.com}}', 604800, true FROM results;
INSERT INTO host_observations (result_id, received_at, role, position, host,
    addresses, ip, tls_ok, tls_version, cipher, verified, handshake_ms)
SELECT id, received_at, 'policy', 0, 'mta-sts.example.com', '{{192.0.2.1}}',
       '192.0.2.1', true, 'TLSv1.3', 'TLS_AES_128_GCM_SHA256', true, 20
FROM results;
INSERT INTO host_observations (result_id, received_at, role, position, host,
    preference, starttls, policy_match, addresses, ip, tls_ok, tls_version,
    cipher, verified, handshake_ms)
SELECT id, received_at, 'mx', 0, 'mx1.example.com', 10, true, 1,
       '{{192.0.2.25}}', '192.0.2.25', true, 'TLSv1.2', 'ECDHE-RSA', true, 30
FROM results;
INSERT INTO chain_certs (result_id, received_at, role, host_position, host,
    position, cert_sha256)
SELECT id, received_at, 'policy', 0, 'mta-sts.example.com', 0,
       decode(repeat('11', 32), 'hex') FROM results
UNION ALL
SELECT id, received_at, 'mx', 0, 'mx1.example.com', 0,
       decode(repeat('22', 32), 'hex') FROM results;
INSERT INTO round_status (domain, round, state, vantages, completed)
VALUES ('example.com', {round}, 'compared', 2, 2);
INSERT INTO incidents (domain, code, subject, severity, detail, stage,
    vantages, first_seen, last_seen)
VALUES ('example.com', 'CERT_EXPIRING', 'mta-sts.example.com', 'error',
        'expires in 10 days', '14d', '{{agent-1,agent-2}}',
        now() - interval '3 days', now() - interval '5 minutes');
INSERT INTO incidents (domain, code, subject, severity, state, detail,
    first_seen, last_seen, resolved_at)
VALUES ('example.com', 'POLICY_MODE_TESTING', 'mta-sts.example.com',
        'info', 'resolved', 'was testing', now() - interval '20 days',
        now() - interval '10 days', now() - interval '10 days');
""".format(issuer=ISSUER.replace("'", "''"), round=ROUND)


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, why=""):
        if cond:
            self.passed += 1
            print("ok %s" % name, flush=True)
        else:
            self.failed += 1
            why = str(why).replace("\n", " | ")[:600]
            print("FAIL %s: %s" % (name, why or "condition false"),
                  flush=True)
        return bool(cond)


def binpath(name):
    bindir = os.environ.get("BINDIR", "bin")
    path = os.path.join(bindir, name)
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


def psql(conninfo, sql):
    p = subprocess.run(["psql", conninfo, "-X", "-q", "-At", "-v",
                        "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("psql: %s" % p.stderr.decode(errors="replace"))
    return [line.split("|") for line in p.stdout.decode().splitlines()
            if line]


def report(conninfo, *args, env_db=False):
    """Runs mtasts-report with stdout a pipe (not a terminal)."""
    cmd = [binpath("mtasts-report")]
    env = dict(os.environ)
    env.pop("MTASTS_DATABASE", None)
    if env_db:
        env["MTASTS_DATABASE"] = conninfo
    elif conninfo is not None:
        cmd += ["--database", conninfo]
    env["MTASTS_MIGRATIONS"] = os.path.join(ROOT, "deploy", "sql")
    p = subprocess.run(cmd + list(args), capture_output=True, timeout=60,
                       env=env, cwd=ROOT)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def report_tty(conninfo, *args, no_color=False):
    """Runs mtasts-report with stdout a terminal (a pty)."""
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    master, slave = pty.openpty()
    p = subprocess.Popen([binpath("mtasts-report"), "--database", conninfo] +
                         list(args), stdout=slave, stderr=subprocess.PIPE,
                         env=env, cwd=ROOT)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:  # EIO once the child closed its end
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    p.wait(timeout=60)
    p.stderr.close()
    return p.returncode, b"".join(chunks).decode(errors="replace")


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line]


def get(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def checks(res, ci):
    rc, out, err = report(ci, "domains", "add", "example.com",
                          "idle.example")
    res.check("domains add", rc == 0 and "added example.com" in out,
              (rc, out, err))
    psql(ci, FIXTURE)
    rc, out, err = report(ci, "domains", "list")
    res.check("domains list", rc == 0 and
              out.split() == ["example.com", "idle.example"], (rc, out))

    # status: JSON Lines by default when stdout is not a terminal.
    rc, out, err = report(ci, "status", env_db=True)
    rows = jsonl(out) if rc == 0 else []
    res.check("status json lines", rc == 0 and len(rows) == 2 and
              len(out.splitlines()) == 2, (rc, out, err))
    if rows:
        ex = rows[0]
        res.check("status fields",
                  get(ex, "mtasts.domain") == "example.com" and
                  get(ex, "mtasts.mode") == "enforce" and
                  get(ex, "mtasts.round") == ROUND and
                  get(ex, "mtasts.policy_host.days_left") == 10 and
                  get(ex, "mtasts.vantages.agreeing") == 2 and
                  get(ex, "mtasts.vantages.total") == 2 and
                  get(ex, "mtasts.incidents.open") == 1 and
                  get(ex, "mtasts.incidents.worst.code") ==
                  "CERT_EXPIRING" and
                  get(ex, "server.address") == "mta-sts.example.com" and
                  isinstance(get(ex, "tls.server.x509.not_after"), str),
                  ex)
    rc, out, err = report(ci, "--format", "table", "status")
    lines = out.splitlines()
    res.check("status table",
              rc == 0 and len(lines) == 3 and lines[0].startswith("DOMAIN") and
              lines[1].startswith("example.com") and "\033" not in out and
              lines[0].index("MODE") == lines[1].index("enforce") and
              "2/2" in lines[1] and "error CERT_EXPIRING" in lines[1],
              out)
    rc, out = report_tty(ci, "status")
    res.check("status on a terminal: table, colour",
              rc == 0 and out.startswith("DOMAIN") and
              "\033[31merror CERT_EXPIRING\033[0m" in out, repr(out))
    rc, out = report_tty(ci, "status", no_color=True)
    res.check("NO_COLOR", rc == 0 and out.startswith("DOMAIN") and
              "\033" not in out, repr(out))
    rc, out, err = report(ci, "status", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    res.check("status csv",
              rc == 0 and out.endswith("\r\n") and len(rows) == 3 and
              rows[0][0] == "mtasts.domain" and
              rows[1][:3] == ["example.com", "enforce", "10"] and
              rows[2][0] == "idle.example", out)
    rc, out, err = report(ci, "status", "--format", "cef")
    res.check("status refuses cef", rc == 2 and "cef" in err and not out,
              (rc, err))

    # domain
    rc, out, err = report(ci, "--format", "json", "domain", "Example.COM.")
    d = json.loads(out) if rc == 0 and out else {}
    hosts = get(d, "mtasts.hosts") or []
    res.check("domain json",
              rc == 0 and len(out.splitlines()) == 1 and
              get(d, "mtasts.sts.id") == "20240101" and
              get(d, "mtasts.policy.mode") == "enforce" and
              get(d, "mtasts.policy.sha256") == "cd" * 32 and
              len(hosts) == 2 and
              get(hosts[0], "tls.server.x509.issuer.distinguished_name") ==
              ISSUER and
              get(hosts[0], "tls.server.hash.sha256") == "11" * 32 and
              get(hosts[0], "tls.version") == "1.3" and
              get(hosts[1], "tls.server.x509.serial_number") == "BCDE" and
              get(hosts[1], "mtasts.days_left") == 100 and
              len(get(d, "mtasts.matrix") or []) == 2 and
              len(get(d, "mtasts.incidents") or []) == 1, out or err)
    rc, out, err = report(ci, "--format", "table", "domain", "example.com")
    res.check("domain text", rc == 0 and "sts id       20240101" in out and
              "\nHOSTS\n" in out and "\nVANTAGES\n" in out and
              "agent-2" in out, out)
    rc, out, err = report(ci, "--format", "csv", "domain", "example.com")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    res.check("domain csv", rc == 0 and len(rows) == 3 and
              rows[1][0] == "policy" and rows[1][3] == ISSUER, out)
    rc, out, err = report(ci, "domain", "unknown.example")
    res.check("domain unknown exits 1", rc == 1 and not out and
              "unknown" in err, (rc, out, err))
    rc, out, err = report(ci, "domain", "bad_name")
    res.check("domain bad name exits 2", rc == 2, (rc, err))

    # incidents
    rc, out, err = report(ci, "incidents")
    res.check("incidents all", rc == 0 and len(jsonl(out)) == 2, out)
    rc, out, err = report(ci, "incidents", "--open")
    rows = jsonl(out) if rc == 0 else []
    res.check("incidents --open", len(rows) == 1 and
              get(rows[0], "rule.name") == "CERT_EXPIRING" and
              get(rows[0], "event.kind") == "alert" and
              get(rows[0], "event.severity") == 9 and
              get(rows[0], "mtasts.stage") == "14d", out)
    rc, out, err = report(ci, "incidents", "--severity", "warning")
    res.check("incidents --severity", rc == 0 and len(jsonl(out)) == 1, out)
    rc, out, err = report(ci, "incidents", "--since", "24h")
    res.check("incidents --since 24h", rc == 0 and len(jsonl(out)) == 1,
              out)
    rc, out, err = report(ci, "incidents", "--since", "2000-01-01T00:00:00Z")
    res.check("incidents --since RFC 3339", rc == 0 and
              len(jsonl(out)) == 2, out)
    rc, out, err = report(ci, "incidents", "--since", "2999-01-01")
    res.check("incidents none found exits 1", rc == 1 and out == "",
              (rc, out))
    rc, out, err = report(ci, "incidents", "--format", "cef")
    lines = out.splitlines()
    res.check("incidents cef", rc == 0 and len(lines) == 2 and
              all(x.startswith("CEF:0|mtasts-watch|mtasts-collector|")
                  for x in lines) and "|CERT_EXPIRING|" in out, out)
    rc, out, err = report(ci, "incidents", "--format", "csv", "--open")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    res.check("incidents csv", rc == 0 and len(rows) == 2 and
              rows[0][0] == "mtasts.incident_id" and
              "CERT_EXPIRING" in rows[1], out)
    rc, out, err = report(ci, "incidents", "--since", "yesterday")
    res.check("incidents bad --since exits 2", rc == 2, (rc, err))
    rc, out, err = report(ci, "incidents", "--severity", "critical")
    res.check("incidents bad --severity exits 2", rc == 2, (rc, err))

    # expiring
    rc, out, err = report(ci, "expiring", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    res.check("expiring csv (30 days)",
              rc == 0 and len(rows) == 2 and rows[1][0] == "10" and
              rows[1][4] == "mta-sts.example.com" and rows[1][6] == ISSUER and
              '"CN=Test CA,O=""Q, Inc."""' in out, out)
    rc, out, err = report(ci, "expiring", "--days", "365")
    rows = jsonl(out)
    res.check("expiring --days 365 soonest first",
              rc == 0 and [get(r, "mtasts.days_left") for r in rows] ==
              [10, 100] and get(rows[1], "mtasts.role") == "mx", out)
    rc, out, err = report(ci, "expiring", "--days", "5")
    res.check("expiring nothing exits 1", rc == 1 and out == "", (rc, out))
    rc, out, err = report(ci, "expiring", "--days", "x")
    res.check("expiring bad --days exits 2", rc == 2, (rc, err))
    rc, out, err = report(ci, "expiring", "--open")
    res.check("option of another command exits 2", rc == 2, (rc, err))

    # agents
    rc, out, err = report(ci, "--format", "table", "agents")
    lines = out.splitlines()
    res.check("agents table", rc == 0 and len(lines) == 3 and
              lines[0].startswith("NAME") and "KEYA00000000..." in out and
              "KEYA0000000000000" not in out, out)
    rc, out, err = report(ci, "agents")
    rows = jsonl(out)
    res.check("agents json", rc == 0 and len(rows) == 2 and
              get(rows[0], "observer.name") == "agent-1" and
              get(rows[0], "mtasts.silent") is False and
              get(rows[1], "mtasts.silent") is True and
              get(rows[1], "observer.geo.name") == "us-east", out)

    # ack
    iid = psql(ci, "SELECT id FROM incidents WHERE state = 'open'")[0][0]
    rc, out, err = report(ci, "ack", iid, "--by", "alice", "--note",
                          "on it", "--format", "json")
    d = json.loads(out) if rc == 0 and out else {}
    res.check("ack", rc == 0 and get(d, "mtasts.ack.by") == "alice" and
              psql(ci, "SELECT acked_by, ack_note FROM incidents WHERE "
                   "id = %s" % iid) == [["alice", "on it"]] and
              psql(ci, "SELECT count(*) FROM incident_events WHERE "
                   "kind = 'ack'") == [["1"]], (rc, out, err))
    rc, out, err = report(ci, "ack", "999999")
    res.check("ack unknown id exits 1", rc == 1, (rc, err))
    rc, out, err = report(ci, "ack", "12; DROP TABLE incidents")
    res.check("ack bad id exits 2", rc == 2, (rc, err))

    # failures
    rc, out, err = report(None, "status")
    res.check("no database exits 2", rc == 2 and "database" in err, err)
    rc, out, err = report("host=/nonexistent-mtasts port=1 "
                          "connect_timeout=2", "status")
    res.check("database down exits 2", rc == 2 and "database" in err, err)
    rc, out, err = report(ci, "frobnicate")
    res.check("unknown command exits 2", rc == 2, err)
    rc, out, err = report(ci, "--format", "xml", "status")
    res.check("unknown format exits 2", rc == 2, err)


def main():
    res = Results()
    base = os.environ.get("MTASTS_TEST_PG")
    if not base:
        res.check("database", False, "MTASTS_TEST_PG is not set "
                  "(tests/run.sh sets it)")
        print("report: %d passed, %d failed" % (res.passed, res.failed))
        return 1
    schema = "rcli_%d" % os.getpid()
    ci = "%s options='-csearch_path=%s'" % (base, schema)
    try:
        psql(base, "CREATE SCHEMA %s" % schema)
        checks(res, ci)
    except Exception as e:  # a broken fixture is a failure, not a crash
        res.check("report_cli", False, repr(e))
    finally:
        try:
            psql(base, "DROP SCHEMA IF EXISTS %s CASCADE" % schema)
        except Exception:
            pass
    print("report: %d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed or not res.passed else 0


if __name__ == "__main__":
    sys.exit(main())
