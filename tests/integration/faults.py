#!/usr/bin/env python3
"""faults.py -- the probe network under hostile peers, a lost database and
crashes.

Builds on network.py: the loopback lab, a collector on a private schema of
$MTASTS_TEST_PG (tests/run.sh provides it and $MTASTS_TEST_PGDIR, the
cluster's directory), and three allowed agents (alpha, beta, and gamma with
the smallest spool cap the agent accepts).  Then:

  a. security: while the agents deliver, tests/lib/zmq_forge sends, with an
     allowed key, a frame of garbage, an oversized one, an empty one, a
     multipart message, results that fail the wire checks, a Hello and a
     duplicate of an acknowledged result; each must be answered as
     proto/README.md says, logged and counted, and the collector and the
     agents must carry on.  An unknown key gets nothing and zauth logs it.
  b. PostgreSQL is stopped for 30 s while the agents probe: the collector
     stays up, stops acknowledging, and afterwards every result is in the
     database exactly once.
  c. with the collector down, alpha is killed with SIGKILL while its spool
     holds results; both restarted, the spooled results arrive exactly once.
  d. in the same outage gamma's spool passes its cap (a task set with big
     policies fills it fast): the loss arrives as a gap, counted in
     agents.gaps_total, and stored results plus gaps cover 1..max.

Prints "ok NAME" / "FAIL NAME: why" and closes with
"faults: N passed, M failed".  Honours BINDIR (daemons) and BUILD (where
zmq_forge is) as network.py does, so it runs against the ASan build too, and
checks every daemon's stderr for a sanitizer report.
"""

import glob
import os
import re
import shutil
import signal
import struct
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
import network  # noqa: E402
import run as lab_run  # noqa: E402
import scenarios  # noqa: E402

INTERVAL = network.INTERVAL
DOMAINS = network.DOMAINS
AGENTS = ("alpha", "beta", "gamma")
# Policies of about 60 KiB (under the 64 KiB a result carries) make results
# big enough to pass gamma's 1 MiB spool cap within two rounds.
BIG = ["big%d" % i for i in range(1, 13)]
BIG_PAD = 60 * 1024
SPOOL_CAP = "1M"  # AGENT_SPOOL_CAP_MIN: the agent refuses less
PG_DOWN_S = 30
FORGE_TIMEOUT_MS = 2500
REC_MAGIC = 0x5253544D
REC_HDR = 20


def forge_path():
    build = os.environ.get("BUILD", "build")
    path = os.path.join(build, "tests", "zmq_forge")
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


def public_key(keyfile):
    """The Z85 public key in a zcert file."""
    with open(keyfile) as f:
        m = re.search(r'public-key\s*=\s*"([^"]{40})"', f.read())
    if not m:
        raise RuntimeError("no public key in %s" % keyfile)
    return m.group(1)


def spool_last_seq(spool_dir):
    """The newest seq in the spool's segment files (0 when none).

    Reads the record headers (magic, length, seq, crc; little endian) the
    way spool.c writes them; a torn tail is where reading stops.
    """
    last = 0
    for path in sorted(glob.glob(os.path.join(spool_dir, "seg-*.log"))):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        off = 0
        while off + REC_HDR <= len(data):
            magic, length, seq = struct.unpack_from("<IIQ", data, off)
            if magic != REC_MAGIC or off + REC_HDR + length > len(data):
                break
            last = max(last, seq)
            off += REC_HDR + length
    return last


