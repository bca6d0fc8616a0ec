#!/usr/bin/env python3
"""vantage.py -- vantage disagreement end to end, with split DNS views.

Two unbound resolvers serve two views of the lab zone: view A (the truth)
and view B, which differs for some domains the way a local attacker or a
broken regional resolver would.  Three agent daemons report to a collector
on a private PostgreSQL schema ($MTASTS_TEST_PG): "eu" and "ap" resolve
through view A, "us" through view B, so "us" is the single dissenter.

  domain        view B                                expected (subject)
  vchain.test   mta-sts at a host with another CA's   CHAIN_MISMATCH and
                chain (untrusted)                     VERDICT_MISMATCH
  vmx.test      another MX set                        DNS_MISMATCH (vmx.test)
  vstsid.test   another _mta-sts id                   DNS_MISMATCH (_mta-sts)
  vbody.test    same certificate, another policy      POLICY_MISMATCH, and
                body, at another address              ADDRESS_DIFFERS (info)
  vbenign.test  other addresses, same certificates    ADDRESS_DIFFERS (info)
                and policy                            only
  vclean.test   identical                             nothing

Checks the vantage_findings of the first round all three vantages
completed and of the next one, then the incidents (003_incidents.sql) the
collector's incident engine opened, then "fixes the split" (view B's
resolver reloads with view A's data), checks that the first round probed
wholly after the fix has no vantage finding and that the incidents
resolved.  VANTAGE_SKIP_INCIDENTS=1 skips the incident checks (for a
collector without the incident engine).  Every wait polls the database.
Prints "ok NAME" / "FAIL NAME: why" and closes with
"vantage: N passed, M failed".  Environment: MTASTS_TEST_PG, BINDIR
(default bin), MTASTS_KEEP=1 keeps the work directory.
"""

import json
import math
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
import network  # noqa: E402
import run as lab_run  # noqa: E402
import scenarios  # noqa: E402

INTERVAL = 10
# Answers live one second in any cache (the agents' libunbound included),
# so a view that changes is seen by the next round.
DNS_TTL = 1
AGENTS = (("eu", "A"), ("us", "B"), ("ap", "A"))
VANTAGES = {"eu", "us", "ap"}
DISSENTER = "us"
OTHER_ID = "20261201T000000"
N_DOMAINS = 6


# --- the two views -----------------------------------------------------------

