#!/usr/bin/env python3
"""network.py -- agents -> ZeroMQ (CURVE) -> collector -> PostgreSQL, for real.

Starts the loopback lab (unbound, HTTPS/SMTP servers) of run.py, a
collector on a private PostgreSQL schema ($MTASTS_TEST_PG, which
tests/run.sh provides), two allowed agents in two "regions" and one agent
whose key is not allowed.  Checks that every result reaches the database
exactly once and equal to what `mtasts-agent probe --json` says, that the
unknown agent is refused, and that a collector killed with SIGKILL and
restarted loses nothing.  Prints "ok NAME" / "FAIL NAME: why" and closes
with "network: N passed, M failed".
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, HERE)

import certs  # noqa: E402
import harness  # noqa: E402
import run as lab_run  # noqa: E402
import scenarios  # noqa: E402

DOMAINS = ["good.test", "certexpired.test", "mxnostarttls.test",
           "tlsrptmissing.test"]
INTERVAL = 10


class Results(lab_run.Results):
    pass


def psql(conninfo, sql):
    p = subprocess.run(["psql", conninfo, "-X", "-q", "-At", "-v",
                        "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("psql: %s" % p.stderr.decode(errors="replace"))
    return [line.split("|") for line in p.stdout.decode().splitlines()
            if line]


def binpath(name):
    bindir = os.environ.get("BINDIR", "bin")
    path = os.path.join(bindir, name)
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def keygen(tool, cmd, d, *extra):
    os.makedirs(d, exist_ok=True)
    p = subprocess.run([binpath(tool), "keygen", d] + list(extra),
                       capture_output=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("%s keygen: %s" % (tool, p.stderr.decode()))


def start_collector(procs, work, name, cfg):
    c = procs.start(name, [binpath("mtasts-collector"), "--config", cfg])
    ok = harness.wait_until(
        lambda: "ready" in c.stderr_tail(100000) or not c.alive(), 30)
    if not ok or not c.alive():
        raise RuntimeError("collector not ready: %s" % c.stderr_tail())
    return c


def agent_conf(work, name, keydir, endpoint, collector_pub, dns_port, ca,
               ports):
    path = os.path.join(work, "%s.conf" % name)
    write(path, "\n".join([
        "[agent]",
        "name = %s" % name,
        "region = %s" % name,
        "secret_key = %s" % os.path.join(keydir, "agent.key_secret"),
        "collector_key = %s" % collector_pub,
        "endpoint = %s" % endpoint,
        "resolver = 127.0.0.1:%d" % dns_port,
        "ca_file = %s" % ca.path("root.pem"),
        "timeout = 8",
        "spool_dir = %s" % os.path.join(work, "spool-" + name),
        "heartbeat = 2",
        "ack_timeout = 6",
        "https_port = %d" % ports["https"],
        "smtp_port = %d" % ports["smtp"],
        ""]))
    return path


def counts(conninfo):
    rows = psql(conninfo, "SELECT a.name, count(r.*), count(DISTINCT r.domain),"
                " coalesce(max(r.seq), 0) FROM agents a LEFT JOIN results r"
                " ON r.agent_id = a.id GROUP BY a.name")
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def main():
    res = Results()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = os.environ.get("MTASTS_TEST_PG")
    if not base:
        res.fail("database", "MTASTS_TEST_PG is not set (tests/run.sh sets "
                 "it)")
        print("network: %d passed, %d failed" % (res.passed, res.failed))
        return 1
    schema = "net_%d" % os.getpid()
    conninfo = "%s options='-csearch_path=%s'" % (base, schema)
    work = tempfile.mkdtemp(prefix="mtasts-net-")
    procs = harness.Procs(work)
    t0 = time.monotonic()
    try:
        psql(base, "CREATE SCHEMA %s" % schema)
        ports = lab_run.choose_ports()
        ca = certs.TestCA(os.path.join(work, "ca"),
                          "http://127.0.0.1:%d" % ports["aux"])
        zone = scenarios.build(ca, ports)
        _, dns_port = harness.start_unbound(
            procs, work, scenarios.ZONE, zone.records, zone.stubs,
            "ready.test")
        lab_run.start_lab(procs, work, zone)

        # What the one-shot probe says is the reference for the database.
        probe = subprocess.run(
            [binpath("mtasts-agent")] + lab_run.common_args(
                ca, ports, dns_port, timeout=8) + DOMAINS,
            capture_output=True, timeout=60)
        want = {}
        for line in probe.stdout.decode().splitlines():
            o = json.loads(line)
            want[o["domain"]] = sorted(f["code"] for f in o["findings"])
        res.check("reference probe", len(want) == len(DOMAINS), want)

        keys = os.path.join(work, "keys")
        allow = os.path.join(work, "allow")
        os.makedirs(allow)
        keygen("mtasts-collector", "keygen", os.path.join(keys, "collector"))
        for name in ("alpha", "beta", "rogue"):
            keygen("mtasts-agent", "keygen", os.path.join(keys, name),
                   "--name", name, "--region", "region-" + name)
        for name in ("alpha", "beta"):
            shutil.copy(os.path.join(keys, name, "agent.key"),
                        os.path.join(allow, name + ".key"))
        port = harness.pick_port(["127.0.0.1"])
        endpoint = "tcp://127.0.0.1:%d" % port
        ccfg = os.path.join(work, "collector.conf")
        write(ccfg, "\n".join([
            "[collector]",
            "bind = %s" % endpoint,
            "secret_key = %s" % os.path.join(keys, "collector",
                                             "collector.key_secret"),
            "allow_dir = %s" % allow,
            "database = %s" % conninfo,
            "migrations = %s" % os.path.join(ROOT, "deploy", "sql"),
            "interval = %d" % INTERVAL,
            "credit = 4",
            "batch = 3",
            ""]))
        coll = start_collector(procs, work, "collector", ccfg)
        res.ok("collector ready")

        rep = subprocess.run([binpath("mtasts-report"), "--database",
                              conninfo, "domains", "add"] + DOMAINS,
                             capture_output=True, timeout=30)
        res.check("report: domains add", rep.returncode == 0,
                  rep.stderr.decode())
        rows = psql(conninfo, "SELECT name FROM domains WHERE removed_at IS "
                    "NULL ORDER BY name")
        res.check("domains listed", [r[0] for r in rows] == sorted(DOMAINS),
                  rows)

        cpub = os.path.join(keys, "collector", "collector.key")
        agents = {}
        for name in ("alpha", "beta", "rogue"):
            cfg = agent_conf(work, name, os.path.join(keys, name), endpoint,
                             cpub, dns_port, ca, ports)
            agents[name] = procs.start(
                "agent-" + name, [binpath("mtasts-agent"), "run", "--config",
                                  cfg])

        def all_in(n_rounds):
            c = counts(conninfo)
            return all(c.get(a, (0, 0, 0))[0] >= n_rounds * len(DOMAINS)
                       for a in ("alpha", "beta"))

        res.check("both agents delivered a round",
                  harness.wait_until(lambda: all_in(1), 4 * INTERVAL, 0.5),
                  counts(conninfo))
        c = counts(conninfo)
        res.check("rogue agent refused", "rogue" not in c, c)
        res.check("regions from the key files",
                  sorted(psql(conninfo, "SELECT name, region FROM agents "
                              "ORDER BY name")) ==
                  [["alpha", "region-alpha"], ["beta", "region-beta"]],
                  psql(conninfo, "SELECT name, region FROM agents"))

        got = {}
        for d, codes in psql(conninfo, """
            SELECT r.domain, coalesce(string_agg(f.code, ',' ORDER BY f.code),
                                      '')
            FROM results r JOIN agents a ON a.id = r.agent_id
            LEFT JOIN findings f ON f.result_id = r.id
              AND f.received_at = r.received_at
            WHERE a.name = 'alpha' AND r.seq = (
              SELECT min(r2.seq) FROM results r2
              WHERE r2.agent_id = r.agent_id AND r2.domain = r.domain)
            GROUP BY r.domain"""):
            got[d] = sorted(x for x in codes.split(",") if x)
        res.check("database findings equal probe --json", got == want,
                  "db=%s probe=%s" % (got, want))

        # Both vantages see the same lab: rounds are compared, no dissent.
        res.check("comparison: rounds compared",
                  harness.wait_until(lambda: int(psql(
                      conninfo, "SELECT count(*) FROM round_status WHERE "
                      "state = 'compared'")[0][0]) > 0, 3 * INTERVAL, 0.5),
                  psql(conninfo, "SELECT * FROM round_status"))
        dissent = psql(conninfo, "SELECT domain, code, subject, detail FROM "
                       "vantage_findings WHERE severity <> 'info'")
        res.check("comparison: vantages agree", dissent == [], dissent)

        # The collector dies mid-stream; agents keep spooling and resend.
        os.kill(coll.pid, signal.SIGKILL)
        coll.popen.wait()
        time.sleep(INTERVAL / 2)
        coll = start_collector(procs, work, "collector2", ccfg)
        res.check("after SIGKILL: two more rounds arrive",
                  harness.wait_until(lambda: all_in(3), 6 * INTERVAL, 0.5),
                  counts(conninfo))
        holes = psql(conninfo, """
            SELECT a.name, count(*), max(s.seq)
            FROM result_seqs s JOIN agents a ON a.id = s.agent_id
            GROUP BY a.name HAVING count(*) <> max(s.seq)""")
        res.check("no sequence lost or duplicated", holes == [], holes)

        for name, p in agents.items():
            os.kill(p.pid, signal.SIGTERM)
        for name, p in agents.items():
            try:
                rc = p.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                rc = "timeout"
            res.check("agent %s: SIGTERM exits 0" % name, rc == 0,
                      "rc=%s %s" % (rc, p.stderr_tail()))
        os.kill(coll.pid, signal.SIGTERM)
        try:
            rc = coll.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        res.check("collector: SIGTERM exits 0", rc == 0, rc)
        text = open(coll.err_path, errors="replace").read() + open(
            os.path.join(work, "collector.err"), errors="replace").read()
        res.check("no sanitizer report",
                  not any(m in text for m in lab_run.SANITIZER_MARKS), text[-800:])
    except Exception as e:  # a harness failure is a failed check
        import traceback
        traceback.print_exc()
        res.fail("harness", "%s: %s" % (type(e).__name__, e))
    finally:
        procs.close()
        try:
            psql(base, "DROP SCHEMA IF EXISTS %s CASCADE" % schema)
        except Exception:
            pass
        if os.environ.get("MTASTS_KEEP"):
            res.info("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    res.info("took %.1fs" % (time.monotonic() - t0))
    print("network: %d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed or not res.passed else 0


if __name__ == "__main__":
    sys.exit(main())
