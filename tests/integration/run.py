#!/usr/bin/env python3
"""run.py -- integration tests of `mtasts-agent probe` against a loopback lab.

Makes a test PKI, starts a real unbound serving the lab zone and the lab
(tests/lib/lab.py) on random loopback ports, checks the lab itself with
independent clients (Python ssl, smtplib, curl, openssl), then runs the agent
($AGENT, default bin/mtasts-agent) over every scenario domain and checks its
JSON lines, exit codes and what the lab saw.  Prints "ok NAME" or
"FAIL NAME: why" per check and closes with "integration: N passed, M failed".

  python3 tests/integration/run.py [--lab-only] [--keep] [--verbose]

--lab-only  skips the agent; --keep keeps the temp dir (configs, certs, lab
log, agent output) and prints where it is.  Every process started is killed
by its pid at the end, also on failure.
"""

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import smtplib
import socket
import ssl
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
import scenarios  # noqa: E402

VANTAGE = "lab"


class Results:
    def __init__(self, verbose=False):
        self.passed = 0
        self.failed = 0
        self.verbose = verbose

    def ok(self, name):
        self.passed += 1
        print("ok %s" % name, flush=True)

    def fail(self, name, why):
        self.failed += 1
        why = str(why).replace("\n", " | ")
        if len(why) > 600 and not self.verbose:
            why = why[:600] + "..."
        print("FAIL %s: %s" % (name, why), flush=True)

    def check(self, name, cond, why=""):
        if cond:
            self.ok(name)
        else:
            self.fail(name, why or "condition false")
        return bool(cond)

    def info(self, text):
        print("info %s" % text, flush=True)


# --- lab set-up ---------------------------------------------------------------

def choose_ports():
    policy_ips = ["127.0.1.%d" % i for i in range(1, 80)] + ["::1"]
    mx_ips = ["127.0.2.%d" % i for i in range(1, 80)] + \
        ["127.0.4.%d" % i for i in range(1, 80)]
    https = harness.pick_port(policy_ips)
    smtp = harness.pick_port(mx_ips, avoid={https})
    aux = harness.pick_port(["127.0.0.1"], avoid={https, smtp})
    dead = harness.pick_port(["127.0.0.1"], udp=True,
                             avoid={https, smtp, aux})
    return {"https": https, "smtp": smtp, "aux": aux, "dead": dead}


def start_lab(procs, work, zone):
    cfg = os.path.join(work, "lab.json")
    with open(cfg, "w") as f:
        json.dump({"log": os.path.join(work, "lab.log"),
                   "listeners": zone.listeners}, f, indent=1)
    lab = procs.start("lab", [sys.executable,
                              os.path.join(ROOT, "tests", "lib", "lab.py"),
                              cfg], stdout_pipe=True)
    if not harness.wait_line(lab, "lab ready", 20):
        raise RuntimeError("lab not ready: %s" % lab.stderr_tail())
    return lab


def lab_log(work):
    try:
        with open(os.path.join(work, "lab.log")) as f:
            return f.read().splitlines()
    except OSError:
        return []


def by_short(zone):
    return {sc.short: sc for sc in zone.scenarios}


# --- checks of the lab itself (no agent involved) -------------------------------

def client_ctx(ca, weak=False):
    ctx = ssl.create_default_context(cafile=ca.path("root.pem"))
    if weak:
        import warnings
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
    return ctx