def text_of(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class Net:
    """The running pieces and the queries the checks use."""

    def __init__(self, res, procs, work, conninfo):
        self.res = res
        self.procs = procs
        self.work = work
        self.conninfo = conninfo
        self.keys = os.path.join(work, "keys")
        self.agents = {}
        self.agent_cfg = {}
        self.coll = None
        self.n_coll = 0

    def psql(self, sql):
        return network.psql(self.conninfo, sql)

    def try_psql(self, sql):
        try:
            return self.psql(sql)
        except Exception:
            return None

    def start_collector(self):
        self.n_coll += 1
        self.coll = network.start_collector(
            self.procs, self.work, "collector%d" % self.n_coll, self.ccfg)
        return self.coll

    def stop_collector(self, name):
        """SIGTERM; checks exit 0 and returns the final stats counters."""
        c = self.coll
        os.kill(c.pid, signal.SIGTERM)
        try:
            rc = c.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        self.res.check("%s: collector SIGTERM exits 0" % name, rc == 0,
                       "rc=%s %s" % (rc, c.stderr_tail(600)))
        stats = {}
        for line in text_of(c.err_path).splitlines():
            if " stats agents=" in line:
                stats = dict(kv.split("=", 1) for kv in
                             line.split(" stats ", 1)[1].split()
                             if "=" in kv)
        return stats

    def start_agent(self, name):
        self.agents[name] = self.procs.start(
            "agent-%s-%d" % (name, len(self.procs.procs)),
            [network.binpath("mtasts-agent"), "run", "--config",
             self.agent_cfg[name]])
        return self.agents[name]

    def forge(self, mode, key="forger", timeout_ms=FORGE_TIMEOUT_MS):
        """Runs zmq_forge; returns (reply line, rc, stderr)."""
        argv = [forge_path(), self.endpoint,
                os.path.join(self.keys, "collector", "collector.key"),
                os.path.join(self.keys, key, "agent.key_secret"), mode,
                str(timeout_ms)]
        p = subprocess.run(argv, capture_output=True,
                           timeout=timeout_ms / 1000.0 * 3 + 10)
        out = p.stdout.decode(errors="replace").strip().splitlines()
        return (out[-1] if out else ""), p.returncode, \
            p.stderr.decode(errors="replace")

    def counts(self):
        return network.counts(self.conninfo)

    def watermark(self, name):
        rows = self.try_psql("SELECT last_committed_seq, gaps_total FROM "
                             "agents WHERE name = '%s'" % name)
        if not rows:
            return None
        return int(rows[0][0]), int(rows[0][1])

    def ledger(self, name):
        """Stored seqs, gaps and duplicate rows of one agent."""
        seqs = [int(r[0]) for r in self.psql(
            "SELECT s.seq FROM result_seqs s JOIN agents a ON a.id = "
            "s.agent_id WHERE a.name = '%s' ORDER BY s.seq" % name)]
        gaps = [(int(r[0]), int(r[1])) for r in self.psql(
            "SELECT g.first_seq, g.last_seq FROM gaps g JOIN agents a ON "
            "a.id = g.agent_id WHERE a.name = '%s' ORDER BY 1" % name)]
        dups = self.psql(
            "SELECT r.seq, count(*) FROM results r JOIN agents a ON a.id = "
            "r.agent_id WHERE a.name = '%s' GROUP BY r.seq HAVING "
            "count(*) > 1" % name)
        nres = int(self.psql(
            "SELECT count(*) FROM results r JOIN agents a ON a.id = "
            "r.agent_id WHERE a.name = '%s'" % name)[0][0])
        return seqs, gaps, dups, nres

    def exactly_once(self, name, upto, allow_gaps=False):
        """(ok, why): seqs 1..max are each stored once (or, when allowed,
        declared lost in a gap), max >= upto, and results match result_seqs.
        """
        seqs, gaps, dups, nres = self.ledger(name)
        top = max([0] + seqs + [g[1] for g in gaps])
        covered = set(seqs)
        for f, l in gaps:
            covered.update(range(f, l + 1))
        holes = sorted(set(range(1, top + 1)) - covered)
        why = ("max=%d want>=%d stored=%d results=%d gaps=%s holes=%s "
               "dups=%s" % (top, upto, len(seqs), nres, gaps, holes[:20],
                            dups))
        ok = (top >= upto and not holes and not dups and nres == len(seqs)
              and (allow_gaps or not gaps))
        return ok, why

    def wait_exactly_once(self, name, upto, timeout, allow_gaps=False):
        last = [None]

        def cond():
            try:
                ok, why = self.exactly_once(name, upto, allow_gaps)
            except Exception as e:
                ok, why = False, str(e)
            last[0] = why
            return ok

        ok = harness.wait_until(cond, timeout, 0.5)
        return ok, last[0]


def build_zone(ca, ports):
    zone = scenarios.build(ca, ports)
    for short in BIG:
        d = "%s.%s" % (short, scenarios.ZONE)
        body = scenarios.policy_text(d)
        zone.domain(short, mx=[], http={
            "status": 200, "headers": [["Content-Type", "text/plain"]],
            "body": body, "pad": BIG_PAD - len(body)})
    return zone


def setup(res, net, ports, ca, zone, dns_port):
    work = net.work
    allow = os.path.join(work, "allow")
    os.makedirs(allow)
    network.keygen("mtasts-collector", "keygen",
                   os.path.join(net.keys, "collector"))
    for name in AGENTS + ("forger", "rogue"):
        network.keygen("mtasts-agent", "keygen",
                       os.path.join(net.keys, name), "--name", name,
                       "--region", "region-" + name)
    for name in AGENTS + ("forger",):
        shutil.copy(os.path.join(net.keys, name, "agent.key"),
                    os.path.join(allow, name + ".key"))
    port = harness.pick_port(["127.0.0.1"])
    net.endpoint = "tcp://127.0.0.1:%d" % port
    net.ccfg = os.path.join(work, "collector.conf")
    network.write(net.ccfg, "\n".join([
        "[collector]",
        "bind = %s" % net.endpoint,
        "secret_key = %s" % os.path.join(net.keys, "collector",
                                         "collector.key_secret"),
        "allow_dir = %s" % allow,
        "database = %s" % net.conninfo,
        "migrations = %s" % os.path.join(ROOT, "deploy", "sql"),
        "interval = %d" % INTERVAL,
        "credit = 4",
        "batch = 3",
        ""]))
    net.start_collector()
    res.ok("collector ready")
    rep = subprocess.run([network.binpath("mtasts-report"), "--database",
                          net.conninfo, "domains", "add"] + DOMAINS,
                         capture_output=True, timeout=30)
    res.check("report: domains add", rep.returncode == 0,
              rep.stderr.decode())
    cpub = os.path.join(net.keys, "collector", "collector.key")
    for name in AGENTS:
        cfg = network.agent_conf(work, name, os.path.join(net.keys, name),
                                 net.endpoint, cpub, dns_port, ca, ports)
        if name == "gamma":
            with open(cfg, "a") as f:
                f.write("spool_cap = %s\n" % SPOOL_CAP)
        net.agent_cfg[name] = cfg
        net.start_agent(name)

    def all_in():
        c = net.counts()
        return all(c.get(a, (0, 0, 0))[0] >= len(DOMAINS) for a in AGENTS)

    res.check("all agents delivered a round",
              harness.wait_until(all_in, 4 * INTERVAL, 0.5), net.counts())


def phase_security(res, net):
    key = public_key(os.path.join(net.keys, "forger", "agent.key"))
    before = net.counts()
    # mode -> (what the reply must be, refusal reason in the log or None)
    cases = [
        ("hello", r"^reply=ack committed=0 credit=4$", None),
        ("badresult", r"^reply=reject reason=invalid: .*seq", "invalid"),
        ("garbage", r"^reply=reject reason=malformed", "malformed"),
        ("empty", r"^reply=reject reason=empty", "empty"),
        # A second message frame is counted and not answered (main.c).
        ("multipart", r"^reply=none$", "frames"),
        # ZMQ_MAXMSGSIZE = WIRE_MAX: ZeroMQ drops the connection as soon
        # as the size is announced; the frame never reaches our code, so
        # there is nothing to log (proto/README.md).
        ("oversized", r"^reply=none$", None),
        ("badchain", r"^reply=reject reason=invalid: ", "invalid"),
    ]
    for mode, want, reason in cases:
        line, rc, err = net.forge(mode)
        res.check("forge %s: answered as documented" % mode,
                  rc == 0 and re.search(want, line) is not None,
                  "rc=%s line=%r stderr=%s" % (rc, line, err[-300:]))
        res.check("forge %s: collector alive" % mode, net.coll.alive(),
                  net.coll.stderr_tail())
        if reason is None:
            continue
        pat = "refused reason=%s key=%s" % (reason, key)
        res.check("forge %s: logged as refused_%s with the key" % (
            mode, reason),
            harness.wait_until(
                lambda: pat in text_of(net.coll.err_path), 3, 0.1),
            "no %r in collector log: %s" % (pat, net.coll.stderr_tail(800)))
        if reason == "invalid":
            # Each reason is logged at most once a second: the next
            # "invalid" must not fall into this one's second.
            time.sleep(1.1)

    line, rc, err = net.forge("duplicate")
    m = re.match(r"^reply=ack committed=(\d+) credit=\d+ before=(\d+) "
                 r"seq=(\d+)$", line)
    res.check("forge duplicate: acked, watermark unchanged",
              rc == 0 and m is not None and m.group(1) == m.group(2),
              "rc=%s line=%r stderr=%s" % (rc, line, err[-300:]))
    if m:
        seq = int(m.group(3))
        rows = net.psql("SELECT count(*) FROM results r JOIN agents a ON "
                        "a.id = r.agent_id WHERE a.name = 'forger' AND "
                        "r.seq = %d" % seq)
        res.check("forge duplicate: stored once", rows == [["1"]], rows)

    # An unknown key: zauth turns it away in the handshake.
    rogue = public_key(os.path.join(net.keys, "rogue", "agent.key"))
    line, rc, err = net.forge("hello", key="rogue")
    res.check("unknown key: no answer", rc == 0 and line == "reply=none",
              "rc=%s line=%r" % (rc, line))
    pat = "denied (CURVE) client_key=%s" % rogue
    res.check("unknown key: zauth logs it denied with its key",
              harness.wait_until(
                  lambda: pat in text_of(net.coll.err_path), 5, 0.1),
              net.coll.stderr_tail(800))
    res.check("unknown key: not in agents",
              net.psql("SELECT count(*) FROM agents WHERE public_key = "
                       "'%s'" % rogue) == [["0"]])

    def grew():
        c = net.counts()
        return all(c.get(a, (0, 0, 0))[0] > before.get(a, (0, 0, 0))[0]
                   for a in AGENTS)

    res.check("agents' results keep arriving during the forgery",
              harness.wait_until(grew, 3 * INTERVAL, 0.5),
              "before=%s now=%s" % (before, net.counts()))
    rejected = [a for a in AGENTS
                if "event=rejected" in text_of(net.agents[a].err_path)]
    res.check("no agent was rejected", not rejected, rejected)
    res.check("collector alive after the forgery", net.coll.alive(),
              net.coll.stderr_tail())


def pg_ctl():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                  key=lambda p: [int(x) if x.isdigit() else 0
                                 for x in p.split("/")[4].split(".")])
    if not bins:
        raise RuntimeError("no pg_ctl under /usr/lib/postgresql")
    return bins[-1]


