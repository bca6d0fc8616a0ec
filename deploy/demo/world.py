#!/usr/bin/env python3
"""world.py -- the quickstart's demo world: six mail domains on 127.0.0.0/8.

Runs in the foreground until SIGTERM or SIGINT:

  python3 deploy/demo/world.py --dir DIR --interval SECS

and serves everything a probe of the demo domains touches: two DNS
resolvers (real unbound processes, started as children), the HTTPS policy
hosts, the SMTP servers with STARTTLS and the AIA/OCSP responder
(tests/lib/lab.py's handlers, in this process), with certificates from two
throw-away CAs made here at start (tests/lib/certs.py and the openssl CLI).

The domains (zone "example", reserved by RFC 2606):

  clean.example        healthy: enforce, one MX, TLS-RPT
  tidy.example         healthy: enforce, two MX matched by a wildcard
  expired.example      the policy host's certificate expired two days ago
  nochain.example      the policy host sends its leaf without the
                       intermediate (a sender without AIA fetching fails)
  silentchange.example policy mode "testing" for the first rounds, then
                       "enforce" with the same _mta-sts id: senders that
                       cached the testing policy never refetch it
  split.example        the second resolver (the one agent us-east is given)
                       sends its policy host to another server whose
                       certificate comes from another CA, and leaves mx2
                       out of the MX set

Everything is written under DIR: the CAs, DIR/ca-bundle.pem (both roots:
what the agents trust), unbound configs, lab.log (one line per
connection), and, once every server answers, DIR/world.env: shell
assignments (DEMO_RESOLVER, DEMO_RESOLVER_US, DEMO_HTTPS_PORT,
DEMO_SMTP_PORT, DEMO_CA_FILE, DEMO_DOMAINS, DEMO_FLIP_AT, DEMO_FLIP_ROUND,
DEMO_UNBOUND_PIDS) followed by the line "# ready"; then "world ready" is
printed on stdout.  World.env is removed again at exit.

The policy of silentchange.example flips once, at DEMO_FLIP_AT (Unix
time), 30% of an interval before round DEMO_FLIP_ROUND starts: every
vantage probes inside the first quarter of a round, so every round is
wholly before or wholly after the flip.

Only loopback addresses are bound; the unbound children are SIGTERMed at
exit and also die with this process (PR_SET_PDEATHSIG).
"""

import argparse
import datetime
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

import certs  # noqa: E402
import harness  # noqa: E402
import lab  # noqa: E402

ZONE = "example"
STS_ID = "20260101T000000"
# Rounds served with the first policy of silentchange.example, counted from
# the round in which the world starts (which agents may join halfway).
FLIP_AFTER_ROUNDS = 3
POLICY_IP = "127.0.10.%d"
MX1_IP = "127.0.11.%d"
MX2_IP = "127.0.12.%d"
OTHER_IP = "127.0.13.%d"  # split.example's policy host in us-east's view
AUX_IP = "127.0.14.1"

STORY = [
    ("clean.example", "healthy"),
    ("tidy.example", "healthy (two MX, wildcard policy)"),
    ("expired.example", "policy host certificate expired -> CERT_EXPIRED"),
    ("nochain.example", "policy host omits the intermediate -> "
     "CERT_CHAIN_INCOMPLETE"),
    ("silentchange.example", "policy body changes, _mta-sts id does not -> "
     "POLICY_CHANGED_WITHOUT_ID"),
    ("split.example", "us-east's resolver: other policy host, other CA, "
     "other MX set -> VANTAGE_CHAIN_MISMATCH, VANTAGE_DNS_MISMATCH"),
]


def policy(domain, mode="enforce", mx=None, max_age=604800):
    mx = mx if mx is not None else ["mx1." + domain]
    return "".join(["version: STSv1\n", "mode: %s\n" % mode] +
                   ["mx: %s\n" % m for m in mx] +
                   ["max_age: %d\n" % max_age])


def openssl(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True,
                       timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (
            " ".join(args), p.stderr.decode(errors="replace").strip()))


