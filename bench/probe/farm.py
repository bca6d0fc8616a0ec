"""farm.py -- the local probe farm of the agent benchmarks, on 127.77.0.0/24.

  python3 bench/probe/farm.py up DIR [--domains N] [--tarpit N] [--cpu C]
  python3 bench/probe/farm.py down DIR

`up` makes a private CA and certificates, an authoritative zone, and starts
nsd, nginx (HTTP and mail modules) and a tarpit, each pinned with taskset to
CPU C when given; it waits until each answers, writes DIR/farm.json (what
the benchmarks read) and prints it.  Every process is started with its pid
written to DIR, so `down` stops exactly those.  The farm is torn down by
`down` or when `up` fails part-way.

Layout (zone "bench.test", authoritative in nsd):
  dN.bench.test      N = 1..domains: the healthy domains.  _mta-sts TXT,
                     _smtp._tls TXT, MX 10 mxN.mx.bench.test,
                     mta-sts.dN A 127.77.0.2 (ECDSA P-256 policy host).
  *.mx.bench.test    A 127.77.0.4: nginx mail, STARTTLS, one ECDSA P-256
                     wildcard certificate for every MX name (SNI differs).
  rsa.bench.test     A 127.77.0.3: the RSA-2048 policy host.
  tN.bench.test      N = 1..tarpit: policy host and MX on 127.77.0.9, which
                     accepts and never answers.
  127.77.0.5         nginx mail again, SMTP over direct TLS on the SMTP
                     port with the MX certificate: the direct-TLS reference
                     of the STARTTLS figure.
Policy host certificates cover 20 domains each (SAN list), all with one
ECDSA key; every leaf is signed by an ECDSA intermediate under a private
root (DIR/ca/root.pem, for --ca-file).
"""

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time

BASE = "127.77.0."
IP_DNS = BASE + "1"
IP_EC = BASE + "2"
IP_RSA = BASE + "3"
IP_MX = BASE + "4"
IP_MX_TLS = BASE + "5"
IP_TARPIT = BASE + "9"
ZONE = "bench.test"
GROUP = 20
POLICY = ("version: STSv1\\nmode: enforce\\nmx: *.mx.bench.test\\n"
          "max_age: 604800\\n")


def run(args, cwd=None):
    r = subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.decode()))
    return r.stdout