def pg_start_again(pgdir):
    """Starts the stopped cluster as pg_start.sh did (its header offers
    restart.sh and stop.sh only; pg_ctl start -w waits for readiness)."""
    argv = [pg_ctl(), "-D", os.path.join(pgdir, "data"), "-l",
            os.path.join(pgdir, "server.log"), "-w", "-t", "60", "start"]
    if os.getuid() == 0:
        argv = ["runuser", "-u", "mtastswatch-test", "--"] + argv
    return subprocess.run(argv, capture_output=True, timeout=90)


def phase_pg_down(res, net, pgdir):
    coll = net.coll
    log_before = len(text_of(coll.err_path))
    p = subprocess.run(["sh", os.path.join(pgdir, "stop.sh")],
                       capture_output=True, timeout=90)
    t_stop = time.monotonic()
    res.check("pg: stopped", p.returncode == 0, p.stderr.decode())
    started = False
    try:
        lost = harness.wait_until(
            lambda: "database lost" in text_of(coll.err_path)[log_before:],
            15, 0.2)
        res.check("pg down: collector notices (database lost)", lost,
                  coll.stderr_tail(800))
        line, rc, err = net.forge("hello")
        res.check("pg down: collector does not acknowledge",
                  line == "reply=none", "line=%r %s" % (line, err[-200:]))
        left = PG_DOWN_S - (time.monotonic() - t_stop)
        if left > 0:
            time.sleep(left)  # the outage itself, not a readiness wait
        res.check("pg down: collector alive after %ds" % PG_DOWN_S,
                  coll.alive(), coll.stderr_tail())
        res.check("pg down: agents alive",
                  all(net.agents[a].alive() for a in AGENTS))
    finally:
        p = pg_start_again(pgdir)
        started = p.returncode == 0
    res.check("pg: started again", started,
              p.stderr.decode() + p.stdout.decode())
    # Everything produced until now must come in, once.
    upto = {a: spool_last_seq(os.path.join(net.work, "spool-" + a))
            for a in AGENTS}
    res.check("pg back: collector reconnects",
              harness.wait_until(
                  lambda: "database reconnected" in
                  text_of(coll.err_path)[log_before:], 45, 0.5),
              coll.stderr_tail(800))
    for a in AGENTS:
        ok, why = net.wait_exactly_once(a, upto[a], 40)
        res.check("pg back: %s results exactly once up to seq %d" % (
            a, upto[a]), ok, why)
    res.check("pg back: collector alive", coll.alive(), coll.stderr_tail())