_OTHER_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ v3_root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_leaf ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:%s
"""


def other_ca_leaf(directory, host):
    """A second, unrelated CA (root signs the leaf) and one leaf for host.

    Returns a lab-style leaf dict (chain, key, cert) and the root's path.
    """
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "ca.cnf"), "w") as f:
        f.write(_OTHER_CNF % host)
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl(["genpkey"] + ec + ["-out", "root.key"], directory)
    openssl(["req", "-config", "ca.cnf", "-new", "-x509", "-key", "root.key",
             "-subj", "/CN=Demo Other Root CA", "-days", "3650",
             "-extensions", "v3_root", "-sha256", "-out", "root.pem"],
            directory)
    openssl(["genpkey"] + ec + ["-out", "leaf.key"], directory)
    openssl(["req", "-config", "ca.cnf", "-new", "-key", "leaf.key",
             "-subj", "/CN=" + host, "-out", "leaf.csr"], directory)
    openssl(["x509", "-req", "-in", "leaf.csr", "-CA", "root.pem", "-CAkey",
             "root.key", "-set_serial", "4242", "-days", "90", "-sha256",
             "-extfile", "ca.cnf", "-extensions", "v3_leaf", "-out",
             "leaf.pem"], directory)
    leaf = os.path.join(directory, "leaf.pem")
    return ({"cert": leaf, "chain": leaf,
             "key": os.path.join(directory, "leaf.key")},
            os.path.join(directory, "root.pem"))


class World:
    def __init__(self, directory, interval):
        self.dir = directory
        self.interval = interval
        self.records = []       # what both resolvers answer
        self.records_us = []    # replaces records for us-east's resolver
        self.us_override = set()  # (name, type) replaced for us-east
        self.listeners = []
        self.flip = None        # (listener, new body)
        self.ports = {}

    def rr(self, name, rtype, rdata, us_only=False):
        (self.records_us if us_only else self.records).append(
            (name, rtype, rdata))
        if us_only:
            self.us_override.add((name, rtype))

    def https(self, name, ip, leaf, body):
        self.listeners.append({
            "ip": ip, "port": self.ports["https"], "kind": "https",
            "name": name,
            "tls": {"chain": leaf["chain"], "key": leaf["key"],
                    "min": "TLSv1_2"},
            "http": {"status": 200,
                     "headers": [["Content-Type", "text/plain"]],
                     "body": body}})
        return self.listeners[-1]

    def smtp(self, name, ip, leaf):
        self.listeners.append({
            "ip": ip, "port": self.ports["smtp"], "kind": "smtp",
            "name": name,
            "smtp": {"ehlo": ["PIPELINING", "SIZE 52428800", "STARTTLS",
                              "ENHANCEDSTATUSCODES", "8BITMIME"],
                     "starttls": True},
            "tls": {"chain": leaf["chain"], "key": leaf["key"],
                    "min": "TLSv1_2"}})

    def domain(self, i, d, ca, body=None, mx=("mx1",), ph_leaf=None):
        """DNS and servers of one domain at index i (1..)."""
        self.rr("_mta-sts." + d, "TXT", '"v=STSv1; id=%s;"' % STS_ID)
        self.rr("_smtp._tls." + d, "TXT",
                '"v=TLSRPTv1; rua=mailto:tlsrpt@%s"' % d)
        host = "mta-sts." + d
        self.rr(host, "A", POLICY_IP % i)
        lst = self.https(host, POLICY_IP % i, ph_leaf or ca.leaf(host),
                         body or policy(d))
        for k, label in enumerate(mx):
            name = "%s.%s" % (label, d)
            ip = (MX1_IP if k == 0 else MX2_IP) % i
            self.rr(d, "MX", "%d %s." % (10 * (k + 1), name))
            self.rr(name, "A", ip)
            self.smtp(name, ip, ca.leaf(name))
        return lst


def build(w, ca_dir, other_dir):
    """Makes both CAs, the zone and the listeners; returns the CA bundle."""
    now = certs.utcnow()
    ca = certs.TestCA(ca_dir, "http://%s:%d" % (AUX_IP, w.ports["aux"]))
    w.domain(1, "clean.example", ca)
    w.domain(2, "tidy.example", ca, mx=("mx1", "mx2"),
             body=policy("tidy.example", mx=["*.tidy.example"]))
    host = "mta-sts.expired.example"
    w.domain(3, "expired.example", ca, ph_leaf=ca.leaf(
        host, not_before=now - datetime.timedelta(days=92),
        not_after=now - datetime.timedelta(days=2)))
    host = "mta-sts.nochain.example"
    leaf = ca.leaf(host)
    w.domain(4, "nochain.example", ca, ph_leaf=dict(leaf, chain=leaf["cert"]))
    d = "silentchange.example"
    lst = w.domain(5, d, ca, body=policy(d, mode="testing"))
    w.flip = (lst, policy(d, mode="enforce"))
    d = "split.example"
    w.domain(6, d, ca, mx=("mx1", "mx2"),
             body=policy(d, mx=["*.split.example"]))
    # us-east's view: another policy host with another CA's certificate
    # (same policy body), and an MX set without mx2.
    host = "mta-sts." + d
    other_leaf, other_root = other_ca_leaf(other_dir, host)
    w.https(host, OTHER_IP % 6, other_leaf, policy(d, mx=["*.split.example"]))
    w.rr(host, "A", OTHER_IP % 6, us_only=True)
    w.rr(d, "MX", "10 mx1.%s." % d, us_only=True)
    w.listeners.append({
        "ip": AUX_IP, "port": w.ports["aux"], "kind": "aux", "name": "aia",
        "files": {"/intermediate.der": [ca.path("intermediate.der"),
                                        "application/pkix-cert"]},
        "ocsp": {"args": ca.ocsp_args()}})
    w.rr("ready." + ZONE, "A", "127.0.0.1")
    bundle = os.path.join(w.dir, "ca-bundle.pem")
    with open(bundle, "w") as out:
        for pem in (ca.path("root.pem"), other_root):
            with open(pem) as f:
                out.write(f.read())
    return bundle


def us_records(w):
    keep = [r for r in w.records if (r[0], r[1]) not in w.us_override]
    return keep + w.records_us


def choose_ports(w):
    n = len(STORY)
    https_ips = [POLICY_IP % i for i in range(1, n + 1)] + \
        [OTHER_IP % i for i in range(1, n + 1)]
    mx_ips = [MX1_IP % i for i in range(1, n + 1)] + \
        [MX2_IP % i for i in range(1, n + 1)]
    w.ports["https"] = harness.pick_port(https_ips)
    w.ports["smtp"] = harness.pick_port(mx_ips, avoid={w.ports["https"]})
    w.ports["aux"] = harness.pick_port(
        [AUX_IP], avoid={w.ports["https"], w.ports["smtp"]})


def serve(listeners):
    """Binds every listener; returns (selector, sockets)."""
    sel = selectors.DefaultSelector()
    socks = []
    for lst in listeners:
        if "tls" in lst:
            lst["_ctx"] = lab.make_context(lst["tls"])
    for lst in listeners:
        s = lab.bind(lst)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, lst)
    return sel, socks


def flipper(w, flip_at):
    """Replaces silentchange.example's policy body at flip_at."""
    while not lab.STOP.is_set():
        left = flip_at - time.time()
        if left <= 0:
            lst, body = w.flip
            lst["http"]["body"] = body
            lab.log("flip host=%s policy=v2 sts_id=%s (unchanged)",
                    lst["name"], STS_ID)
            return
        lab.STOP.wait(min(left, 1.0))