def free_port(ips, udp=False):
    """A port free on every one of ips (so one --https-port fits all)."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    for _ in range(200):
        s = socket.socket(socket.AF_INET, kind)
        s.bind((ips[0], 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for ip in ips[1:] + ([ips[0]] if not udp else []):
            for k in ([kind, socket.SOCK_DGRAM] if udp else [kind]):
                t = socket.socket(socket.AF_INET, k)
                try:
                    t.bind((ip, port))
                except OSError:
                    ok = False
                finally:
                    t.close()
        if udp:
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.bind((ips[0], port))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise RuntimeError("no free port on %s" % ips)


# ---- certificates ----

def make_pki(d, n_domains):
    ca = os.path.join(d, "ca")
    os.makedirs(ca, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]

    def ext(name, text):
        p = os.path.join(ca, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    v3ca = ext("v3ca.cnf", "basicConstraints=critical,CA:TRUE\n"
               "keyUsage=critical,keyCertSign,cRLSign\n"
               "subjectKeyIdentifier=hash\n")
    run(["openssl", "req", "-x509", "-nodes"] + ec +
        ["-keyout", "root.key", "-out", "root.pem", "-days", "3650",
         "-subj", "/CN=Bench Root", "-addext",
         "basicConstraints=critical,CA:TRUE", "-addext",
         "keyUsage=critical,keyCertSign,cRLSign"], cwd=ca)
    run(["openssl", "req", "-new", "-nodes"] + ec +
        ["-keyout", "int.key", "-out", "int.csr", "-subj",
         "/CN=Bench Intermediate"], cwd=ca)
    run(["openssl", "x509", "-req", "-in", "int.csr", "-CA", "root.pem",
         "-CAkey", "root.key", "-CAcreateserial", "-days", "3650",
         "-extfile", v3ca, "-out", "int.pem"], cwd=ca)
    # One key per kind; leaves differ by their names only.
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-out", "ec.key"], cwd=ca)
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
         "rsa_keygen_bits:2048", "-out", "rsa.key"], cwd=ca)
    for k in ("ec", "rsa"):
        run(["openssl", "req", "-new", "-key", k + ".key", "-out",
             k + ".csr", "-subj", "/CN=bench"], cwd=ca)

    def leaf(name, key, sans):
        e = ext(name + ".cnf", "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=" + ",".join("DNS:" + s for s in sans) + "\n")
        run(["openssl", "x509", "-req", "-in", key + ".csr", "-CA",
             "int.pem", "-CAkey", "int.key", "-CAcreateserial", "-days",
             "365", "-extfile", e, "-out", name + ".crt"], cwd=ca)
        with open(os.path.join(ca, name + ".pem"), "w") as out:
            for p in (name + ".crt", "int.pem"):
                with open(os.path.join(ca, p)) as f:
                    out.write(f.read())
        os.unlink(e)
        return os.path.join(ca, name + ".pem")

    groups = []
    for g in range(0, max(n_domains, 1), GROUP):
        names = ["mta-sts.d%d.%s" % (i, ZONE)
                 for i in range(g + 1, min(g + GROUP, max(n_domains, 1)) + 1)]
        groups.append((names, leaf("policy%d" % (g // GROUP), "ec", names)))
    mx = leaf("mx", "ec", ["*.mx." + ZONE, "mx." + ZONE])
    rsa = leaf("rsa", "rsa", ["rsa." + ZONE, "mta-sts.rsa." + ZONE])
    return {"root": os.path.join(ca, "root.pem"), "groups": groups,
            "mx": mx, "rsa": rsa, "ec_key": os.path.join(ca, "ec.key"),
            "rsa_key": os.path.join(ca, "rsa.key")}


# ---- zone ----

def write_zone(d, n_domains, n_tarpit):
    p = os.path.join(d, ZONE + ".zone")
    with open(p, "w") as f:
        f.write("$ORIGIN %s.\n$TTL 3600\n" % ZONE)
        f.write("@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60\n"
                % (ZONE, ZONE))
        f.write("@ IN NS ns\nns IN A %s\n" % IP_DNS)
        f.write("*.mx IN A %s\nmx IN A %s\n" % (IP_MX, IP_MX))
        f.write("rsa IN A %s\nmta-sts.rsa IN A %s\n" % (IP_RSA, IP_RSA))
        f.write("tarpit-mx IN A %s\n" % IP_TARPIT)
        for i in range(1, n_domains + 1):
            f.write('_mta-sts.d%d IN TXT "v=STSv1; id=20240101T%06d;"\n'
                    '_smtp._tls.d%d IN TXT "v=TLSRPTv1; '
                    'rua=mailto:tlsrpt@bench.test"\n'
                    "d%d IN MX 10 mx%d.mx\n"
                    "mta-sts.d%d IN A %s\n" % (i, i, i, i, i, i, IP_EC))
        for i in range(1, n_tarpit + 1):
            f.write('_mta-sts.t%d IN TXT "v=STSv1; id=1;"\n'
                    "t%d IN MX 10 tarpit-mx\n"
                    "mta-sts.t%d IN A %s\n" % (i, i, i, IP_TARPIT))
    return p


def write_queries(d, n_domains):
    """dnsperf's input: the names a probe asks, each once."""
    p = os.path.join(d, "queries.txt")
    with open(p, "w") as f:
        for i in range(1, n_domains + 1):
            f.write("_mta-sts.d%d.%s TXT\n" % (i, ZONE))
            f.write("d%d.%s MX\n" % (i, ZONE))
            f.write("_smtp._tls.d%d.%s TXT\n" % (i, ZONE))
            f.write("mta-sts.d%d.%s A\n" % (i, ZONE))
            f.write("mta-sts.d%d.%s AAAA\n" % (i, ZONE))
            f.write("mx%d.mx.%s A\n" % (i, ZONE))
            f.write("mx%d.mx.%s AAAA\n" % (i, ZONE))
    return p


# ---- servers ----

def nsd_conf(d, port):
    p = os.path.join(d, "nsd.conf")
    with open(p, "w") as f:
        f.write("""server:
    ip-address: %s@%d
    port: %d
    username: ""
    chroot: ""
    zonesdir: "%s"
    pidfile: "%s/nsd.pid"
    database: ""
    zonelistfile: "%s/zone.list"
    xfrdfile: "%s/xfrd.state"
    xfrdir: "%s"
    logfile: "%s/nsd.log"
    server-count: 1
    verbosity: 0
    hide-version: yes
    refuse-any: yes
    tcp-count: 1000
    # Response rate limiting would throttle us: every query comes from
    # one /24 (loopback).
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: "%s"
    zonefile: "%s.zone"
""" % (IP_DNS, port, port, d, d, d, d, d, d, ZONE, ZONE))
    return p


