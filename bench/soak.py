#!/usr/bin/env python3
"""soak.py -- a collector and three agents over the loopback lab, unattended.

Usage: eval "$(sh tests/lib/pg_start.sh /tmp/pgsoak)"
       BINDIR=bin python3 bench/soak.py [SECONDS]        (default 3600)

Starts the lab of tests/integration (unbound, HTTPS/SMTP servers, 47
domains), a collector with a 10 s interval on its own schema, and three
agents ("eu", "us", "ap").  Every minute it prints the resident memory of
each daemon and, per agent, the results stored; at the end it checks that
every agent's sequence numbers are stored without a hole or a duplicate.
Not a test: a long run whose figures go into the notes.  Every process it
starts is stopped by pid at the end.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import certs  # noqa: E402
import harness  # noqa: E402
import network as net  # noqa: E402
import run as lab_run  # noqa: E402
import scenarios  # noqa: E402

AGENTS = ("eu", "us", "ap")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def main():
    duration = int(sys.argv[1]) if len(sys.argv) > 1 else 3600
    base = os.environ["MTASTS_TEST_PG"]
    schema = "soak%d" % os.getpid()
    conninfo = "%s options='-csearch_path=%s'" % (base, schema)
    work = tempfile.mkdtemp(prefix="mtasts-soak-")
    procs = harness.Procs(work)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        net.psql(base, "CREATE SCHEMA %s" % schema)
        ports = lab_run.choose_ports()
        ca = certs.TestCA(os.path.join(work, "ca"),
                          "http://127.0.0.1:%d" % ports["aux"])
        zone = scenarios.build(ca, ports)
        _, dns_port = harness.start_unbound(
            procs, work, scenarios.ZONE, zone.records, zone.stubs,
            "ready.test")
        lab_run.start_lab(procs, work, zone)
        domains = [s.domain for s in zone.scenarios if s.run == "main"]
        keys = os.path.join(work, "keys")
        allow = os.path.join(work, "allow")
        os.makedirs(allow)
        net.keygen("mtasts-collector", "keygen",
                   os.path.join(keys, "collector"))
        for n in AGENTS:
            net.keygen("mtasts-agent", "keygen", os.path.join(keys, n),
                       "--name", n, "--region", "region-" + n)
            shutil.copy(os.path.join(keys, n, "agent.key"),
                        os.path.join(allow, n + ".key"))
        endpoint = "tcp://127.0.0.1:%d" % harness.pick_port(["127.0.0.1"])
        cfg = os.path.join(work, "collector.conf")
        net.write(cfg, "[collector]\nbind = %s\nsecret_key = %s\n"
                  "allow_dir = %s\ndatabase = %s\nmigrations = %s\n"
                  "interval = 10\n" % (
                      endpoint, os.path.join(keys, "collector",
                                             "collector.key_secret"),
                      allow, conninfo, os.path.join(ROOT, "deploy", "sql")))
        coll = net.start_collector(procs, work, "collector", cfg)
        subprocess.run([net.binpath("mtasts-report"), "--database",
                        conninfo, "domains", "add"] + domains, check=True,
                       capture_output=True)
        agents = {}
        for n in AGENTS:
            c = net.agent_conf(work, n, os.path.join(keys, n), endpoint,
                               os.path.join(keys, "collector",
                                            "collector.key"),
                               dns_port, ca, ports)
            agents[n] = procs.start("agent-" + n, [
                net.binpath("mtasts-agent"), "run", "--config", c])
        t0 = time.monotonic()
        while time.monotonic() - t0 < duration:
            time.sleep(60)
            print("t=%ds rss_kb collector=%d %s stored=%s" % (
                time.monotonic() - t0, rss_kb(coll.pid),
                " ".join("%s=%d" % (n, rss_kb(p.pid))
                         for n, p in agents.items()),
                {k: v[0] for k, v in net.counts(conninfo).items()}),
                flush=True)
        rows = net.psql(conninfo, """
            SELECT a.name, count(*), max(s.seq)
            FROM result_seqs s JOIN agents a ON a.id = s.agent_id
            GROUP BY a.name ORDER BY a.name""")
        ok = all(int(c) == int(m) for _, c, m in rows)
        print("sequences (agent, stored, max): %s -> %s" % (
            rows, "no hole, no duplicate" if ok else "HOLES"))
        return 0 if ok else 1
    finally:
        procs.close()
        try:
            net.psql(base, "DROP SCHEMA IF EXISTS %s CASCADE" % schema)
        except Exception:
            pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