def write_env(path, items):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for k, v in items:
            f.write("%s='%s'\n" % (k, v))
        f.write("# ready\n")
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser(description="the quickstart demo world")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--interval", type=int, default=10)
    args = ap.parse_args()
    directory = os.path.abspath(args.dir)
    if "'" in directory:
        sys.stderr.write("world: no quotes in --dir, please\n")
        return 2
    os.makedirs(directory, exist_ok=True)
    env_path = os.path.join(directory, "world.env")
    if os.path.exists(env_path):
        os.unlink(env_path)
    for sub in ("ca", "ca-other", "dns-main", "dns-us"):
        path = os.path.join(directory, sub)
        if os.path.isdir(path):
            subprocess.run(["rm", "-rf", path], check=True)
        os.makedirs(path)

    def on_signal(_sig, _frame):
        lab.STOP.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    lab._log_file = open(os.path.join(directory, "lab.log"), "a")

    w = World(directory, args.interval)
    # One Procs per resolver, so that each keeps its own stdout/stderr.
    procs = {v: harness.Procs(os.path.join(directory, "dns-" + v))
             for v in ("main", "us")}
    socks = []
    try:
        choose_ports(w)
        bundle = build(w, os.path.join(directory, "ca"),
                       os.path.join(directory, "ca-other"))
        with open(os.path.join(directory, "lab.json"), "w") as f:
            json.dump({"listeners": w.listeners}, f, indent=1)
        un_main, port_main = harness.start_unbound(
            procs["main"], procs["main"].workdir, ZONE, w.records, {},
            "ready." + ZONE)
        un_us, port_us = harness.start_unbound(
            procs["us"], procs["us"].workdir, ZONE, us_records(w), {},
            "ready." + ZONE)
        sel, socks = serve(w.listeners)
        now = time.time()
        flip_round = int(now // w.interval) + FLIP_AFTER_ROUNDS
        flip_at = flip_round * w.interval - 0.3 * w.interval
        threading.Thread(target=flipper, args=(w, flip_at),
                         daemon=True).start()
        write_env(env_path, [
            ("DEMO_RESOLVER", "127.0.0.1:%d" % port_main),
            ("DEMO_RESOLVER_US", "127.0.0.1:%d" % port_us),
            ("DEMO_HTTPS_PORT", w.ports["https"]),
            ("DEMO_SMTP_PORT", w.ports["smtp"]),
            ("DEMO_CA_FILE", bundle),
            ("DEMO_DOMAINS", " ".join(d for d, _ in STORY)),
            ("DEMO_FLIP_AT", int(flip_at)),
            ("DEMO_FLIP_ROUND", flip_round),
            ("DEMO_UNBOUND_PIDS", "%d %d" % (un_main.pid, un_us.pid)),
        ])
        lab.log("ready listeners=%d resolver=%d resolver_us=%d", len(socks),
                port_main, port_us)
        print("world ready", flush=True)
        while not lab.STOP.is_set():
            for key, _ in sel.select(timeout=0.2):
                try:
                    conn, peer = key.fileobj.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    lab.log("accept-error err=%s", e)
                    continue
                conn.setblocking(True)
                threading.Thread(target=lab.handle,
                                 args=(conn, peer, key.data),
                                 daemon=True).start()
            for p in (un_main, un_us):
                if not p.alive():
                    sys.stderr.write("world: unbound pid %d died: %s\n" %
                                     (p.pid, p.stderr_tail()))
                    return 1
    except Exception as e:  # a failed start must say why, then clean up
        sys.stderr.write("world: %s: %s\n" % (type(e).__name__, e))
        return 1
    finally:
        for s in socks:
            s.close()
        for p in procs.values():
            p.close()
        if os.path.exists(env_path):
            os.unlink(env_path)
        lab.log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