def nginx_conf(d, pki, https_port, smtp_port):
    p = os.path.join(d, "nginx.conf")
    servers = []
    loc = ('location = /.well-known/mta-sts.txt { default_type text/plain; '
           'return 200 "%s"; }\n        location / { return 404; }' % POLICY)
    for i, (names, pem) in enumerate(pki["groups"]):
        servers.append("""    server {
        listen %s:%d ssl%s;
        server_name %s;
        ssl_certificate %s;
        ssl_certificate_key %s;
        %s
    }""" % (IP_EC, https_port, " default_server" if i == 0 else "",
            " ".join(names), pem, pki["ec_key"], loc))
    servers.append("""    server {
        listen %s:%d ssl default_server;
        server_name rsa.%s mta-sts.rsa.%s;
        ssl_certificate %s;
        ssl_certificate_key %s;
        %s
    }""" % (IP_RSA, https_port, ZONE, ZONE, pki["rsa"], pki["rsa_key"], loc))
    with open(p, "w") as f:
        f.write("""user root;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid %(d)s/nginx.pid;
error_log %(d)s/nginx-error.log error;
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
events { worker_connections 19000; multi_accept on; }
http {
    access_log off;
    client_body_temp_path %(d)s/tmp-body;
    proxy_temp_path %(d)s/tmp-proxy;
    fastcgi_temp_path %(d)s/tmp-fcgi;
    uwsgi_temp_path %(d)s/tmp-uwsgi;
    scgi_temp_path %(d)s/tmp-scgi;
    server_names_hash_max_size 262144;
    server_names_hash_bucket_size 128;
    keepalive_timeout 0;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
%(servers)s
}
mail {
    server_name mx.%(zone)s;
    auth_http 127.0.0.1:9/unused;
    smtp_auth none;
    smtp_capabilities PIPELINING 8BITMIME "SIZE 10240000";
    resolver off;
    ssl_certificate %(mx)s;
    ssl_certificate_key %(eckey)s;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server { listen %(ipmx)s:%(smtp)d; protocol smtp; starttls on; }
    server { listen %(ipmxtls)s:%(smtp)d ssl; protocol smtp; }
}
""" % {"d": d, "servers": "\n".join(servers), "zone": ZONE, "mx": pki["mx"],
            "eckey": pki["ec_key"], "ipmx": IP_MX, "ipmxtls": IP_MX_TLS,
            "smtp": smtp_port})
    return p


def tarpit_main(port_a, port_b, pidfile):
    """Accepts on IP_TARPIT at both ports, reads and discards, never
    answers; holds at most 60,000 connections and each for at most 600 s."""
    sel = selectors.DefaultSelector()
    for port in (port_a, port_b):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((IP_TARPIT, port))
        s.listen(4096)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "listen")
    held = {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    with open(pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(pidfile + ".tmp", pidfile)
    while not stop:
        for key, _ in sel.select(timeout=1.0):
            if key.data == "listen":
                for _ in range(256):
                    try:
                        c, _ = key.fileobj.accept()
                    except (BlockingIOError, OSError):
                        break
                    if len(held) >= 60000:
                        c.close()
                        continue
                    c.setblocking(False)
                    held[c] = time.monotonic()
                    sel.register(c, selectors.EVENT_READ, "conn")
            else:
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(c)
                    held.pop(c, None)
                    c.close()
        now = time.monotonic()
        for c in [c for c, t in held.items() if now - t > 600]:
            sel.unregister(c)
            held.pop(c, None)
            c.close()
    return 0


def pinned(cpu, argv):
    if cpu is not None and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)] + argv
    return argv


def start(d, name, argv):
    out = open(os.path.join(d, name + ".out"), "w")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True)
    with open(os.path.join(d, name + ".pid"), "w") as f:
        f.write("%d\n" % p.pid)
    return p


def wait_for(cond, timeout, what, procs):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for name, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError("%s exited %s while waiting for %s"
                                   % (name, p.returncode, what))
        if cond():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for %s" % what)


def dns_answers(port, name):
    q = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" +
         b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) +
         b"\x00\x00\x01\x00\x01")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        s.sendto(q, (IP_DNS, port))
        r = s.recv(4096)
        return len(r) > 12 and r[:2] == b"\x12\x34" and r[7] > 0
    except OSError:
        return False
    finally:
        s.close()


def connects(ip, port, expect=None):
    try:
        with socket.create_connection((ip, port), timeout=0.5) as s:
            if expect is None:
                return True
            s.settimeout(2)
            return s.recv(100).startswith(expect)
    except OSError:
        return False