def https_get(ca, ip, port, host, path="/.well-known/mta-sts.txt",
              verify=True, weak=False):
    ctx = client_ctx(ca, weak)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((ip, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            der = s.getpeercert(binary_form=True)
            version = s.version()
            conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.sock = s
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, dict(resp.getheaders()), body, der, version


def lab_checks(res, zone, ca, ports, dns_port):
    sc = by_short(zone)
    P, Q, R = ports["https"], ports["smtp"], ports["aux"]
    good = sc["good"]

    def q(name, qtype):
        return harness.dns_query("127.0.0.1", dns_port, name, qtype, 2.0)

    r = q("_mta-sts.good.test", "TXT")
    res.check("lab: dns split TXT", r and r["answers"] and
              r["answers"][0][2] == ["v=STSv1; i", "d=%s;" % scenarios.STS_ID],
              r)
    r = q("good.test", "MX")
    res.check("lab: dns MX", r and sorted(a[2] for a in r["answers"]) ==
              [(10, "mx1.good.test"), (20, "a.mx.good.test")], r)
    r6 = q("mta-sts.v6.test", "AAAA")
    r4 = q("mta-sts.v6.test", "A")
    res.check("lab: dns v6-only policy host",
              r6 and r6["answers"] == [("mta-sts.v6.test", "AAAA", "::1")]
              and r4 and r4["rcode"] == "NOERROR" and not r4["answers"],
              (r6, r4))
    r = q("mta-sts.fetchnx.test", "A")
    res.check("lab: dns NXDOMAIN", r and r["rcode"] == "NXDOMAIN", r)
    r = q("_mta-sts.dnsfail.test", "TXT")
    res.check("lab: dns SERVFAIL", r and r["rcode"] == "SERVFAIL", r)
    r = q("_mta-sts.dnscname.test", "TXT")
    r2 = q("_mta-sts.dead.test", "TXT")
    res.check("lab: dns CNAME into a failing zone",
              r and r["answers"] and r["answers"][0][1] == "CNAME" and
              r2 and r2["rcode"] == "SERVFAIL", (r, r2))

    # HTTPS with full verification against the test root.
    host = good.policy_host
    ip = good.hosts[host]["ip"]
    try:
        status, hdrs, body, der, version = https_get(ca, ip, P, host)
        res.check("lab: https policy fetch verified",
                  status == 200 and body.decode() == good.facts["policy"]
                  and hashlib.sha256(der).hexdigest() ==
                  good.hosts[host]["leaf"]["sha256"],
                  (status, body[:80], version))
    except (OSError, ssl.SSLError) as e:
        res.fail("lab: https policy fetch verified", e)
    v6 = sc["v6"]
    try:
        status, _, body, _, _ = https_get(ca, "::1", P, v6.policy_host)
        res.check("lab: https over ::1", status == 200, status)
    except (OSError, ssl.SSLError) as e:
        res.fail("lab: https over ::1", e)
    if shutil.which("curl"):
        url = "https://%s:%d/.well-known/mta-sts.txt" % (host, P)
        p = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert",
                            ca.path("root.pem"), "--resolve",
                            "%s:%d:%s" % (host, P, ip), url],
                           capture_output=True, timeout=15)
        res.check("lab: curl --resolve policy", p.returncode == 0 and
                  p.stdout.decode() == good.facts["policy"],
                  p.stderr.decode()[-300:])
    # Chunked 70 KiB body, no Content-Length.
    tl = sc["toolarge"]
    try:
        status, hdrs, body, _, _ = https_get(
            ca, tl.hosts[tl.policy_host]["ip"], P, tl.policy_host)
        res.check("lab: chunked 70KiB", status == 200 and
                  len(body) == 70 * 1024 and
                  hdrs.get("Transfer-Encoding") == "chunked" and
                  "Content-Length" not in hdrs, (len(body), hdrs))
    except (OSError, ssl.SSLError) as e:
        res.fail("lab: chunked 70KiB", e)
    # TLS 1.0 only, via the openssl CLI.
    tw = sc["tlsweak"]
    p = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (
            tw.hosts[tw.policy_host]["ip"], P), "-servername",
         tw.policy_host, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
    res.check("lab: TLS 1.0 only host (s_client -tls1)",
              b"Protocol  : TLSv1\n" in p.stdout or
              b"Protocol  : TLSv1\r" in p.stdout, p.stdout[-300:])
    p = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (
            tw.hosts[tw.policy_host]["ip"], P), "-servername",
         tw.policy_host, "-tls1_2"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
    res.check("lab: TLS 1.0 only host refuses 1.2", p.returncode != 0,
              p.stdout[-200:])
    # Plain HTTP on the https port: a TLS client fails at once.
    tpl = sc["tlsplain"]
    t = time.monotonic()
    p = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (
            tpl.hosts[tpl.policy_host]["ip"], P), "-servername",
         tpl.policy_host], stdin=subprocess.DEVNULL, capture_output=True,
        timeout=15)
    res.check("lab: plain HTTP host fails TLS fast", p.returncode != 0 and
              time.monotonic() - t < 3, (p.returncode, p.stderr[-200:]))
    # Every TLS listener serves the leaf the scenario says it does.
    wrong = []
    for lst in zone.listeners:
        if "tls" not in lst or not lst.get("smtp", {}).get("starttls", 1):
            continue
        ctx = client_ctx(ca, weak=True)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            if lst["kind"] == "https":
                with socket.create_connection((lst["ip"], P), 5) as raw, \
                        ctx.wrap_socket(raw, server_hostname=lst["name"]) \
                        as s:
                    der = s.getpeercert(binary_form=True)
            else:
                with smtplib.SMTP(lst["ip"], Q, timeout=5) as s:
                    s.ehlo("lab-check.test")
                    s.starttls(context=ctx)
                    der = s.sock.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError, smtplib.SMTPException) as e:
            wrong.append("%s: %s" % (lst["name"], e))
            continue
        want = certs.der_sha256(lst["tls"]["chain"])
        if hashlib.sha256(der).hexdigest() != want:
            wrong.append("%s: other cert" % lst["name"])
    res.check("lab: every TLS host serves its own leaf", not wrong, wrong)
    # Leaf-only chain.
    ci = sc["chainincomplete"]
    p = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (
            ci.hosts[ci.policy_host]["ip"], P), "-servername",
         ci.policy_host, "-showcerts"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
    res.check("lab: leaf-only chain", p.stdout.count(
        b"-----BEGIN CERTIFICATE-----") == 1, p.stdout[-200:])
    # SMTP with STARTTLS and a verified handshake.
    mx = "mx1.good.test"
    try:
        with smtplib.SMTP(good.hosts[mx]["ip"], Q, timeout=5) as s:
            code, msg = s.ehlo("lab-check.test")
            ok_ext = s.has_extn("starttls") and msg.count(b"\n") >= 5
            s._host = mx  # smtplib verifies against the name it dialled
            s.starttls(context=client_ctx(ca))
            der = s.sock.getpeercert(binary_form=True)
            s.ehlo("lab-check.test")
            res.check("lab: smtp STARTTLS verified", code == 250 and ok_ext
                      and hashlib.sha256(der).hexdigest() ==
                      good.hosts[mx]["leaf"]["sha256"] and
                      not s.has_extn("starttls"), msg)
    except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
        res.fail("lab: smtp STARTTLS verified", e)
    nst = sc["mxnostarttls"]
    try:
        with smtplib.SMTP(nst.hosts["mx1.mxnostarttls.test"]["ip"], Q,
                          timeout=5) as s:
            s.ehlo("lab-check.test")
            res.check("lab: smtp without STARTTLS",
                      not s.has_extn("starttls"), s.esmtp_features)
    except (OSError, smtplib.SMTPException) as e:
        res.fail("lab: smtp without STARTTLS", e)
    # Nothing listens on the dead addresses.
    fr = sc["fetchrefused"]
    try:
        socket.create_connection((fr.hosts[fr.policy_host]["ip"], P),
                                 timeout=2).close()
        res.fail("lab: dead address refuses", "it accepted")
    except ConnectionRefusedError:
        res.ok("lab: dead address refuses")
    except OSError as e:
        res.fail("lab: dead address refuses", e)
    # The tarpit accepts and stays silent.
    tp = sc["tarpit"]
    try:
        with socket.create_connection((tp.hosts[tp.policy_host]["ip"], P),
                                      timeout=2) as s:
            s.sendall(b"\x16\x03\x01\x00\x05hello")
            s.settimeout(0.5)
            try:
                got = s.recv(10)
                res.fail("lab: tarpit silent", "answered %r" % got)
            except socket.timeout:
                res.ok("lab: tarpit silent")
    except OSError as e:
        res.fail("lab: tarpit silent", e)
    # AIA and OCSP.
    try:
        c = http.client.HTTPConnection("127.0.0.1", R, timeout=5)
        c.request("GET", "/intermediate.der")
        body = c.getresponse().read()
        res.check("lab: AIA caIssuers", hashlib.sha256(body).hexdigest() ==
                  certs.der_sha256(ca.path("inter.pem")))
    except OSError as e:
        res.fail("lab: AIA caIssuers", e)
    for short, want in (("certrevoked", b": revoked"), ("good", b": good")):
        s = sc[short]
        leaf = s.hosts[s.policy_host]["leaf"]
        p = subprocess.run(
            ["openssl", "ocsp", "-issuer", ca.path("inter.pem"), "-cert",
             leaf["cert"], "-url", "http://127.0.0.1:%d/ocsp" % R,
             "-CAfile", ca.path("root.pem"), "-verify_other",
             ca.path("inter.pem"), "-timeout", "10"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        res.check("lab: OCSP says %s" % want.decode()[2:], want in p.stdout
                  and b"Response verify OK" in p.stderr + p.stdout,
                  p.stdout + p.stderr)


# --- running the agent ------------------------------------------------------------

class AgentRun:
    def __init__(self, rc, stdout, stderr, elapsed):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self.lines = []
        self.bad_lines = []
        for line in stdout.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                self.lines.append(obj)
            except ValueError:
                self.bad_lines.append(line)
        self.by_domain = {}
        for obj in self.lines:
            self.by_domain.setdefault(obj.get("domain"), []).append(obj)


# Agent runs whose stderr carries a sanitizer report (make asan): such a
# run may still exit 1, which alone looks like "error findings".
SANITIZER_REPORTS = []
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def run_agent(agent, args, work, tag, stdin=None, timeout=60):
    t = time.monotonic()
    try:
        p = subprocess.run([agent] + args, input=(stdin or "").encode(),
                           capture_output=True, timeout=timeout, cwd=work)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", e.stdout or b"", e.stderr or b""
    elapsed = time.monotonic() - t
    with open(os.path.join(work, "agent-%s.out" % tag), "wb") as f:
        f.write(out)
    with open(os.path.join(work, "agent-%s.err" % tag), "wb") as f:
        f.write(err)
    text = err.decode(errors="replace")
    if any(m in text for m in SANITIZER_MARKS):
        SANITIZER_REPORTS.append("%s: %s" % (tag, text[-800:]))
    return AgentRun(rc, out.decode(errors="replace"),
                    err.decode(errors="replace"), elapsed)


def common_args(ca, ports, dns_port, timeout=10):
    return ["probe", "--json", "--resolver", "127.0.0.1:%d" % dns_port,
            "--ca-file", ca.path("root.pem"), "--vantage", VANTAGE,
            "--https-port", str(ports["https"]), "--smtp-port",
            str(ports["smtp"]), "--concurrency", "32", "--timeout",
            str(timeout)]


REQUIRED = {
    "domain": str, "vantage": str, "started_at": str, "duration_ms": int,
    "completed": bool, "resolver": str, "sts_txt": dict, "policy": dict,
    "policy_host": dict, "mx": list, "tlsrpt": dict, "findings": list,
}
CHAIN_KEYS = ["sha256", "subject", "issuer", "serial", "not_before",
              "not_after", "san", "key_type", "key_bits", "sig_alg"]
SEVERITIES = {"info", "warning", "error"}


def fcodes(obj):
    return [(f.get("code"), f.get("subject"), f.get("severity"))
            for f in obj.get("findings") or []]


def show_findings(obj):
    return ", ".join("%s(%s,%s)" % f for f in fcodes(obj)) or "none"


def check_shape(res, run, name):
    """Every line has the documented top-level fields and finding fields."""
    probs = []
    for obj in run.lines:
        d = obj.get("domain")
        for k, typ in REQUIRED.items():
            if k not in obj:
                probs.append("%s: no %s" % (d, k))
            elif obj[k] is not None and not isinstance(obj[k], typ):
                probs.append("%s: %s is %s" % (d, k, type(obj[k]).__name__))
        for f in obj.get("findings") or []:
            for k in ("code", "severity", "subject", "detail", "rfc8460"):
                if k not in f:
                    probs.append("%s: finding without %s" % (d, k))
            if f.get("severity") not in SEVERITIES:
                probs.append("%s: severity %r" % (d, f.get("severity")))
        if obj.get("vantage") != VANTAGE:
            probs.append("%s: vantage %r" % (d, obj.get("vantage")))
    res.check(name, not probs, "; ".join(probs[:8]))


def check_expectations(res, run, scs):
    """Per domain: expected codes with subject/severity, nothing else bad."""
    for sc in scs:
        objs = run.by_domain.get(sc.domain, [])
        if len(objs) != 1:
            res.fail("%s: one JSON line" % sc.short, "got %d" % len(objs))
            continue
        obj = objs[0]
        got = fcodes(obj)
        if sc.clean:
            res.check("%s: no findings" % sc.short, not got,
                      show_findings(obj))
            continue
        for code, subjects, sev in sc.expect:
            same = [f for f in got if f[0] == code]
            hit = [f for f in same if f[1] in subjects and
                   (sev is None or f[2] == sev)]
            why = "missing; got %s" % show_findings(obj)
            if same and not hit:
                why = "wrong subject/severity: %s (want subject in %s%s)" % (
                    same, sorted(subjects),
                    ", severity %s" % sev if sev else "")
            res.check("%s: %s" % (sc.short, code), hit, why)
        wanted = {c for c, _, _ in sc.expect} | sc.allow
        extra = [f for f in got if f[2] == "error" and f[0] not in wanted]
        res.check("%s: no unexpected errors" % sc.short, not extra,
                  "; ".join("%s(%s): %s" % (f.get("code"), f.get("subject"),
                                            f.get("detail"))
                            for f in obj["findings"]
                            if f.get("severity") == "error" and
                            f.get("code") not in wanted))


def chain_sha(chain, i):
    try:
        return chain[i]["sha256"].lower()
    except (IndexError, KeyError, TypeError, AttributeError):
        return None


def check_good_fields(res, run, zone, ports, dns_port):
    sc = by_short(zone)["good"]
    objs = run.by_domain.get(sc.domain)
    if not objs:
        res.fail("good: JSON fields", "no line for good.test")
        return
    o = objs[0]
    probs = []

    def want(cond, what):
        if not cond:
            probs.append(what)

    want(o.get("completed") is True, "completed=%r" % o.get("completed"))
    want(isinstance(o.get("duration_ms"), int) and o["duration_ms"] >= 0,
         "duration_ms")
    want(str(dns_port) in str(o.get("resolver")), "resolver=%r" %
         o.get("resolver"))
    t = o.get("sts_txt") or {}
    want(t.get("id") == scenarios.STS_ID, "sts_txt.id=%r" % t.get("id"))
    want(t.get("valid") is True, "sts_txt.valid")
    want(t.get("records") == ["v=STSv1; id=%s;" % scenarios.STS_ID],
         "sts_txt.records=%r (two strings must join)" % t.get("records"))
    p = o.get("policy") or {}
    want(p.get("mode") == "enforce", "policy.mode=%r" % p.get("mode"))
    want(p.get("http_status") == 200, "policy.http_status")
    want(str(p.get("content_type", "")).startswith("text/plain"),
         "policy.content_type=%r" % p.get("content_type"))
    want(p.get("mx") == ["mx1.good.test", "*.mx.good.test"],
         "policy.mx=%r" % p.get("mx"))
    want(p.get("max_age") == 1209600, "policy.max_age=%r" % p.get("max_age"))
    want(p.get("raw") == sc.facts["policy"], "policy.raw")
    want(str(p.get("sha256", "")).lower() == sc.facts["policy_sha256"],
         "policy.sha256=%r" % p.get("sha256"))
    want(p.get("url") in (
        "https://mta-sts.good.test/.well-known/mta-sts.txt",
        "https://mta-sts.good.test:%d/.well-known/mta-sts.txt" %
        ports["https"]), "policy.url=%r" % p.get("url"))
    ph = o.get("policy_host") or {}
    host = sc.policy_host
    leaf = sc.hosts[host]["leaf"]
    want(ph.get("host") == host, "policy_host.host=%r" % ph.get("host"))
    want(ph.get("ip") == sc.hosts[host]["ip"], "policy_host.ip=%r" %
         ph.get("ip"))
    want(sc.hosts[host]["ip"] in (ph.get("addresses") or []),
         "policy_host.addresses=%r" % ph.get("addresses"))
    want(ph.get("verified") is True, "policy_host.verified")
    want(ph.get("tls_version") == "TLSv1.3", "policy_host.tls_version=%r" %
         ph.get("tls_version"))
    want(bool(ph.get("cipher")), "policy_host.cipher")
    want(isinstance(ph.get("handshake_ms"), int), "policy_host.handshake_ms")
    ch = ph.get("chain") or []
    want(chain_sha(ch, 0) == leaf["sha256"],
         "policy_host.chain[0].sha256=%r want %s" % (chain_sha(ch, 0),
                                                     leaf["sha256"]))
    want(chain_sha(ch, 1) == leaf["inter_sha256"],
         "policy_host.chain[1].sha256 (intermediate)")
    if ch:
        c0 = ch[0]
        missing = [k for k in CHAIN_KEYS if k not in c0]
        want(not missing, "chain[0] lacks %s" % missing)
        want(host in (c0.get("san") or []), "chain[0].san=%r" % c0.get("san"))
        want(c0.get("key_type") == "EC" and c0.get("key_bits") == 256,
             "chain[0].key=%r/%r" % (c0.get("key_type"), c0.get("key_bits")))
        want("sha256" in str(c0.get("sig_alg")).lower(),
             "chain[0].sig_alg=%r" % c0.get("sig_alg"))
        want(str(c0.get("serial", "")).upper().lstrip("0") ==
             leaf["serial"].lstrip("0"), "chain[0].serial=%r want %s" %
             (c0.get("serial"), leaf["serial"]))
    mxs = sorted(o.get("mx") or [], key=lambda m: m.get("preference") or 0)
    want([(m.get("host"), m.get("preference")) for m in mxs] ==
         [("mx1.good.test", 10), ("a.mx.good.test", 20)],
         "mx=%r" % [(m.get("host"), m.get("preference")) for m in mxs])
    for m in mxs:
        h = m.get("host")
        if h not in sc.hosts:
            continue
        for k in ("starttls", "verified", "policy_match"):
            want(m.get(k) is True, "mx[%s].%s=%r" % (h, k, m.get(k)))
        want(m.get("ip") == sc.hosts[h]["ip"], "mx[%s].ip=%r" % (h,
                                                                  m.get("ip")))
        want(m.get("tls_version") == "TLSv1.3", "mx[%s].tls_version" % h)
        want(chain_sha(m.get("chain") or [], 0) == sc.hosts[h]["leaf"][
            "sha256"], "mx[%s].chain[0].sha256" % h)
    r = o.get("tlsrpt") or {}
    want(r.get("valid") is True, "tlsrpt.valid")
    want(r.get("rua") == ["mailto:tlsrpt@good.test"], "tlsrpt.rua=%r" %
         r.get("rua"))
    res.check("good: JSON fields", not probs, "; ".join(probs))


def check_other_fields(res, run, zone):
    sc = by_short(zone)

    def obj(short):
        objs = run.by_domain.get(sc[short].domain) or [{}]
        return objs[0]

    o = obj("v6")
    ph = o.get("policy_host") or {}
    res.check("v6: policy_host.ip is ::1", ph.get("ip") == "::1",
              "ip=%r" % ph.get("ip"))
    o = obj("weakkey")
    c0 = ((o.get("policy_host") or {}).get("chain") or [{}])[0]
    res.check("weakkey: chain[0] RSA 1024", c0.get("key_type") == "RSA" and
              c0.get("key_bits") == 1024, (c0.get("key_type"),
                                           c0.get("key_bits")))
    o = obj("weaksig")
    c0 = ((o.get("policy_host") or {}).get("chain") or [{}])[0]
    res.check("weaksig: chain[0] sig_alg SHA-1",
              "sha1" in str(c0.get("sig_alg")).lower(), c0.get("sig_alg"))
    o = obj("chainincomplete")
    ch = (o.get("policy_host") or {}).get("chain") or []
    leaf = sc["chainincomplete"].hosts["mta-sts.chainincomplete.test"]["leaf"]
    res.check("chainincomplete: chain as sent (leaf only)",
              len(ch) == 1 and chain_sha(ch, 0) == leaf["sha256"],
              "%d certs" % len(ch))
    o = obj("tlsweak")
    res.check("tlsweak: tls_version TLSv1",
              (o.get("policy_host") or {}).get("tls_version") == "TLSv1",
              (o.get("policy_host") or {}).get("tls_version"))
    o = obj("mxnostarttls")
    m = (o.get("mx") or [{}])[0]
    res.check("mxnostarttls: mx[0].starttls false", m.get("starttls") is
              False, m.get("starttls"))
    o = obj("mxnotinpolicy")
    pm = {m.get("host"): m.get("policy_match") for m in o.get("mx") or []}
    res.check("mxnotinpolicy: policy_match per MX", pm == {
        "mx1.mxnotinpolicy.test": True, "mx2.mxnotinpolicy.test": False}, pm)
    o = obj("mxcertexpired")
    c0 = (((o.get("mx") or [{}])[0]).get("chain") or [{}])
    leaf = sc["mxcertexpired"].hosts["mx1.mxcertexpired.test"]["leaf"]
    res.check("mxcertexpired: mx chain[0].sha256", chain_sha(c0, 0) ==
              leaf["sha256"], chain_sha(c0, 0))
    o = obj("txtinvalid")
    res.check("txtinvalid: sts_txt.valid false",
              (o.get("sts_txt") or {}).get("valid") is False,
              o.get("sts_txt"))
    o = obj("testing")
    res.check("testing: policy.mode", (o.get("policy") or {}).get("mode") ==
              "testing", o.get("policy"))

    # RFC 8460 result types for a few findings.
    def rpt(short, code):
        for f in obj(short).get("findings") or []:
            if f.get("code") == code:
                return f.get("rfc8460")
        return "absent"
    for short, code, want in (
            ("mxcertexpired", "CERT_EXPIRED", "certificate-expired"),
            ("certexpired", "CERT_EXPIRED", "sts-webpki-invalid"),
            ("mxnostarttls", "MX_STARTTLS_MISSING", "starttls-not-supported"),
            ("status404", "POLICY_HTTP_STATUS", "sts-policy-fetch-error"),
            ("syntax", "POLICY_SYNTAX", "sts-policy-invalid")):
        got = rpt(short, code)
        res.check("%s: rfc8460 %s" % (short, want), got == want, got)


def check_lab_saw(res, work, zone, ports):
    log = lab_log(work)
    good = by_short(zone)["good"]
    ip = good.hosts[good.policy_host]["ip"]
    tls = [l for l in log if " tls ip=%s port=%d " % (ip, ports["https"])
           in l]
    res.check("lab saw: SNI mta-sts.good.test on policy fetch",
              any("sni=mta-sts.good.test" in l for l in tls),
              tls[:2] or "no TLS connection to the policy host")
    httpl = [l for l in log if " http ip=%s " % ip in l]
    res.check("lab saw: GET with Host mta-sts.good.test",
              any("method=GET path=/.well-known/mta-sts.txt host="
                  "mta-sts.good.test" in l for l in httpl), httpl[:2])
    mxip = good.hosts["mx1.good.test"]["ip"]
    smtp = [l for l in log if " ip=%s port=%d " % (mxip, ports["smtp"]) in l]
    res.check("lab saw: EHLO then STARTTLS to mx1.good.test",
              any("cmd=EHLO" in l for l in smtp) and
              any("cmd=STARTTLS" in l for l in smtp), smtp[:4])
    sni_mx = [l for l in smtp if " tls " in l and "sni=mx1.good.test" in l]
    res.info("MX STARTTLS with SNI mx1.good.test: %s" %
             ("yes" if sni_mx else "no"))
    aia = [l for l in log if "path=/intermediate.der" in l]
    ocsp = [l for l in log if "ocsp-answered" in l]
    res.info("AIA fetches: %d, OCSP answers: %d" % (len(aia), len(ocsp)))
    bad = [l for l in log if "ocsp-fail" in l]
    res.check("lab saw: no OCSP responder failures", not bad, bad[:2])


def agent_checks(res, agent, work, zone, ca, ports, dns_port):
    sc = by_short(zone)
    base = common_args(ca, ports, dns_port)
    main_scs = [s for s in zone.scenarios if s.run == "main"]
    run = run_agent(agent, base + [s.domain for s in main_scs], work, "main",
                    timeout=70)
    res.check("main: exit 1 (errors present)", run.rc == 1,
              "rc=%s stderr=%s" % (run.rc, run.stderr[-400:]))
    res.check("main: every line is JSON", not run.bad_lines and run.lines,
              run.bad_lines[:2] or "no lines")
    want = sorted(s.domain for s in main_scs)
    got = sorted(o.get("domain") for o in run.lines)
    res.check("main: one line per domain", got == want,
              "missing %s extra %s" % (sorted(set(want) - set(got)),
                                       sorted(set(got) - set(want))))
    res.check("main: under 40 s", run.elapsed < 40, "%.1fs" % run.elapsed)
    check_shape(res, run, "main: JSON shape")
    incomplete = [o.get("domain") for o in run.lines
                  if o.get("completed") is not True]
    res.check("main: every probe completed", not incomplete, incomplete)
    check_expectations(res, run, main_scs)
    check_good_fields(res, run, zone, ports, dns_port)
    check_other_fields(res, run, zone)
    check_lab_saw(res, work, zone, ports)

    # The tarpit, with a short timeout of its own.
    tp = sc["tarpit"]
    trun = run_agent(agent, common_args(ca, ports, dns_port, timeout=3) +
                     [tp.domain], work, "tarpit", timeout=30)
    res.check("tarpit: exit 1 within 8 s", trun.rc == 1 and
              trun.elapsed < 8, "rc=%s %.1fs %s" % (
                  trun.rc, trun.elapsed, trun.stderr[-300:]))
    check_expectations(res, trun, [tp])

    # Coverage guard: every code is expected somewhere and was produced.
    expected = {c for s in zone.scenarios for c, _, _ in s.expect}
    res.check("coverage: every code has a scenario",
              set(scenarios.ALL_CODES) <= expected,
              sorted(set(scenarios.ALL_CODES) - expected))
    produced = {f[0] for r in (run, trun) for o in r.lines for f in fcodes(o)}
    res.check("coverage: agent produced every code",
              set(scenarios.ALL_CODES) <= produced,
              "never produced: %s" % sorted(set(scenarios.ALL_CODES) -
                                            produced))

    # Exit codes and inputs.
    g = sc["good"]
    r = run_agent(agent, base + [g.domain], work, "good")
    res.check("good alone: exit 0, zero findings", r.rc == 0 and
              len(r.lines) == 1 and not r.lines[0].get("findings"),
              "rc=%s %s" % (r.rc, show_findings(r.lines[0]) if r.lines
                            else r.stderr[-300:]))
    r = run_agent(agent, base + ["tlsrptmissing.test", "testing.test",
                                 "certexpiring20.test", "maxagelow.test"],
                  work, "warn")
    res.check("warnings/info only: exit 0", r.rc == 0 and len(r.lines) == 4,
              "rc=%s %s" % (r.rc, "; ".join(show_findings(o)
                                            for o in r.lines)))
    r = run_agent(agent, base + ["certexpiring3.test"], work, "escalated")
    res.check("escalated CERT_EXPIRING alone: exit 1", r.rc == 1,
              "rc=%s %s" % (r.rc, "; ".join(show_findings(o)
                                            for o in r.lines)))
    r = run_agent(agent, base + ["--no-such-flag", g.domain], work, "badflag",
                  timeout=20)
    res.check("unknown flag: exit 2", r.rc == 2, "rc=%s" % r.rc)
    r = run_agent(agent, base, work, "nodomain", timeout=20)
    res.check("no domain: exit 2", r.rc == 2, "rc=%s" % r.rc)
    r = run_agent(agent, ["probe", "--timeout", "zero", g.domain], work,
                  "badtimeout", timeout=20)
    res.check("bad --timeout value: exit 2", r.rc == 2, "rc=%s" % r.rc)
    lst = os.path.join(work, "domains.txt")
    with open(lst, "w") as f:
        f.write("good.test\nv6.test\n")
    r = run_agent(agent, base + ["-f", lst], work, "file")
    res.check("-f FILE: exit 0, both domains", r.rc == 0 and sorted(
        o.get("domain") for o in r.lines) == ["good.test", "v6.test"],
        "rc=%s %s" % (r.rc, [o.get("domain") for o in r.lines]))
    r = run_agent(agent, base + ["-f", "-"], work, "stdin",
                  stdin="good.test\n")
    res.check("-f -: exit 0, one domain", r.rc == 0 and [
        o.get("domain") for o in r.lines] == ["good.test"],
        "rc=%s %s" % (r.rc, [o.get("domain") for o in r.lines]))
    r = run_agent(agent, [a for a in base if a != "--json"] + [g.domain],
                  work, "text")
    res.check("text output: exit 0, non-empty, not JSON", r.rc == 0 and
              r.stdout.strip() and not r.stdout.lstrip().startswith("{"),
              "rc=%s out=%r" % (r.rc, r.stdout[:200]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lab-only", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    res = Results(args.verbose)
    # SIGTERM unwinds through the finally below, which kills the lab.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    agent = os.environ.get("AGENT", "bin/mtasts-agent")
    if not os.path.isabs(agent):
        agent = os.path.join(ROOT, agent) if not os.path.exists(agent) \
            else os.path.abspath(agent)
    work = tempfile.mkdtemp(prefix="mtasts-it-")
    procs = harness.Procs(work)
    t0 = time.monotonic()
    try:
        ports = choose_ports()
        ca = certs.TestCA(os.path.join(work, "ca"),
                          "http://127.0.0.1:%d" % ports["aux"])
        zone = scenarios.build(ca, ports)
        _, dns_port = harness.start_unbound(
            procs, work, scenarios.ZONE, zone.records, zone.stubs,
            "ready.test")
        start_lab(procs, work, zone)
        res.info("lab up in %.1fs: dns=127.0.0.1:%d https=%d smtp=%d aux=%d "
                 "domains=%d" % (time.monotonic() - t0, dns_port,
                                 ports["https"], ports["smtp"], ports["aux"],
                                 len(zone.scenarios)))
        lab_checks(res, zone, ca, ports, dns_port)
        if not args.lab_only:
            if not (os.path.isfile(agent) and os.access(agent, os.X_OK)):
                res.fail("agent present", "%s is not an executable" % agent)
            else:
                agent_checks(res, agent, work, zone, ca, ports, dns_port)
                res.check("agent: no sanitizer report on stderr",
                          not SANITIZER_REPORTS, " || ".join(
                              SANITIZER_REPORTS))
    except Exception as e:  # a harness failure is a failed check, not a crash
        import traceback
        traceback.print_exc()
        res.fail("harness", "%s: %s" % (type(e).__name__, e))
    finally:
        procs.close()
        if args.keep:
            res.info("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    res.info("took %.1fs" % (time.monotonic() - t0))
    print("integration: %d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed or not res.passed else 0


if __name__ == "__main__":
    sys.exit(main())