def phase_crash_and_cap(res, net):
    """c and d in one collector outage."""
    alpha_spool = os.path.join(net.work, "spool-alpha")
    gamma = net.agents["gamma"]
    gamma_log_at = len(text_of(gamma.err_path))
    stats = net.stop_collector("outage")
    # Read after the stop: the collector acknowledges its queue on SIGTERM.
    wm = net.watermark("alpha")
    res.check("collector stats count every forged refusal",
              all(int(stats.get("refused_" + r, "0")) >= n for r, n in
                  (("malformed", 1), ("empty", 1), ("frames", 1),
                   ("invalid", 2), ("db_down", 1))),
              stats)
    # c: alpha spools results nobody acknowledges, then dies.
    held = harness.wait_until(
        lambda: spool_last_seq(alpha_spool) > (wm[0] if wm else 0),
        2 * INTERVAL + 5, 0.5)
    res.check("alpha spooled results while the collector is down", held,
              "watermark=%s spool_last=%d" % (wm, spool_last_seq(
                  alpha_spool)))
    os.kill(net.agents["alpha"].pid, signal.SIGKILL)
    net.agents["alpha"].popen.wait()
    alpha_last = spool_last_seq(alpha_spool)
    # d: gamma's spool passes its cap.
    gap_re = re.compile(r"event=gap first=(\d+) last=(\d+) count=(\d+) "
                        r"reason=cap")
    dropped = harness.wait_until(
        lambda: gap_re.findall(text_of(gamma.err_path)[gamma_log_at:]),
        5 * INTERVAL, 0.5)
    res.check("gamma's spool dropped results past its cap", dropped,
              gamma.stderr_tail(800))
    coll = net.start_collector()
    net.start_agent("alpha")
    gamma_last = spool_last_seq(os.path.join(net.work, "spool-gamma"))
    beta_last = spool_last_seq(os.path.join(net.work, "spool-beta"))

    akey = public_key(os.path.join(net.keys, "alpha", "agent.key"))
    hello_re = re.compile(r"agent hello key=%s .* spool=(\d+)\.\.(\d+)" %
                          re.escape(akey))
    hello = harness.wait_until(
        lambda: hello_re.findall(text_of(coll.err_path)), 30, 0.2)
    res.check("alpha after SIGKILL: hello announces its spool",
              hello and int(hello[0][1]) >= alpha_last > (wm[0] if wm
                                                          else 0),
              "hello=%s spool_last_at_kill=%d watermark=%s" % (
                  hello, alpha_last, wm))
    ok, why = net.wait_exactly_once("alpha", alpha_last, 45)
    res.check("alpha after SIGKILL: spooled results stored exactly once",
              ok, why)

    ok, why = net.wait_exactly_once("gamma", gamma_last, 45,
                                    allow_gaps=True)
    res.check("gamma: results plus gaps cover 1..max, no hole", ok, why)
    _, gaps, _, _ = net.ledger("gamma")
    for first, last, _ in (dropped or []):
        f, l = int(first), int(last)
        res.check("gamma: gap %d..%d in the gaps table" % (f, l),
                  any(g[0] <= f and l <= g[1] for g in gaps), gaps)
    wmg = net.watermark("gamma")
    total = sum(l - f + 1 for f, l in gaps)
    res.check("gamma: agents.gaps_total counts the gaps",
              gaps and wmg is not None and wmg[1] == total,
              "gaps_total=%s sum=%d gaps=%s" % (wmg, total, gaps))
    seqs, gaps, _, _ = net.ledger("gamma")
    both = sorted(set(seqs) & {s for f, l in gaps for s in range(f, l + 1)})
    if both:
        res.info("gamma: seqs both stored and declared lost: %s" % both[:20])
    ok, why = net.wait_exactly_once("beta", beta_last, 30)
    res.check("beta: exactly once through the outage up to seq %d" %
              beta_last, ok, why)