def up(d, n_domains, n_tarpit, cpu):
    d = os.path.abspath(d)
    os.makedirs(d, exist_ok=True)
    for exe in ("nginx", "nsd", "openssl"):
        if shutil.which(exe) is None and not os.path.exists(
                "/usr/sbin/" + exe):
            raise RuntimeError("%s not installed (bench/probe/README.md)"
                               % exe)
    t0 = time.monotonic()
    pki = make_pki(d, n_domains)
    write_zone(d, n_domains, n_tarpit)
    queries = write_queries(d, n_domains)
    t_gen = time.monotonic() - t0
    dns_port = free_port([IP_DNS], udp=True)
    https_port = free_port([IP_EC, IP_RSA, IP_TARPIT])
    smtp_port = free_port([IP_MX, IP_MX_TLS, IP_TARPIT])
    nsd = shutil.which("nsd") or "/usr/sbin/nsd"
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    procs = {}
    procs["nsd"] = start(d, "nsd", pinned(cpu, [nsd, "-d", "-c",
                                               nsd_conf(d, dns_port)]))
    conf = nginx_conf(d, pki, https_port, smtp_port)
    procs["nginx"] = start(d, "nginx", pinned(cpu, [nginx, "-c", conf,
                                                   "-p", d + "/"]))
    procs["tarpit"] = start(d, "tarpit", pinned(cpu, [
        sys.executable, os.path.abspath(__file__), "tarpit",
        str(https_port), str(smtp_port), os.path.join(d, "tarpit.ready")]))
    wait_for(lambda: dns_answers(dns_port, "d1.mx." + ZONE), 30, "nsd",
             procs)
    wait_for(lambda: connects(IP_EC, https_port), 30, "nginx https", procs)
    wait_for(lambda: connects(IP_MX, smtp_port, b"220"), 30, "nginx smtp",
             procs)
    wait_for(lambda: os.path.exists(os.path.join(d, "tarpit.ready")), 30,
             "tarpit", procs)
    info = {
        "dir": d, "zone": ZONE, "domains": n_domains, "tarpit": n_tarpit,
        "resolver": "%s:%d" % (IP_DNS, dns_port), "dns_ip": IP_DNS,
        "dns_port": dns_port, "https_port": https_port,
        "smtp_port": smtp_port, "ca_file": pki["root"],
        "ip_ec": IP_EC, "ip_rsa": IP_RSA, "ip_mx": IP_MX,
        "ip_mx_tls": IP_MX_TLS, "ip_tarpit": IP_TARPIT,
        "queries": queries, "setup_s": round(time.monotonic() - t0, 2),
        "generate_s": round(t_gen, 2),
        "pids": {n: p.pid for n, p in procs.items()},
        "cpu": cpu,
    }
    with open(os.path.join(d, "farm.json"), "w") as f:
        json.dump(info, f, indent=1)
    with open(os.path.join(d, "domains.txt"), "w") as f:
        for i in range(1, n_domains + 1):
            f.write("d%d.%s\n" % (i, ZONE))
    with open(os.path.join(d, "tarpit.txt"), "w") as f:
        for i in range(1, n_tarpit + 1):
            f.write("t%d.%s\n" % (i, ZONE))
    return info


def down(d):
    d = os.path.abspath(d)
    pids = []
    for name in ("nginx", "nsd", "tarpit"):
        p = os.path.join(d, name + ".pid")
        try:
            with open(p) as f:
                pids.append(int(f.read().split()[0]))
        except (OSError, ValueError, IndexError):
            continue
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < end:
            try:
                os.kill(pid, 0)
                # Reap it if it is our child; otherwise just wait.
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.05)
            except ProcessLookupError:
                break
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for name in ("nginx", "nsd", "tarpit"):
        try:
            os.unlink(os.path.join(d, name + ".pid"))
        except OSError:
            pass


def main(argv):
    if len(argv) >= 2 and argv[1] == "tarpit":
        return tarpit_main(int(argv[2]), int(argv[3]), argv[4])
    if len(argv) < 3 or argv[1] not in ("up", "down"):
        sys.stderr.write(__doc__)
        return 2
    if argv[1] == "down":
        down(argv[2])
        return 0
    n_domains, n_tarpit, cpu = 1000, 0, None
    i = 3
    while i < len(argv):
        if argv[i] == "--domains":
            n_domains = int(argv[i + 1])
        elif argv[i] == "--tarpit":
            n_tarpit = int(argv[i + 1])
        elif argv[i] == "--cpu":
            cpu = int(argv[i + 1])
        else:
            sys.stderr.write("farm.py: unknown option %s\n" % argv[i])
            return 2
        i += 2
    if not 1 <= n_domains <= 100000 or not 0 <= n_tarpit <= 20000:
        sys.stderr.write("farm.py: --domains 1..100000, --tarpit 0..20000\n")
        return 2
    try:
        info = up(argv[2], n_domains, n_tarpit, cpu)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        sys.stderr.write("farm.py: %s\n" % e)
        down(argv[2])
        return 1
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