class Views:
    """View A's records and every listener (scenarios.Zone), view B's
    overrides, and the vantage findings each domain must produce."""

    def __init__(self, ca, rogue, ports):
        self.z = z = scenarios.Zone(ca, ports)
        self.b_over = {}   # (name, rtype) -> [rdata] in view B
        self.expect = {}   # domain -> {(code, subject, severity)}

        def listener(name, kind):
            return next(lst for lst in z.listeners
                        if lst.get("name") == name and lst["kind"] == kind)

        def alt(lst, ip, **changes):
            """The same server on another address, changed as given; no
            DNS record, only view B's override points at it."""
            new = dict(lst, ip=ip, **changes)
            z.listeners.append(new)
            return new

        # 1. view B: the policy host at a server with another CA's chain.
        sc = z.domain("vchain")
        host, ip = sc.policy_host, "127.0.5.%d" % z.n
        lst = listener(host, "https")
        leaf = rogue.leaf(host, aia=False)
        alt(lst, ip, tls=dict(lst["tls"], chain=leaf["chain"],
                              key=leaf["key"]))
        self.b_over[(host, "A")] = [ip]
        self.expect[sc.domain] = {
            ("VANTAGE_CHAIN_MISMATCH", host, "error"),
            ("VANTAGE_VERDICT_MISMATCH", host, "error")}

        # 2. view B: an extra MX (a working server, not in the policy).
        sc = z.domain("vmx")
        d = sc.domain
        z.smtp_host(sc, "mx2." + d, "127.0.6.%d" % z.n)
        self.b_over[(d, "MX")] = ["10 mx1.%s." % d, "20 mx2.%s." % d]
        self.expect[d] = {("VANTAGE_DNS_MISMATCH", d, "error")}

        # 3. view B: another policy id.
        sc = z.domain("vstsid")
        d = sc.domain
        self.b_over[("_mta-sts." + d, "TXT")] = [
            '"v=STSv1; id=%s;"' % OTHER_ID]
        self.expect[d] = {("VANTAGE_DNS_MISMATCH", "_mta-sts." + d, "error")}

        # 4. view B: the same certificate serving another (valid) policy.
        sc = z.domain("vbody")
        host, ip = sc.policy_host, "127.0.5.%d" % z.n
        lst = listener(host, "https")
        body = scenarios.policy_text(sc.domain, max_age=2419200)
        alt(lst, ip, http=dict(lst["http"], body=body))
        self.b_over[(host, "A")] = [ip]
        self.expect[sc.domain] = {
            ("VANTAGE_POLICY_MISMATCH", host, "error"),
            ("VANTAGE_ADDRESS_DIFFERS", host, "info")}

        # 5. view B: other addresses serving the same certificates and
        # policy, like GeoDNS: informational only.
        sc = z.domain("vbenign")
        d = sc.domain
        host, mx1 = sc.policy_host, "mx1." + d
        alt(listener(host, "https"), "127.0.5.%d" % z.n)
        alt(listener(mx1, "smtp"), "127.0.6.%d" % z.n)
        self.b_over[(host, "A")] = ["127.0.5.%d" % z.n]
        self.b_over[(mx1, "A")] = ["127.0.6.%d" % z.n]
        self.expect[d] = {("VANTAGE_ADDRESS_DIFFERS", host, "info"),
                          ("VANTAGE_ADDRESS_DIFFERS", mx1, "info")}

        # 6. identical views.
        sc = z.domain("vclean")
        self.expect[sc.domain] = set()
        self.clean = sc.domain
        self.benign = "vbenign.test"

        z.listeners.append({
            "ip": "127.0.0.1", "port": ports["aux"], "kind": "aux",
            "name": "aia",
            "files": {"/intermediate.der": [ca.path("intermediate.der"),
                                            "application/pkix-cert"]},
            "ocsp": {"args": ca.ocsp_args()}})
        z.rr("ready.test", "A", "127.0.0.1")
        self.domains = sorted(self.expect)

    def records(self, view):
        if view == "A":
            return list(self.z.records)
        out = [r for r in self.z.records if (r[0], r[1]) not in self.b_over]
        for (name, rtype), rdatas in sorted(self.b_over.items()):
            out += [(name, rtype, rdata) for rdata in rdatas]
        return out


def choose_ports():
    """Ports free on every address the lab binds (view B's ones too)."""
    n = range(1, N_DOMAINS + 1)
    https = harness.pick_port(["127.0.1.%d" % i for i in n] +
                              ["127.0.5.%d" % i for i in n])
    smtp = harness.pick_port(["127.0.2.%d" % i for i in n] +
                             ["127.0.6.%d" % i for i in n], avoid={https})
    aux = harness.pick_port(["127.0.0.1"], avoid={https, smtp})
    return {"https": https, "smtp": smtp, "aux": aux}