def main():
    res = network.Results()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = os.environ.get("MTASTS_TEST_PG")
    pgdir = os.environ.get("MTASTS_TEST_PGDIR")
    if not base or not pgdir:
        res.fail("database", "MTASTS_TEST_PG and MTASTS_TEST_PGDIR must be "
                 "set (tests/run.sh sets them)")
        print("faults: %d passed, %d failed" % (res.passed, res.failed))
        return 1
    if not os.access(forge_path(), os.X_OK):
        res.fail("zmq_forge", "%s is not built (make unit)" % forge_path())
        print("faults: %d passed, %d failed" % (res.passed, res.failed))
        return 1
    schema = "faults_%d" % os.getpid()
    conninfo = "%s options='-csearch_path=%s'" % (base, schema)
    work = tempfile.mkdtemp(prefix="mtasts-faults-")
    procs = harness.Procs(work)
    net = Net(res, procs, work, conninfo)
    t0 = time.monotonic()
    try:
        network.psql(base, "CREATE SCHEMA %s" % schema)
        ports = lab_run.choose_ports()
        ca = certs.TestCA(os.path.join(work, "ca"),
                          "http://127.0.0.1:%d" % ports["aux"])
        zone = build_zone(ca, ports)
        _, dns_port = harness.start_unbound(
            procs, work, scenarios.ZONE, zone.records, zone.stubs,
            "ready.test")
        lab_run.start_lab(procs, work, zone)

        setup(res, net, ports, ca, zone, dns_port)
        res.info("setup done at %.1fs" % (time.monotonic() - t0))
        phase_security(res, net)
        res.info("security done at %.1fs" % (time.monotonic() - t0))
        # The big policies reach the agents with the domain poll that
        # follows the database's return.
        rep = subprocess.run(
            [network.binpath("mtasts-report"), "--database", conninfo,
             "domains", "add"] + ["%s.%s" % (b, scenarios.ZONE)
                                  for b in BIG],
            capture_output=True, timeout=30)
        res.check("report: big domains add", rep.returncode == 0,
                  rep.stderr.decode())
        phase_pg_down(res, net, pgdir)
        res.info("pg outage done at %.1fs" % (time.monotonic() - t0))
        big = len(DOMAINS) + len(BIG)
        res.check("gamma probes the big task set",
                  harness.wait_until(
                      lambda: "domains=%d" % big in
                      text_of(net.agents["gamma"].err_path), 3 * INTERVAL,
                      0.5),
                  net.agents["gamma"].stderr_tail(600))
        phase_crash_and_cap(res, net)
        res.info("crash and cap done at %.1fs" % (time.monotonic() - t0))

        for name in AGENTS:
            p = net.agents[name]
            if p.alive():
                os.kill(p.pid, signal.SIGTERM)
        for name in AGENTS:
            p = net.agents[name]
            try:
                rc = p.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                rc = "timeout"
            res.check("agent %s: SIGTERM exits 0" % name, rc == 0,
                      "rc=%s %s" % (rc, p.stderr_tail()))
        net.stop_collector("end")
    except Exception as e:  # a harness failure is a failed check
        import traceback
        traceback.print_exc()
        res.fail("harness", "%s: %s" % (type(e).__name__, e))
    finally:
        procs.close()
        # Every daemon's stderr, including the ones killed on the way.
        reports = []
        for path in sorted(glob.glob(os.path.join(work, "*.err"))):
            text = text_of(path)
            if any(m in text for m in lab_run.SANITIZER_MARKS):
                reports.append("%s: %s" % (os.path.basename(path),
                                           text[-600:]))
        res.check("no sanitizer report", not reports, " || ".join(reports))
        try:
            network.psql(base, "DROP SCHEMA IF EXISTS %s CASCADE" % schema)
        except Exception:
            pass
        if os.environ.get("MTASTS_KEEP"):
            res.info("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    res.info("took %.1fs" % (time.monotonic() - t0))
    print("faults: %d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed or not res.passed else 0


if __name__ == "__main__":
    sys.exit(main())
