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
resolved.

What an analyst and a SOC pipeline get: the collector serves its HTTP API
on a free port ([http]) and delivers incident events ([notify]) to a
webhook receiver and a UDP syslog receiver (CEF) that the test runs on
127.0.0.1.  While the incidents are open: each VANTAGE_* open event
reached the webhook once as an Alertmanager envelope and syslog once as
an RFC 5424 message carrying a CEF line (parsed strictly, escapes
included); GET /api/v1/incidents?open=1 lists exactly the database's open
incidents with the ECS fields of docs/api.md; the domain document shows
"us" as the odd vantage; /api/v1/status, 404 and 400 answers; /metrics
parses strictly (tests/lib/promparse.py) and has the disagreement,
incident, agent and collector series; `mtasts-report incidents --open`
agrees with the API in JSON and prints one CEF line per incident; an
acknowledgement through the API reaches both sinks.  After the fix each
resolve arrives once on both sinks, and after the collector stopped no
event was delivered twice and the notify cursors stand at the last one.

VANTAGE_SKIP_INCIDENTS=1 skips the incident and SOC checks (for a
collector without the incident engine).  Every wait polls.  Prints
"ok NAME" / "FAIL NAME: why" and closes with "vantage: N passed, M
failed".  Environment: MTASTS_TEST_PG, BINDIR (default bin),
MTASTS_KEEP=1 keeps the work directory, with what the receivers got
(webhook.jsonl, syslog.log).
"""

import collections
import http.client
import http.server
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, HERE)

import certs  # noqa: E402
import harness  # noqa: E402
import network  # noqa: E402
import promparse  # noqa: E402
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


# --- what an analyst and a SOC pipeline see ----------------------------------
#
# The collector serves the HTTP API on a free port and delivers incident
# events to a webhook (Alertmanager envelope) and to syslog over UDP as
# CEF lines; the receivers below are the test's, on 127.0.0.1.

RFC3339_S = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?"
                     r"(Z|[+-]\d\d:\d\d)\Z")
ZERO_TIME = "0001-01-01T00:00:00Z"
SEV_NUM = {"info": 3, "warning": 6, "error": 9}   # event.severity, CEF
SYSLOG_SEV = {"error": 3, "warning": 4, "info": 6}
FACILITY = 16   # local0
WAIT_DELIVERY = 15
BODY_MAX = 1 << 20

# What docs/api.md promises of every incident document.
INCIDENT_FIELDS = (
    "@timestamp", "event.kind", "event.dataset", "event.id",
    "event.severity", "event.start", "event.end", "rule.name", "message",
    "mtasts.incident_id", "mtasts.domain", "mtasts.subject",
    "mtasts.severity", "mtasts.state", "mtasts.stage", "mtasts.vantages",
    "mtasts.dissenters", "mtasts.matrix", "mtasts.first_round",
    "mtasts.last_round", "mtasts.ack")


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


_MISSING = object()


def getp(doc, path):
    """The value at a dotted ECS path of nested objects, or _MISSING."""
    if isinstance(doc, dict) and path in doc:
        return doc[path]
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that answers 200 to every POST and
    records it: (arrival time, path, headers, body)."""

    def __init__(self):
        self.posts = []
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(n, BODY_MAX))
                with owner.lock:
                    owner.posts.append((time.time(), self.path,
                                        {k.lower(): v for k, v in
                                         self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       args=(0.1,), daemon=True)
        self.thread.start()

    def got(self):
        with self.lock:
            return list(self.posts)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class SyslogReceiver:
    """A UDP socket on 127.0.0.1 whose datagrams a thread records."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.grams = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.grams.append((time.time(), data))

    def got(self):
        with self.lock:
            return list(self.grams)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def http_get(port, path, timeout=15):
    """(status, headers with lower-case names, body) of one GET."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def http_post(port, path, body, timeout=15):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    try:
        return r.status, json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return r.status, None


def api_json(port, path):
    """(status, headers, decoded JSON or None)."""
    status, hdrs, body = http_get(port, path)
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        doc = None
    return status, hdrs, doc


# --- RFC 5424 and CEF, parsed strictly ---

SYSLOG_HEAD = re.compile(r"<(0|[1-9][0-9]{0,2})>1 (\S+) (\S+) (\S+) (\S+) "
                         r"(\S+) ")


def parse_5424(data):
    """A dict of the message's parts; ValueError says what is wrong."""
    text = data.decode("utf-8")   # RFC 5424 MSG with a BOM or not: UTF-8
    m = SYSLOG_HEAD.match(text)
    if m is None:
        raise ValueError("no RFC 5424 header")
    pri, ts, host, app, procid, msgid = m.groups()
    if int(pri) > 191:
        raise ValueError("PRI %s" % pri)
    if ts != "-" and not RFC3339.match(ts):
        raise ValueError("TIMESTAMP %r" % ts)
    for what, v, most in (("HOSTNAME", host, 255), ("APP-NAME", app, 48),
                          ("PROCID", procid, 128), ("MSGID", msgid, 32)):
        if len(v) > most or any(not 33 <= ord(c) <= 126 for c in v):
            raise ValueError("%s %r" % (what, v))
    rest = text[m.end():]
    if rest.startswith("-"):
        sd, rest = None, rest[1:]
    elif rest.startswith("["):
        sd, i = [], 0
        while i < len(rest) and rest[i] == "[":
            j = i + 1
            while j < len(rest) and rest[j] != "]":
                j += 2 if rest[j] == "\\" else 1
            if j >= len(rest):
                raise ValueError("unterminated SD-ELEMENT")
            sd.append(rest[i + 1:j])
            i = j + 1
        rest = rest[i:]
    else:
        raise ValueError("no STRUCTURED-DATA")
    if rest and not rest.startswith(" "):
        raise ValueError("no SP before MSG")
    return {"pri": int(pri), "ts": ts, "host": host, "app": app,
            "procid": procid, "msgid": msgid, "sd": sd, "msg": rest[1:]}


CEF_KEY = re.compile(r"[A-Za-z0-9_]+\Z")
CEF_UNESC = {"=": "=", "\\": "\\", "n": "\n", "r": "\r"}


def parse_cef(line):
    """(header fields after 'CEF:0', {key: value}) of a CEF line: the
    header split at unescaped '|' (escapes \\| and \\\\), the extension's
    values running to the key of the next unescaped '=' (escapes \\=,
    \\\\, \\n, \\r).  ValueError says what is wrong."""
    if not line.startswith("CEF:0|"):
        raise ValueError("does not start with CEF:0|")
    fields, cur, i = [], [], len("CEF:0|")
    while len(fields) < 6:
        if i >= len(line):
            raise ValueError("%d header fields" % (len(fields) + 1))
        c = line[i]
        if c == "\\":
            if i + 1 >= len(line) or line[i + 1] not in "|\\":
                raise ValueError("bad header escape at %d" % i)
            cur.append(line[i + 1])
            i += 2
            continue
        if c == "|":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    ext = line[i:]
    eqs, j = [], 0
    while j < len(ext):
        if ext[j] == "\\":
            if j + 1 >= len(ext) or ext[j + 1] not in CEF_UNESC:
                raise ValueError("bad extension escape at %d" % j)
            j += 2
            continue
        if ext[j] == "=":
            eqs.append(j)
        j += 1
    pairs, starts, prev = {}, [], -1
    for eq in eqs:
        ks = ext.rfind(" ", 0, eq) + 1
        if ks <= prev or (ks == 0 and starts):
            raise ValueError("no key before '=' at %d" % eq)
        starts.append((ks, eq))
        prev = eq
    if (ext and not starts) or (starts and starts[0][0] != 0):
        raise ValueError("extension does not start with key=")
    for n, (ks, eq) in enumerate(starts):
        key = ext[ks:eq]
        end = starts[n + 1][0] - 1 if n + 1 < len(starts) else len(ext)
        if not CEF_KEY.match(key) or key in pairs:
            raise ValueError("bad or repeated key %r" % key)
        raw, val, k = ext[eq + 1:end], [], 0
        while k < len(raw):
            if raw[k] == "\\":
                val.append(CEF_UNESC[raw[k + 1]])
                k += 2
            else:
                val.append(raw[k])
                k += 1
        pairs[key] = "".join(val)
    return fields, pairs


def check_parse_cef(res):
    """The parser itself, on a line with every escape: a parser that
    split at any '=' or '|' would pass the collector's plain lines."""
    line = ("CEF:0|mtasts-watch|mtasts-collector|0.1|X\\|Y|a \\\\ b|9|"
            "rt=1 externalId=7 cs1=a\\=b c\\\\ cs1Label=subject "
            "msg=one\\ntwo \\= three")
    try:
        fields, ext = parse_cef(line)
        got = (fields[3], fields[4], fields[5], ext)
    except ValueError as e:
        got = e
    refused = []
    for wrong in ("CEF:0|a|b|c|d|e|f|k=v \\x=1",   # unknown escape
                  "CEF:0|a|b|c|d|e|f|k=v = w",       # '=' unescaped
                  "CEF:0|a|b|c|d|e|f|k=v k=w",       # key twice
                  "CEF:0|a|b|c|d|e"):                # header cut short
        try:
            parse_cef(wrong)
        except ValueError:
            refused.append(wrong)
    res.check("syslog: the CEF parser handles \\| \\\\ \\= \\n and "
              "refuses malformed lines",
              got == ("X|Y", "a \\ b", "9",
                      {"rt": "1", "externalId": "7", "cs1": "a=b c\\",
                       "cs1Label": "subject", "msg": "one\ntwo = three"})
              and len(refused) == 4, "%r refused %r" % (got, refused))


# --- the database side of it ---

def db_events(conninfo):
    """Every incident event with its incident, in id order."""
    return rows_json(conninfo, """
        SELECT json_build_object('id', e.id, 'incident', e.incident_id,
          'kind', e.kind, 'severity', e.severity, 'stage', e.stage,
          'at', floor(extract(epoch FROM e.at))::bigint,
          'code', i.code, 'domain', i.domain, 'subject', i.subject,
          'dissenters', i.dissenters, 'vantages', i.vantages,
          'first_seen', floor(extract(epoch FROM i.first_seen))::bigint,
          'resolved_at', floor(extract(epoch FROM i.resolved_at))::bigint
          )::text
        FROM incident_events e JOIN incidents i ON i.id = e.incident_id
        ORDER BY e.id""")


def db_open(conninfo):
    """{id: row} of the open incidents."""
    rows = rows_json(conninfo, """
        SELECT json_build_object('id', id, 'domain', domain, 'code', code,
          'subject', subject, 'severity', severity, 'state', state,
          'stage', stage, 'detail', detail, 'vantages', vantages,
          'dissenters', dissenters, 'matrix', matrix,
          'first_round', first_round, 'last_round', last_round,
          'first_seen', floor(extract(epoch FROM first_seen))::bigint,
          'last_seen', floor(extract(epoch FROM last_seen))::bigint)::text
        FROM incidents WHERE state = 'open' ORDER BY id""")
    return {r["id"]: r for r in rows}


def stable(conninfo, fetch, tries=4):
    """(open incidents, fetch()) with no incident opened, resolved or
    changed (but for last_seen and last_round, which move each round)
    while fetch ran, so the two can be compared field by field."""
    def key(rows):
        return {i: {k: v for k, v in r.items()
                    if k not in ("last_seen", "last_round")}
                for i, r in rows.items()}
    for _ in range(tries):
        before = db_open(conninfo)
        got = fetch()
        after = db_open(conninfo)
        if key(before) == key(after):
            return after, got
        time.sleep(0.3)
    return after, got


def vantage_events(evs, kind):
    return [e for e in evs if e["kind"] == kind and
            e["code"].startswith("VANTAGE_")]


# --- the webhook ---

def hook_docs(hook):
    """[(arrival, path, headers, envelope or None)] of every POST."""
    out = []
    for t, path, hdrs, body in hook.got():
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            doc = None
        out.append((t, path, hdrs, doc))
    return out


def hook_event_id(doc):
    try:
        return int(doc["alerts"][0]["annotations"]["event_id"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def delivered(hook, grams):
    """Event ids the webhook got, and (incident, kind, rt ms) keys the
    syslog receiver got."""
    ids = [hook_event_id(d) for _, _, _, d in hook_docs(hook)]
    keys = []
    for _, data in grams.got():
        try:
            _, ext = parse_cef(parse_5424(data)["msg"])
            keys.append((int(ext["externalId"]), ext["act"],
                         int(ext["rt"])))
        except (ValueError, KeyError):
            keys.append(None)
    return ids, keys


def wait_delivered(soc, want):
    """Polls until every event of want reached both sinks; the seconds
    it took."""
    t0 = time.monotonic()

    def done():
        ids, keys = delivered(soc.hook, soc.syslog)
        return all(e["id"] in ids and (e["incident"], e["kind"],
                                       e["at"] * 1000) in keys
                   for e in want)
    ok = harness.wait_until(done, WAIT_DELIVERY, 0.2)
    return ok, time.monotonic() - t0


def envelope_problems(doc, hdrs, path, ev, status, fps):
    """What is wrong with the webhook POST of event ev."""
    bad = []

    def want(cond, what):
        if not cond:
            bad.append(what)
    want(path == "/alerts", "path %r" % path)
    want(hdrs.get("content-type", "").startswith("application/json"),
         "content-type %r" % hdrs.get("content-type"))
    if not isinstance(doc, dict):
        return bad + ["not a JSON object"]
    want(doc.get("version") == "4", "version %r" % doc.get("version"))
    want(doc.get("status") == status, "status %r" % doc.get("status"))
    want(doc.get("receiver") == "mtasts-watch", "receiver")
    want(doc.get("truncatedAlerts") == 0, "truncatedAlerts")
    alerts = doc.get("alerts")
    if not isinstance(alerts, list) or len(alerts) != 1:
        return bad + ["alerts %r" % alerts]
    a = alerts[0]
    lab = a.get("labels") or {}
    ann = a.get("annotations") or {}
    want(a.get("status") == status, "alert status %r" % a.get("status"))
    want(lab.get("alertname") == ev["code"], "alertname %r" %
         lab.get("alertname"))
    want(lab.get("domain") == ev["domain"], "domain %r" % lab.get("domain"))
    want(lab.get("subject") == ev["subject"], "subject %r" %
         lab.get("subject"))
    want(lab.get("severity") == ev["severity"], "severity %r" %
         lab.get("severity"))
    want(sorted((lab.get("vantages") or "").split(",")) ==
         sorted(ev["vantages"]), "vantages %r" % lab.get("vantages"))
    want(doc.get("commonLabels") == lab, "commonLabels differ")
    want(doc.get("commonAnnotations") == ann, "commonAnnotations differ")
    want(doc.get("groupLabels") == {"alertname": ev["code"],
                                    "domain": ev["domain"]}, "groupLabels")
    want(ann.get("event") == ev["kind"], "event %r" % ann.get("event"))
    want(ann.get("incident_id") == str(ev["incident"]), "incident_id %r" %
         ann.get("incident_id"))
    want(ann.get("event_id") == str(ev["id"]), "event_id")
    want(ann.get("dissenters", "") == ",".join(ev["dissenters"]),
         "dissenters %r" % ann.get("dissenters"))
    if ev["kind"] == "ack":
        want(ann.get("acked_by") == ACK_BY and
             ann.get("ack_note") == ACK_NOTE, "acked_by %r ack_note %r" %
             (ann.get("acked_by"), ann.get("ack_note")))
    want(isinstance(ann.get("summary"), str) and
         ann["summary"].startswith(ev["code"] + " "), "summary")
    starts, ends = a.get("startsAt", ""), a.get("endsAt", "")
    want(RFC3339.match(starts or "") and starts == rfc3339(ev["first_seen"]),
         "startsAt %r, first seen %s" % (starts, rfc3339(ev["first_seen"])))
    if status == "firing":
        want(ends == ZERO_TIME, "endsAt %r while firing" % ends)
    else:
        want(RFC3339.match(ends or "") and ev["resolved_at"] and
             ends == rfc3339(ev["resolved_at"]) and ends >= starts,
             "endsAt %r, resolved %s" % (ends, ev["resolved_at"]))
    fp = a.get("fingerprint")
    want(isinstance(fp, str) and re.fullmatch(r"[0-9a-f]{16}", fp),
         "fingerprint %r" % fp)
    fps.setdefault(ev["incident"], set()).add(fp)
    return bad


def check_webhook(res, soc, evs, kind, tag):
    """Each VANTAGE_* event of kind arrived once, as its envelope."""
    want = vantage_events(evs, kind)
    by_id = collections.defaultdict(list)
    for _, path, hdrs, doc in hook_docs(soc.hook):
        by_id[hook_event_id(doc)].append((path, hdrs, doc))
    counts = [(e["id"], e["code"], e["domain"], len(by_id.get(e["id"], [])))
              for e in want]
    res.check("%s: each VANTAGE_* %s event arrived exactly once" %
              (tag, kind), want and all(c[3] == 1 for c in counts),
              [c for c in counts if c[3] != 1] or "no event")
    status = "resolved" if kind == "resolve" else "firing"
    bad = []
    for e in want:
        for path, hdrs, doc in by_id.get(e["id"], []):
            p = envelope_problems(doc, hdrs, path, e, status, soc.fps)
            if p:
                bad.append((e["id"], e["code"], e["domain"], p))
    res.check("%s: %s envelopes (version 4, %s, labels, times)" %
              (tag, kind, status), want and not bad, bad)
    fps = {i: f for i, f in soc.fps.items()}
    multi = {i: sorted(f) for i, f in fps.items() if len(f) != 1}
    flat = [next(iter(f)) for f in fps.values() if len(f) == 1]
    res.check("%s: one fingerprint per incident, none shared" % tag,
              fps and not multi and len(set(flat)) == len(flat),
              multi or sorted(flat))


# --- syslog ---

def syslog_msgs(soc):
    """[(datagram, parsed 5424 or error, CEF fields, extension)]."""
    out = []
    for _, data in soc.syslog.got():
        try:
            m = parse_5424(data)
            fields, ext = parse_cef(m["msg"])
            out.append((data, m, fields, ext))
        except (ValueError, UnicodeDecodeError) as e:
            out.append((data, "%s: %r" % (e, data[:200]), None, None))
    return out


def cef_problems(m, fields, ext, ev, coll_pid):
    bad = []

    def want(cond, what):
        if not cond:
            bad.append(what)
    resolve = ev["kind"] == "resolve"
    sev = 5 if resolve else SYSLOG_SEV[ev["severity"]]
    want(m["pri"] == FACILITY * 8 + sev, "PRI %d" % m["pri"])
    want(m["ts"] == rfc3339(ev["at"]), "TIMESTAMP %s, event at %s" %
         (m["ts"], rfc3339(ev["at"])))
    want(m["app"] == "mtasts-collector", "APP-NAME %r" % m["app"])
    want(m["procid"] == str(coll_pid), "PROCID %r" % m["procid"])
    want(m["msgid"] == ev["kind"], "MSGID %r" % m["msgid"])
    want(m["sd"] is None, "structured data with CEF")
    want(m["host"] != "-", "no HOSTNAME")
    verb = {"open": "opened", "resolve": "resolved", "escalate":
            "escalated", "ack": "acknowledged"}[ev["kind"]]
    want(fields[:2] == ["mtasts-watch", "mtasts-collector"],
         "vendor/product %r" % fields[:2])
    want(fields[3] == ev["code"], "signature id %r" % fields[3])
    want(fields[4] == "%s %s for %s" % (ev["code"], verb, ev["domain"]),
         "name %r" % fields[4])
    want(fields[5] == ("1" if resolve else str(SEV_NUM[ev["severity"]])),
         "CEF severity %r" % fields[5])
    want(ext.get("externalId") == str(ev["incident"]), "externalId")
    want(ext.get("act") == ev["kind"], "act %r" % ext.get("act"))
    want(ext.get("outcome") == ("resolved" if ev["resolved_at"] and
                                resolve else "open"),
         "outcome %r" % ext.get("outcome"))
    want(ext.get("dhost") == ev["domain"], "dhost %r" % ext.get("dhost"))
    want(ext.get("rt") == str(ev["at"] * 1000), "rt %r" % ext.get("rt"))
    want(ext.get("start") == str(ev["first_seen"] * 1000), "start %r" %
         ext.get("start"))
    want(ext.get("end", "").isdigit() and
         int(ext["end"]) >= ev["first_seen"] * 1000, "end %r" %
         ext.get("end"))
    want(ext.get("cs1") == ev["subject"] and
         ext.get("cs1Label") == "subject", "cs1 %r" % ext.get("cs1"))
    want(sorted(ext.get("cs2", "").split(",")) == sorted(ev["vantages"])
         and ext.get("cs2Label") == "vantages", "cs2 %r" % ext.get("cs2"))
    want(ext.get("cs3", "") == ",".join(ev["dissenters"]) and
         ext.get("cs3Label") == ("dissenters" if ev["dissenters"] else None),
         "cs3 %r" % ext.get("cs3"))
    want("cs4" not in ext, "cs4 (stage) %r" % ext.get("cs4"))
    want(ext.get("msg"), "no msg")
    want(list(ext)[-1] == "msg", "msg is not last")
    return bad


def check_syslog(res, soc, evs, kind, tag, coll_pid):
    want = vantage_events(evs, kind)
    msgs = syslog_msgs(soc)
    broken = [m for _, m, f, _ in msgs if f is None]
    res.check("%s: every datagram is RFC 5424 carrying a CEF line" % tag,
              msgs and not broken, broken or "no datagram")
    by_key = collections.defaultdict(list)
    for _, m, f, ext in msgs:
        if f is not None:
            by_key[(ext.get("externalId"), ext.get("act"),
                    ext.get("rt"))].append((m, f, ext))
    counts = [(e["id"], e["code"], e["domain"],
               len(by_key.get((str(e["incident"]), kind,
                               str(e["at"] * 1000)), [])))
              for e in want]
    res.check("%s: one datagram per VANTAGE_* %s event" % (tag, kind),
              want and all(c[3] == 1 for c in counts),
              [c for c in counts if c[3] != 1] or "no event")
    bad = []
    for e in want:
        for m, f, ext in by_key.get((str(e["incident"]), kind,
                                     str(e["at"] * 1000)), []):
            p = cef_problems(m, f, ext, e, coll_pid)
            if p:
                bad.append((e["id"], e["code"], e["domain"], p))
    res.check("%s: %s messages: PRI, header, CEF code/severity, "
              "extension" % (tag, kind), want and not bad, bad)
    # Spelled out for one incident, so that a mapping that is wrong
    # everywhere in the same way still shows.
    chain = [e for e in want if e["code"] == "VANTAGE_CHAIN_MISMATCH"]
    one = chain and by_key.get((str(chain[0]["incident"]), kind,
                                str(chain[0]["at"] * 1000)))
    if kind == "open":
        wsev, wpri, wout = "9", 131, "open"
    else:
        wsev, wpri, wout = "1", 133, "resolved"
    res.check("%s: VANTAGE_CHAIN_MISMATCH %s is CEF severity %s, "
              "PRI <%d>, id and domain" % (tag, kind, wsev, wpri),
              one and one[0][1][3] == "VANTAGE_CHAIN_MISMATCH" and
              one[0][1][5] == wsev and one[0][0]["pri"] == wpri and
              one[0][2].get("externalId") == str(chain[0]["incident"]) and
              one[0][2].get("dhost") == "vchain.test" and
              one[0][2].get("outcome") == wout and
              one[0][2].get("cs3") == DISSENTER,
              one and (one[0][0], one[0][1], one[0][2]) or "none")


# --- the API, /metrics and mtasts-report while the incidents are open ---

def check_api_incidents(res, soc, views, conninfo):
    dbo, (status, hdrs, doc) = stable(
        conninfo, lambda: api_json(soc.port, "/api/v1/incidents?open=1"))
    items = doc.get("items") if isinstance(doc, dict) else None
    if not res.check("api: GET /api/v1/incidents?open=1 is 200 JSON",
                     status == 200 and isinstance(items, list),
                     "%s %r" % (status, doc)):
        return None
    raw = http_get(soc.port, "/api/v1/status")[2]
    res.check("api: JSON answer headers, one document and a newline",
              hdrs.get("content-type", "").startswith("application/json")
              and hdrs.get("cache-control") == "no-store" and
              hdrs.get("x-content-type-options") == "nosniff" and
              raw.endswith(b"}\n"),
              "%s %r" % (hdrs, raw[-40:]))
    ids = [getp(i, "mtasts.incident_id") for i in items]
    res.check("api: open incidents are the database's, id by id",
              sorted(ids) == sorted(dbo) and len(set(ids)) == len(ids),
              "api %s db %s" % (sorted(ids), sorted(dbo)))
    missing = [(getp(i, "mtasts.incident_id"), f) for i in items
               for f in INCIDENT_FIELDS if getp(i, f) is _MISSING]
    res.check("api: every incident has the ECS fields of docs/api.md",
              items and not missing, missing)
    bad = []
    for i in items:
        r = dbo.get(getp(i, "mtasts.incident_id"))
        if r is None:
            continue
        got = (getp(i, "event.id"), getp(i, "rule.name"),
               getp(i, "mtasts.domain"), getp(i, "mtasts.subject"),
               getp(i, "mtasts.severity"), getp(i, "event.severity"),
               getp(i, "mtasts.state"), getp(i, "event.kind"),
               getp(i, "event.dataset"), getp(i, "event.start"),
               getp(i, "event.end"), getp(i, "mtasts.first_round"),
               getp(i, "mtasts.vantages"), getp(i, "mtasts.dissenters"),
               getp(i, "mtasts.matrix"))
        want = (str(r["id"]), r["code"], r["domain"], r["subject"],
                r["severity"], SEV_NUM[r["severity"]], "open", "alert",
                "mtasts.incident", rfc3339(r["first_seen"]), None,
                r["first_round"], r["vantages"], r["dissenters"],
                r["matrix"])
        if got != want or not RFC3339_S.match(getp(i, "@timestamp") or ""):
            bad.append((r["id"], [(g, w) for g, w in zip(got, want)
                                  if g != w]))
    res.check("api: each incident agrees with its row", items and not bad,
              bad)

    code, subj, _ = sorted(e for e in views.expect["vchain.test"]
                           if e[0] == "VANTAGE_CHAIN_MISMATCH")[0]
    one = [i for i in items if getp(i, "rule.name") == code and
           getp(i, "mtasts.domain") == "vchain.test"]
    if not res.check("api: the VANTAGE_CHAIN_MISMATCH incident is listed",
                     len(one) == 1, [getp(i, "rule.name") for i in items]):
        return items
    i, r = one[0], dbo.get(getp(one[0], "mtasts.incident_id"), {})
    m = getp(i, "mtasts.matrix")
    fields = [
        ("rule.name", code), ("mtasts.severity", "error"),
        ("event.severity", 9), ("event.kind", "alert"),
        ("event.dataset", "mtasts.incident"),
        ("event.id", str(r.get("id"))), ("mtasts.domain", "vchain.test"),
        ("mtasts.subject", subj), ("mtasts.state", "open"),
        ("mtasts.stage", None), ("event.end", None), ("mtasts.ack", None),
        ("mtasts.dissenters", [DISSENTER]),
        ("mtasts.first_round", r.get("first_round")),
        ("event.start", rfc3339(r.get("first_seen", 0)))]
    bad = [(f, getp(i, f), w) for f, w in fields if getp(i, f) != w]
    if sorted(getp(i, "mtasts.vantages") or []) != sorted(VANTAGES):
        bad.append(("mtasts.vantages", getp(i, "mtasts.vantages")))
    if not (isinstance(m, dict) and set(m) == VANTAGES and
            m["eu"] == m["ap"] != m["us"]):
        bad.append(("mtasts.matrix", m))
    if not (isinstance(getp(i, "message"), str) and getp(i, "message")):
        bad.append(("message", getp(i, "message")))
    lr = getp(i, "mtasts.last_round")
    if not (isinstance(lr, int) and lr >= (r.get("first_round") or 0)):
        bad.append(("mtasts.last_round", lr))
    if not RFC3339_S.match(getp(i, "@timestamp") or ""):
        bad.append(("@timestamp", getp(i, "@timestamp")))
    res.check("api: VANTAGE_CHAIN_MISMATCH incident field by field",
              not bad, bad)
    return items


def matrix_row(doc, name):
    rows = [v for v in getp(doc, "mtasts.matrix") or []
            if getp(v, "observer.name") == name]
    return rows[0] if len(rows) == 1 else {}


def check_api_domain(res, soc, views, conninfo):
    chain = [c for c in views.expect["vchain.test"]
             if c[0] == "VANTAGE_CHAIN_MISMATCH"][0]

    def fetch():
        status, _, doc = api_json(soc.port, "/api/v1/domains/vchain.test")
        return status, doc

    def complete(sd):
        # The latest compared round may be one a vantage missed.
        return sd[0] == 200 and isinstance(sd[1], dict) and \
            getp(sd[1], "mtasts.vantages.completed") == 3

    def fetch_complete():
        sd = fetch()
        return sd if complete(sd) else None
    status, doc = harness.wait_until(fetch_complete, 2 * INTERVAL, 0.5) or \
        fetch()
    if not res.check("api: GET /api/v1/domains/vchain.test is 200",
                     status == 200 and isinstance(doc, dict),
                     "%s %r" % (status, doc)):
        return
    odd = matrix_row(doc, DISSENTER)
    rest = [matrix_row(doc, n) for n in sorted(VANTAGES - {DISSENTER})]
    names = sorted(getp(v, "observer.name")
                   for v in getp(doc, "mtasts.matrix") or [])
    res.check("api: domain matrix has the three vantages",
              names == sorted(VANTAGES) and all(
                  getp(v, "observer.geo.name") == getp(v, "observer.name")
                  for v in getp(doc, "mtasts.matrix")), names)
    res.check("api: domain matrix shows us as the odd one",
              getp(odd, "mtasts.agrees") is False and
              chain[0] in (getp(odd, "mtasts.dissents_in") or []) and
              all(getp(v, "mtasts.agrees") is True and
                  getp(v, "mtasts.dissents_in") == [] for v in rest),
              [(getp(v, "observer.name"), getp(v, "mtasts.agrees"),
                getp(v, "mtasts.dissents_in"))
               for v in getp(doc, "mtasts.matrix") or []])
    res.check("api: domain vantages 3 total, 3 completed, 2 agreeing",
              (getp(doc, "mtasts.vantages.total"),
               getp(doc, "mtasts.vantages.completed"),
               getp(doc, "mtasts.vantages.agreeing")) == (3, 3, 2),
              getp(doc, "mtasts.vantages"))
    vf = [f for f in getp(doc, "mtasts.vantage_findings") or []
          if getp(f, "rule.name") == chain[0]]
    res.check("api: domain vantage_findings name the chain mismatch, "
              "dissenter us",
              len(vf) == 1 and getp(vf[0], "mtasts.dissenters") ==
              [DISSENTER] and getp(vf[0], "mtasts.subject") == chain[1] and
              getp(vf[0], "event.severity") == 9, vf)
    host = [h for h in getp(doc, "mtasts.hosts") or []
            if getp(h, "server.address") == chain[1]]
    res.check("api: domain policy host verdict mixed",
              len(host) == 1 and getp(host[0], "mtasts.verdict") == "mixed",
              [(getp(h, "server.address"), getp(h, "mtasts.verdict"))
               for h in getp(doc, "mtasts.hosts") or []])
    dbo = db_open(conninfo)
    want = sorted(i for i, r in dbo.items() if r["domain"] == "vchain.test")
    got = sorted(getp(i, "mtasts.incident_id")
                 for i in getp(doc, "mtasts.incidents") or [])
    res.check("api: domain lists its open incidents", want and got == want,
              "api %s db %s" % (got, want))
    # The name is lower-cased and one trailing dot dropped.
    status, _, alt = api_json(soc.port, "/api/v1/domains/VChain.Test.")
    res.check("api: /api/v1/domains/VChain.Test. is vchain.test",
              status == 200 and getp(alt, "mtasts.domain") ==
              "vchain.test", "%s %r" % (status, getp(alt or {},
                                                     "mtasts.domain")))


def check_api_status_errors(res, soc, views):
    status, _, doc = api_json(soc.port, "/api/v1/status")
    items = doc.get("items") if isinstance(doc, dict) else None
    rows = {getp(r, "mtasts.domain"): r for r in items or []}
    res.check("api: /api/v1/status has every lab domain",
              status == 200 and sorted(rows) == views.domains,
              "%s %s" % (status, sorted(rows)))
    c, v = rows.get("vchain.test", {}), rows.get(views.clean, {})
    res.check("api: status shows vchain.test's error and the clean domain "
              "quiet",
              getp(c, "mtasts.incidents.worst.severity") == "error" and
              isinstance(getp(c, "mtasts.incidents.open"), int) and
              getp(c, "mtasts.incidents.open") >= 2 and
              getp(v, "mtasts.incidents.open") == 0 and
              getp(v, "mtasts.incidents.worst") is None,
              (getp(c, "mtasts.incidents"), getp(v, "mtasts.incidents")))
    for path, want in (("/api/v1/domains/nosuch.test", 404),
                       ("/api/v1/domains/bad..test", 400),
                       ("/api/v1/domains/bad_name!.test", 400)):
        status, _, doc = api_json(soc.port, path)
        res.check("api: GET %s is %d with a JSON error" % (path, want),
                  status == want and isinstance(doc, dict) and
                  isinstance(doc.get("error"), str),
                  "%s %r" % (status, doc))


def check_metrics(res, soc):
    status, hdrs, body = http_get(soc.port, "/metrics")
    res.check("metrics: GET /metrics is 200 text/plain version 0.0.4",
              status == 200 and hdrs.get("content-type", "").startswith(
                  "text/plain; version=0.0.4"), "%s %s" % (status, hdrs))
    try:
        fams = promparse.parse(body)
    except promparse.ParseError as e:
        lines = body.decode(errors="replace").split("\n")
        res.fail("metrics: strict parse", "%s: %r" % (
            e, lines[e.line - 1] if 0 < e.line <= len(lines) else ""))
        return
    res.ok("metrics: strict parse (%d families)" % len(fams))

    def one(name, **labels):
        s = promparse.find(fams, name, **labels)
        return s[0].value if len(s) == 1 else None
    res.check("metrics: database part read",
              one("mtastswatch_metrics_database_success") == 1,
              one("mtastswatch_metrics_database_success"))
    dis = one("mtastswatch_round_disagreements", domain="vchain.test")
    clean = one("mtastswatch_round_disagreements", domain="vclean.test")
    res.check("metrics: round_disagreements vchain.test > 0, vclean.test 0",
              dis is not None and dis > 0 and clean == 0,
              "vchain %s vclean %s" % (dis, clean))
    inc = promparse.find(fams, "mtastswatch_incidents_open",
                         code="VANTAGE_CHAIN_MISMATCH")
    res.check("metrics: incidents_open{code=VANTAGE_CHAIN_MISMATCH,"
              "severity=error} >= 1",
              len(inc) == 1 and inc[0].labels.get("severity") == "error" and
              inc[0].value >= 1, [(s.labels, s.value) for s in inc])
    seen = {s.labels.get("agent"): (s.labels.get("region"), s.value)
            for s in promparse.find(
                fams, "mtastswatch_agent_last_seen_timestamp_seconds")}
    now = time.time()
    res.check("metrics: agent_last_seen for eu, us and ap",
              set(seen) == VANTAGES and all(
                  r == a and now - 4 * INTERVAL < v <= now + 5
                  for a, (r, v) in seen.items()), seen)
    stored = one("mtastswatch_collector_results_stored_total")
    res.check("metrics: collector_results_stored_total > 0",
              stored is not None and stored > 0, stored)


def report(conninfo, *args):
    p = subprocess.run([network.binpath("mtasts-report"), "--database",
                        conninfo] + list(args), capture_output=True,
                       timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace"), \
        p.stderr.decode("utf-8", "replace")


def check_report(res, soc, conninfo):
    def fetch():
        return (report(conninfo, "incidents", "--open", "--format", "json"),
                api_json(soc.port, "/api/v1/incidents?open=1"),
                report(conninfo, "incidents", "--open", "--format", "cef"))
    # A fold between the calls moves last_seen and last_round: retried.
    for _ in range(3):
        dbo, ((rc, out, err), (_, _, api), (crc, cef, cerr)) = stable(
            conninfo, fetch)
        try:
            docs = [json.loads(line) for line in out.splitlines()]
        except ValueError as e:
            docs = None
            err += " %s" % e
        if docs and docs == ((api or {}).get("items") or []):
            break
    if not res.check("report: incidents --open --format json", rc == 0 and
                     docs, "rc=%d %s" % (rc, err.strip())):
        return
    api_items = (api or {}).get("items") or []
    rids = [getp(d, "mtasts.incident_id") for d in docs]
    aids = [getp(d, "mtasts.incident_id") for d in api_items]
    res.check("report: the same open incidents as the API, in its order",
              rids == aids and sorted(rids) == sorted(dbo),
              "report %s api %s db %s" % (rids, aids, sorted(dbo)))
    differ = [getp(d, "mtasts.incident_id") for d, a in zip(docs, api_items)
              if d != a]
    res.check("report: its documents are the API's, field for field",
              not differ and len(docs) == len(api_items), differ)
    lines = cef.splitlines()
    parsed, bad = [], []
    for line in lines:
        try:
            parsed.append(parse_cef(line))
        except ValueError as e:
            bad.append("%s: %r" % (e, line[:200]))
    res.check("report: --format cef prints one CEF line per open incident",
              crc == 0 and not bad and len(lines) == len(dbo) and
              sorted(int(x.get("externalId", 0)) for _, x in parsed) ==
              sorted(dbo), "rc=%d %s %s lines %d open %s" % (
                  crc, cerr.strip(), bad, len(lines), sorted(dbo)))
    wrong = []
    for f, x in parsed:
        r = dbo.get(int(x.get("externalId", 0)))
        if r is None:
            continue
        name = "%s open for %s" % (r["code"], r["domain"] or r["subject"])
        if (f[0:2] != ["mtasts-watch", "mtasts-collector"] or
                f[3] != r["code"] or f[4] != name or
                f[5] != str(SEV_NUM[r["severity"]]) or
                x.get("outcome") != "open" or
                x.get("dhost", "") != r["domain"] or
                x.get("cs1") != r["subject"]):
            wrong.append((f, x))
    res.check("report: CEF lines carry code, name, severity, id, domain",
              parsed and not wrong, wrong)


class Soc:
    """The receivers and what the checks share."""

    def __init__(self):
        self.hook = WebhookReceiver()
        self.syslog = SyslogReceiver()
        self.port = None      # the API's
        self.coll_pid = None
        self.fps = {}         # incident -> webhook fingerprints seen

    def close(self):
        self.hook.close()
        self.syslog.close()

    def dump(self, work):
        """What the receivers got, for a look after MTASTS_KEEP=1."""
        with open(os.path.join(work, "webhook.jsonl"), "wb") as f:
            for _, path, _, body in self.hook.got():
                f.write(path.encode() + b" " + body + b"\n")
        with open(os.path.join(work, "syslog.log"), "wb") as f:
            for _, data in self.syslog.got():
                f.write(data + b"\n")

    def conf(self):
        return ["[http]", "bind = 127.0.0.1:0",
                "[notify]",
                "webhook_url = http://127.0.0.1:%d/alerts" % self.hook.port,
                "webhook_timeout = 5",
                "syslog = udp://127.0.0.1:%d" % self.syslog.port,
                "syslog_format = cef",
                "syslog_facility = local0"]

    def find_port(self, coll):
        pat = re.compile(r"http: event=listening bind=127\.0\.0\.1:0 "
                         r"port=([0-9]+)")

        def port():
            m = pat.search(coll.stderr_tail(1 << 20))
            return int(m.group(1)) if m else None
        self.port = harness.wait_until(port, 10, 0.1)
        self.coll_pid = coll.pid
        self.coll = coll
        return self.port


ACK_BY = "soc-analyst"
ACK_NOTE = "looking into it: a = b, \\ and \"quotes\""


def check_ack(res, soc, conninfo):
    """An analyst acknowledges an open incident through the API; the
    ack event reaches both sinks.  Not a VANTAGE_* one, whose events the
    checks above count."""
    dbo = db_open(conninfo)
    pick = sorted(i for i, r in dbo.items()
                  if not r["code"].startswith("VANTAGE_"))
    if not res.check("ack: an open incident other than VANTAGE_*", pick,
                     sorted((r["code"], r["domain"]) for r in dbo.values())):
        return
    iid = pick[0]
    status, doc = http_post(soc.port, "/api/v1/incidents/%d/ack" % iid,
                            json.dumps({"by": ACK_BY, "note": ACK_NOTE}))
    res.check("ack: POST /api/v1/incidents/%d/ack answers the incident" %
              iid, status == 200 and
              getp(doc, "mtasts.incident_id") == iid and
              getp(doc, "mtasts.ack.by") == ACK_BY and
              getp(doc, "mtasts.ack.note") == ACK_NOTE and
              RFC3339_S.match(getp(doc, "mtasts.ack.at") or ""),
              "%s %r" % (status, getp(doc or {}, "mtasts.ack")))
    for path, body, want in (
            ("/api/v1/incidents/999999/ack", "{}", 404),
            ("/api/v1/incidents/x1/ack", "{}", 400),
            ("/api/v1/incidents/%d/ack" % iid, "[1]", 400)):
        status, doc = http_post(soc.port, path, body)
        res.check("ack: POST %s %s is %d" % (path, body, want),
                  status == want and isinstance(doc, dict) and
                  "error" in doc, "%s %r" % (status, doc))
    acks = [e for e in db_events(conninfo)
            if e["incident"] == iid and e["kind"] == "ack"]
    if not res.check("ack: one ack event in the database", len(acks) == 1,
                     acks):
        return
    ev = acks[0]
    ok, took = wait_delivered(soc, acks)
    res.info("ack event on both sinks after %.1fs" % took)
    posts = [(path, hdrs, d) for _, path, hdrs, d in hook_docs(soc.hook)
             if hook_event_id(d) == ev["id"]]
    bad = [envelope_problems(d, h, p, ev, "firing", soc.fps)
           for p, h, d in posts]
    res.check("ack: webhook got it once, firing, acked_by and ack_note",
              len(posts) == 1 and not any(bad), "%d POSTs %s" %
              (len(posts), bad))
    grams = [(m, f, x) for _, m, f, x in syslog_msgs(soc)
             if f is not None and x.get("externalId") == str(iid) and
             x.get("act") == "ack"]
    bad = [cef_problems(m, f, x, ev, soc.coll_pid) for m, f, x in grams]
    res.check("ack: one CEF datagram, the incident's severity kept",
              len(grams) == 1 and not any(bad), "%d datagrams %s" %
              (len(grams), bad))


def soc_while_open(res, soc, views, conninfo):
    """Everything a SOC sees while the incidents are open."""
    evs = db_events(conninfo)
    opens = vantage_events(evs, "open")
    ok, took = wait_delivered(soc, opens)
    res.info("open events on both sinks %.1fs after the fold check" % took)
    evs = db_events(conninfo)
    check_webhook(res, soc, evs, "open", "webhook")
    check_syslog(res, soc, evs, "open", "syslog", soc.coll_pid)
    lat = [t - e["at"] for e in opens for t, _, _, d in hook_docs(soc.hook)
           if hook_event_id(d) == e["id"]]
    if lat:
        res.info("webhook delivery after the event: max %.1fs" % max(lat))
    if soc.port is None:
        res.fail("api", "no port")
        return
    t0 = time.monotonic()
    check_api_incidents(res, soc, views, conninfo)
    check_api_domain(res, soc, views, conninfo)
    check_api_status_errors(res, soc, views)
    check_metrics(res, soc)
    check_report(res, soc, conninfo)
    res.info("API, metrics and report checks took %.1fs" %
             (time.monotonic() - t0))
    check_ack(res, soc, conninfo)
    check_reload(res, soc)


def check_reload(res, soc):
    """A SIGHUP that changes nothing restarts no thread: the API keeps
    its port (bound to port 0, a restart would move it) and the
    notifiers their deliveries."""
    def log():
        return soc.coll.stderr_tail(1 << 20)
    before = log().count("http: event=listening")
    os.kill(soc.coll_pid, signal.SIGHUP)
    ok = harness.wait_until(lambda: "reloaded config=" in log(), 15, 0.1)
    after = log().count("http: event=listening")
    status = http_get(soc.port, "/api/v1/status")[0]
    res.check("reload: an unchanged SIGHUP restarts neither API nor "
              "notifiers", bool(ok) and before == 1 and after == 1 and
              status == 200 and "notify: event=start" not in log(),
              "reloaded=%s listening %d -> %d status %s" %
              (bool(ok), before, after, status))


def soc_after_resolve(res, soc, conninfo):
    evs = db_events(conninfo)
    ok, took = wait_delivered(soc, vantage_events(evs, "resolve"))
    res.info("resolve events on both sinks after %.1fs" % took)
    evs = db_events(conninfo)
    check_webhook(res, soc, evs, "resolve", "webhook")
    check_syslog(res, soc, evs, "resolve", "syslog", soc.coll_pid)
    status, _, doc = api_json(soc.port, "/api/v1/incidents?open=1")
    left = [(getp(i, "rule.name"), getp(i, "mtasts.domain"))
            for i in (doc or {}).get("items") or []
            if str(getp(i, "rule.name")).startswith("VANTAGE_")]
    res.check("api: no VANTAGE_* incident open after the fix",
              status == 200 and not left, "%s %s" % (status, left))


def soc_final(res, soc, conninfo):
    """After the collector stopped: nothing delivered twice, every
    delivery an event of the database, the cursors at the end."""
    evs = {e["id"]: e for e in db_events(conninfo)}
    ids, keys = delivered(soc.hook, soc.syslog)
    dup = [i for i, n in collections.Counter(ids).items() if n > 1]
    res.check("webhook: no event delivered twice (%d POSTs)" % len(ids),
              ids and not dup and None not in ids, dup or ids)
    # VANTAGE_* incidents have an open and a resolve event only, so for
    # them fingerprint and status identify the event too.
    fpst = collections.Counter(
        (d["alerts"][0]["fingerprint"], d["status"])
        for _, _, _, d in hook_docs(soc.hook)
        for i in [hook_event_id(d)]
        if i in evs and evs[i]["code"].startswith("VANTAGE_"))
    res.check("webhook: no VANTAGE_* fingerprint+status twice",
              fpst and max(fpst.values()) == 1,
              [k for k, n in fpst.items() if n > 1])
    dup = [k for k, n in collections.Counter(keys).items() if n > 1]
    res.check("syslog: no event delivered twice (%d datagrams)" % len(keys),
              keys and not dup and None not in keys, dup)
    unknown = [i for i in ids if i not in evs] + [
        k for k in keys if k and not any(
            e["incident"] == k[0] and e["kind"] == k[1] and
            e["at"] * 1000 == k[2] for e in evs.values())]
    res.check("webhook and syslog: every delivery is an incident event",
              not unknown, unknown)
    missing = sorted(set(evs) - set(ids))
    if missing:
        res.info("events not on the webhook when the collector stopped: "
                 "%s" % missing)
    cur = {r[0]: r[1:] for r in network.psql(
        conninfo, "SELECT sink, last_event_id, attempts, "
        "coalesce(last_error, ''), delivered FROM notify_cursors")}
    want = {"webhook": max([i for i in ids if i] or [0]),
            "syslog": max([e["id"] for e in evs.values()
                           if (e["incident"], e["kind"], e["at"] * 1000)
                           in keys] or [0])}
    bad = [(s, cur.get(s)) for s in want
           if cur.get(s) is None or int(cur[s][0]) != want[s] or
           cur[s][1] != "0" or cur[s][2] != "" or
           int(cur[s][3]) != (len(ids) if s == "webhook" else len(keys))]
    res.check("notify_cursors: at the last delivery, no error, counts "
              "match", not bad, "%s want %s" % (bad, want))


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
    # The webhook and syslog receivers, closed by main() whatever happens.
    res.soc = soc = Soc()
    check_parse_cef(res)
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
        "batch = 3"] + soc.conf() + [""]))
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
    res.check("api: the collector listens on a free port",
              soc.find_port(coll), coll.stderr_tail())
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
            soc_while_open(res, soc, views, conninfo)

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
        if soc.port is not None:
            soc_after_resolve(res, soc, conninfo)

    # Orderly shutdown: every daemon exits 0 on SIGTERM.
    for p in agents + [coll]:
        rc = stop(p)
        res.check("%s: SIGTERM exits 0" % p.name, rc == 0,
                  "rc=%s %s" % (rc, p.stderr_tail()))
    if not skip_inc:
        soc_final(res, soc, conninfo)


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
    res.soc = None
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
        if res.soc is not None:
            res.soc.close()
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
            if res.soc is not None:
                res.soc.dump(work)
            res.info("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    res.info("took %.1fs" % (time.monotonic() - res.t0))
    print("vantage: %d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed or not res.passed else 0


if __name__ == "__main__":
    sys.exit(main())