def write_unbound_conf(d, port, records):
    os.makedirs(d, exist_ok=True)
    text = harness.unbound_conf(d, port, scenarios.ZONE, records, {})
    text = text.replace(". 60 IN ", ". %d IN " % DNS_TTL)
    path = os.path.join(d, "unbound.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def start_resolver(procs, work, view, records):
    """unbound serving records on a random 127.0.0.1 port, once it answers."""
    d = os.path.join(work, "dns-" + view)
    for _ in range(3):
        port = harness.pick_port(["127.0.0.1"], udp=True)
        conf = write_unbound_conf(d, port, records)
        proc = procs.start("unbound-" + view, ["unbound", "-d", "-c", conf])

        def answered():
            if not proc.alive():
                return "dead"
            r = harness.dns_query("127.0.0.1", port, "ready.test", "A", 0.3)
            return "up" if r and r["answers"] else None

        state = harness.wait_until(answered, 10)
        if state == "up":
            return proc, port
        if state != "dead":
            raise RuntimeError("unbound %s did not answer: %s" %
                               (view, proc.stderr_tail()))
    raise RuntimeError("unbound %s would not start: %s" %
                       (view, proc.stderr_tail()))


def answers(port, name, rtype):
    r = harness.dns_query("127.0.0.1", port, name, rtype, 1.0)
    if r is None:
        return None
    return sorted(str(a[2]) for a in r["answers"] if a[1] == rtype)


def views_differ(views, port_a, port_b):
    """{(name, rtype): (A's answers, B's answers)} where they differ."""
    out = {}
    names = set(views.b_over) | {("_mta-sts.%s" % d, "TXT")
                                 for d in views.domains} | {
        (d, "MX") for d in views.domains}
    for name, rtype in sorted(names):
        a, b = answers(port_a, name, rtype), answers(port_b, name, rtype)
        if a != b or a is None:
            out[(name, rtype)] = (a, b)
    return out


# --- the database ------------------------------------------------------------

def rows_json(conninfo, sql):
    """Each row of sql must be one json value; returns them decoded."""
    return [json.loads(r[0]) for r in network.psql(conninfo, sql)]


def full_rounds(conninfo, after=-1):
    """Rounds > after compared for every domain with all three vantages
    completed, in order."""
    rows = network.psql(conninfo, """
        SELECT round FROM round_status
        WHERE state = 'compared' AND vantages = 3 AND completed = 3
          AND round > %d
        GROUP BY round HAVING count(*) = %d ORDER BY round""" % (
        after, N_DOMAINS))
    return [int(r[0]) for r in rows]


def vfindings(conninfo, rnd):
    return rows_json(conninfo, """
        SELECT json_build_object('domain', domain, 'code', code,
          'subject', subject, 'severity', severity, 'matrix', matrix,
          'dissenters', dissenters, 'detail', detail)::text
        FROM vantage_findings WHERE round = %d
        ORDER BY domain, code, subject""" % rnd)


def check_findings(res, views, conninfo, rnd, tag):
    got = vfindings(conninfo, rnd)
    by_domain = {d: set() for d in views.domains}
    for f in got:
        by_domain.setdefault(f["domain"], set()).add(
            (f["code"], f["subject"], f["severity"]))
    for d in views.domains:
        res.check("%s: %s findings" % (tag, d), by_domain[d] ==
                  views.expect[d], "got %s want %s" % (
                      sorted(by_domain[d]), sorted(views.expect[d])))
    bad = [f for f in got if f["dissenters"] != [DISSENTER]]
    res.check("%s: dissenters = {%s}" % (tag, DISSENTER),
              got and not bad, bad or "no finding")
    bad = [f for f in got if set(f["matrix"]) != VANTAGES]
    res.check("%s: matrix names all three vantages" % tag, got and not bad,
              bad or "no finding")
    # What the matrix shows: eu and ap agree, us saw something else.
    bad = [f for f in got if not (f["matrix"]["eu"] == f["matrix"]["ap"] !=
                                  f["matrix"]["us"])]
    res.check("%s: matrix shows us apart" % tag, got and not bad,
              bad or "no finding")
    loud = [f for f in got if f["domain"] == views.benign and
            f["severity"] != "info"]
    res.check("%s: benign domain only informational" % tag, not loud, loud)
    return got


def incidents(conninfo):
    return rows_json(conninfo, """
        SELECT json_build_object('id', i.id, 'domain', i.domain,
          'code', i.code, 'subject', i.subject, 'severity', i.severity,
          'state', i.state, 'vantages', i.vantages,
          'dissenters', i.dissenters, 'matrix', i.matrix,
          'resolved', i.resolved_at IS NOT NULL,
          'opens', (SELECT count(*) FROM incident_events e
                    WHERE e.incident_id = i.id AND e.kind = 'open'),
          'resolves', (SELECT count(*) FROM incident_events e
                       WHERE e.incident_id = i.id
                         AND e.kind = 'resolve'))::text
        FROM incidents i ORDER BY i.id""")


def folded(conninfo, rnd):
    """True when every domain's round rnd was folded into incidents."""
    rows = network.psql(conninfo, "SELECT count(*) FROM round_status WHERE "
                        "round = %d AND folded_at IS NOT NULL" % rnd)
    return int(rows[0][0]) == N_DOMAINS


def any_folded(conninfo):
    rows = network.psql(conninfo, "SELECT count(*) FROM round_status WHERE "
                        "folded_at IS NOT NULL")
    return int(rows[0][0]) > 0


def expected_keys(views):
    return {(d, code, subj): sev for d, want in views.expect.items()
            for code, subj, sev in want}


def check_incidents_open(res, views, conninfo, tag):
    want = expected_keys(views)
    allinc = incidents(conninfo)
    vinc = [i for i in allinc if i["code"].startswith("VANTAGE_")]
    got = {(i["domain"], i["code"], i["subject"]): i for i in vinc}
    res.check("%s: one open incident per vantage finding" % tag,
              set(got) == set(want) and len(vinc) == len(want) and
              all(i["state"] == "open" for i in vinc),
              "got %s want %s" % (sorted((k, i["state"]) for k, i in
                                         got.items()), sorted(want)))
    bad = [(k, i["severity"]) for k, i in got.items()
           if k in want and i["severity"] != want[k]]
    res.check("%s: severities" % tag, not bad and got, bad)
    loud = [k for k, i in got.items() if k[0] == views.benign and
            i["severity"] != "info"]
    res.check("%s: benign domain only informational" % tag,
              not loud and any(k[0] == views.benign for k in got), loud)
    bad = [(k, i["vantages"], i["dissenters"]) for k, i in got.items()
           if i["dissenters"] != [DISSENTER] or
           set(i["vantages"]) != VANTAGES]
    res.check("%s: vantages and dissenters" % tag, not bad and got, bad)
    bad = [(k, i["matrix"]) for k, i in got.items()
           if not isinstance(i["matrix"], dict) or
           set(i["matrix"]) != VANTAGES]
    res.check("%s: matrix names all three vantages" % tag, not bad and got,
              bad)
    clean = [(i["code"], i["subject"]) for i in allinc
             if i["domain"] == views.clean]
    res.check("%s: clean domain has none" % tag, not clean, clean)
    bad = [(k, i["opens"]) for k, i in got.items() if i["opens"] != 1]
    res.check("%s: exactly one open event each" % tag, not bad and got, bad)


def check_incidents_resolved(res, views, conninfo, tag):
    want = expected_keys(views)
    vinc = [i for i in incidents(conninfo)
            if i["code"].startswith("VANTAGE_")]
    still = [(i["domain"], i["code"], i["subject"]) for i in vinc
             if i["state"] != "resolved" or not i["resolved"]]
    keys = {(i["domain"], i["code"], i["subject"]) for i in vinc}
    res.check("%s: every vantage incident resolved" % tag,
              not still and keys == set(want),
              "open %s, keys %s" % (still, sorted(keys)))
    bad = [(i["domain"], i["code"], i["subject"], i["opens"], i["resolves"])
           for i in vinc if i["opens"] != 1 or i["resolves"] != 1]
    res.check("%s: one open and one resolve event each" % tag,
              not bad and vinc, bad)


# --- the run -----------------------------------------------------------------

def stop(p, timeout=15):
    if p.alive():
        os.kill(p.pid, signal.SIGTERM)
    try:
        return p.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"


def scenario(res, work, conninfo):
    procs = res.procs
    skip_inc = os.environ.get("VANTAGE_SKIP_INCIDENTS") == "1"
    ports = choose_ports()
    ca = certs.TestCA(os.path.join(work, "ca"),
                      "http://127.0.0.1:%d" % ports["aux"])
    # Another CA nobody trusts, as an interceptor's would be.
    rogue = certs.TestCA(os.path.join(work, "rogue-ca"),
                         "http://127.0.0.1:%d" % ports["aux"])
    views = Views(ca, rogue, ports)
    _, port_a = start_resolver(procs, work, "A", views.records("A"))
    unbound_b, port_b = start_resolver(procs, work, "B", views.records("B"))
    lab_run.start_lab(procs, work, views.z)
    diff = views_differ(views, port_a, port_b)
    res.check("lab: view B differs exactly where intended",
              set(diff) == set(views.b_over), diff)

    keys = os.path.join(work, "keys")
    allow = os.path.join(work, "allow")
    os.makedirs(allow)
    network.keygen("mtasts-collector", "keygen",
                   os.path.join(keys, "collector"))
    for name, _ in AGENTS:
        network.keygen("mtasts-agent", "keygen", os.path.join(keys, name),
                       "--name", name, "--region", name)
        shutil.copy(os.path.join(keys, name, "agent.key"),
                    os.path.join(allow, name + ".key"))
    endpoint = "tcp://127.0.0.1:%d" % harness.pick_port(["127.0.0.1"])
    ccfg = os.path.join(work, "collector.conf")
    network.write(ccfg, "\n".join([
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
    # The domains go in first, so that the agents' first task set holds
    # them and the first round is probed at once.
    rep = subprocess.run([network.binpath("mtasts-report"), "--database",
                          conninfo, "--migrations",
                          os.path.join(ROOT, "deploy", "sql"), "domains",
                          "add"] + views.domains,
                         capture_output=True, timeout=30)
    if rep.returncode != 0:
        raise RuntimeError("domains add: %s" % rep.stderr.decode())
    coll = network.start_collector(procs, work, "collector", ccfg)
    cpub = os.path.join(keys, "collector", "collector.key")
    agents = []
    for name, view in AGENTS:
        cfg = network.agent_conf(work, name, os.path.join(keys, name),
                                 endpoint, cpub,
                                 port_a if view == "A" else port_b, ca,
                                 ports)
        agents.append(procs.start("agent-" + name, [
            network.binpath("mtasts-agent"), "run", "--config", cfg]))

    def status():
        return network.psql(conninfo, "SELECT domain, round, state, "
                            "vantages, completed, folded_at IS NOT NULL "
                            "FROM round_status ORDER BY round, domain")

    # The first round may miss a vantage that connected late: the first
    # one every vantage completed for every domain is the one to check.
    rounds = harness.wait_until(lambda: full_rounds(conninfo),
                                4 * INTERVAL, 0.5)
    if not res.check("a round compared with all three vantages", rounds,
                     status()):
        return
    r1 = rounds[0]
    res.info("first full round %d at %.1fs" % (r1, time.monotonic() -
                                               res.t0))
    check_findings(res, views, conninfo, r1, "round 1")
    # The agents' own findings: the clean and the benign domain must be
    # healthy at every vantage, or "no incident" below would prove little;
    # and only "us", sent to the rogue CA's host, finds it untrusted.
    own = network.psql(conninfo, """
        SELECT r.domain, a.name, f.code, f.subject FROM results r
        JOIN agents a ON a.id = r.agent_id
        JOIN findings f ON f.result_id = r.id AND f.received_at = r.received_at
        WHERE r.round = %d ORDER BY 1, 2, 3, 4""" % r1)
    healthy = [o for o in own if o[0] in (views.clean, views.benign)]
    res.check("agents: clean and benign domains healthy everywhere",
              not healthy, healthy)
    untrusted = [o[1] for o in own if o[0] == "vchain.test" and
                 o[2] == "CERT_UNTRUSTED"]
    res.check("agents: only us finds the rogue chain untrusted",
              untrusted == [DISSENTER], own)

    rounds = harness.wait_until(lambda: full_rounds(conninfo, r1),
                                3 * INTERVAL, 0.5)
    if not res.check("a second round compared", rounds, status()):
        return
    r2 = rounds[0]
    check_findings(res, views, conninfo, r2, "round 2")

    if skip_inc:
        res.info("incident checks skipped (VANTAGE_SKIP_INCIDENTS=1)")
    else:
        ok = harness.wait_until(lambda: folded(conninfo, r2),
                                1.5 * INTERVAL, 0.5)
        if res.check("incidents: round %d folded" % r2, ok,
                     "round_status: %s" % status()):
            check_incidents_open(res, views, conninfo, "incidents open")

    # Fix the split: view B's resolver reloads with view A's data.
    write_unbound_conf(os.path.join(work, "dns-B"), port_b,
                       views.records("A"))
    os.kill(unbound_b.pid, signal.SIGHUP)
    same = harness.wait_until(
        lambda: not views_differ(views, port_a, port_b), 10, 0.1)
    if not res.check("lab: view B reloaded with view A's data", same,
                     views_differ(views, port_a, port_b)):
        return
    # The first round whose probes all start after the last stale answer
    # could have expired from every cache.
    r_fix = int(math.ceil((time.time() + DNS_TTL + 1) / INTERVAL))
    rounds = harness.wait_until(
        lambda: [r for r in full_rounds(conninfo, r_fix - 1) if r == r_fix],
        (r_fix + 1) * INTERVAL - time.time() + 2 * INTERVAL, 0.5)
    if not res.check("round %d after the fix compared" % r_fix, rounds,
                     status()):
        return
    left = vfindings(conninfo, r_fix)
    res.check("after the fix: no vantage finding", not left, left)

    if not skip_inc:
        def resolved():
            vinc = [i for i in incidents(conninfo)
                    if i["code"].startswith("VANTAGE_")]
            return vinc and all(i["state"] == "resolved" for i in vinc)
        # A resolution may wait for a few clean rounds; an engine that
        # never folded anything is not waited for.
        if any_folded(conninfo):
            harness.wait_until(resolved, 3 * INTERVAL, 0.5)
        check_incidents_resolved(res, views, conninfo, "incidents resolved")

    # Orderly shutdown: every daemon exits 0 on SIGTERM.
    for p in agents + [coll]:
        rc = stop(p)
        res.check("%s: SIGTERM exits 0" % p.name, rc == 0,
                  "rc=%s %s" % (rc, p.stderr_tail()))


def main():
    res = lab_run.Results()
    res.t0 = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = os.environ.get("MTASTS_TEST_PG")
    if not base:
        res.fail("database", "MTASTS_TEST_PG is not set (tests/run.sh sets "
                 "it)")
        print("vantage: %d passed, %d failed" % (res.passed, res.failed))
        return 1
    schema = "vantage_%d" % os.getpid()
    conninfo = "%s options='-csearch_path=%s'" % (base, schema)
    work = tempfile.mkdtemp(prefix="mtasts-vantage-")
    res.procs = procs = harness.Procs(work)
    try:
        network.psql(base, "CREATE SCHEMA %s" % schema)
        scenario(res, work, conninfo)
    except Exception as e:  # a harness failure is a failed check
        import traceback
        traceback.print_exc()
        res.fail("harness", "%s: %s" % (type(e).__name__, e))
    finally:
        started = list(procs.procs)
        procs.close()
        # Nothing may outlive the run: neither a daemon nor anything it
        # started in its session (the lab's openssl ocsp children).
        left = []
        for p in started:
            try:
                os.killpg(p.pid, 0)
                left.append(p.name)
            except ProcessLookupError:
                if p.popen.poll() is None:
                    left.append(p.name)
            except PermissionError:
                left.append(p.name)
        res.check("teardown: no process left (%d started)" % len(started),
                  not left and started, left)
        text = ""
        for p in started:
            if p.name.startswith(("agent-", "collector")):
                try:
                    with open(p.err_path, errors="replace") as f:
                        text += f.read()
                except OSError:
                    pass
        res.check("no sanitizer report",
                  not any(m in text for m in lab_run.SANITIZER_MARKS),
                  text[-800:])
        try:
            network.psql(base, "DROP SCHEMA IF EXISTS %s CASCADE" % schema)
        except Exception:
            pass
        if os.environ.get("MTASTS_KEEP"):
            res.info("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    res.info("took %.1fs" % (time.monotonic() - res.t0))
    print("vantage: %d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed or not res.passed else 0


if __name__ == "__main__":
    sys.exit(main())
