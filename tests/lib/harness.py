"""harness.py -- process, port and DNS helpers shared by the integration tests.

Every process started through Procs is killed by its pid when the Procs is
closed (call close() in a finally; it is also registered with atexit), and
readiness is always a wait-for-condition with a deadline, never a fixed
sleep.  Only loopback addresses are ever bound or contacted.
"""

import atexit
import ipaddress
import os
import random
import select
import signal
import socket
import struct
import subprocess
import time

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16,
          "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN",
          4: "NOTIMP", 5: "REFUSED"}


def assert_loopback(ip):
    if not ipaddress.ip_address(ip).is_loopback:
        raise ValueError("not a loopback address: %s" % ip)


def port_free(ip, port, udp=False):
    assert_loopback(ip)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    for kind in kinds:
        s = socket.socket(family, kind)
        try:
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((ip, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def pick_port(ips, udp=False, avoid=()):
    """A random port free on every ip, below the ephemeral range."""
    for _ in range(500):
        port = random.randint(20000, 32000)
        if port in avoid:
            continue
        if all(port_free(ip, port, udp) for ip in ips):
            return port
    raise RuntimeError("no free port on %s" % (ips,))


class Proc:
    def __init__(self, name, popen, out_path, err_path):
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.out_path = out_path
        self.err_path = err_path

    def alive(self):
        return self.popen.poll() is None

    def stderr_tail(self, n=2000):
        try:
            with open(self.err_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""


def _die_with_parent():
    """In the child: SIGTERM it if the test runner itself is killed -9."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Procs:
    """Starts processes and guarantees each is killed by pid at the end."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []
        atexit.register(self.close)

    def start(self, name, argv, stdout_pipe=False, env=None):
        out_path = os.path.join(self.workdir, name + ".out")
        err_path = os.path.join(self.workdir, name + ".err")
        err = open(err_path, "wb")
        out = subprocess.PIPE if stdout_pipe else open(out_path, "wb")
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=err, env=env, start_new_session=True,
                                 preexec_fn=_die_with_parent)
        err.close()
        if not stdout_pipe:
            out.close()
        p = Proc(name, popen, out_path, err_path)
        self.procs.append(p)
        return p

    def close(self):
        """SIGTERM every process by pid, then SIGKILL what did not exit."""
        for p in self.procs:
            if p.popen.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for p in self.procs:
            left = max(0.0, deadline - time.monotonic())
            try:
                p.popen.wait(timeout=left)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.popen.wait()
            if p.popen.stdout is not None:
                p.popen.stdout.close()
        self.procs = []


def wait_line(proc, want, timeout):
    """Reads proc's piped stdout until a line equal to want, or fails."""
    deadline = time.monotonic() + timeout
    fd = proc.popen.stdout.fileno()
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            if want.encode() + b"\n" in buf:
                return True
        elif not proc.alive():
            break
    return False


def wait_until(cond, timeout, interval=0.05):
    """Polls cond() until true or the deadline; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# --- DNS -------------------------------------------------------------------

def build_query(name, qtype, qid=None):
    qid = random.randint(0, 0xFFFF) if qid is None else qid
    hdr = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD
    q = b""
    for label in name.rstrip(".").split("."):
        if label:
            q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack("!HH", QTYPES[qtype], 1)
    return qid, hdr + q


def _read_name(msg, off):
    labels = []
    jumps = 0
    end = None
    while True:
        if off >= len(msg):
            raise ValueError("name past end")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if jumps > 20:
                raise ValueError("pointer loop")
            ptr = ((n & 0x3F) << 8) | msg[off + 1]
            if end is None:
                end = off + 2
            off = ptr
            jumps += 1
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("latin-1"))
        off += n
    return ".".join(labels), (end if end is not None else off)


def parse_response(msg):
    """Returns {"id", "rcode", "answers": [(name, type, data)]}."""
    qid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _read_name(msg, off)
        off += 4
    answers = []
    rev = {v: k for k, v in QTYPES.items()}
    for _ in range(an):
        name, off = _read_name(msg, off)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rd = msg[off:off + rdlen]
        tname = rev.get(rtype, str(rtype))
        if tname == "A":
            data = socket.inet_ntop(socket.AF_INET, rd)
        elif tname == "AAAA":
            data = socket.inet_ntop(socket.AF_INET6, rd)
        elif tname in ("CNAME", "NS"):
            data = _read_name(msg, off)[0]
        elif tname == "MX":
            data = (struct.unpack("!H", rd[:2])[0],
                    _read_name(msg, off + 2)[0])
        elif tname == "TXT":
            parts, i = [], 0
            while i < len(rd):
                parts.append(rd[i + 1:i + 1 + rd[i]].decode("latin-1"))
                i += 1 + rd[i]
            data = parts
        else:
            data = rd
        answers.append((name, tname, data))
        off += rdlen
    return {"id": qid, "rcode": RCODES.get(flags & 0xF, str(flags & 0xF)),
            "answers": answers}


def dns_query(server, port, name, qtype, timeout=1.0):
    """One UDP query to a loopback server; returns parse_response() or None."""
    assert_loopback(server)
    qid, pkt = build_query(name, qtype)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(pkt, (server, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(65535)
            except (socket.timeout, ConnectionRefusedError):
                return None
            if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                return parse_response(data)
        return None
    finally:
        s.close()


# --- unbound -----------------------------------------------------------------

def unbound_conf(workdir, port, zone, records, stubs):
    """Text of an unbound.conf serving zone statically from records.

    records: list of (name, type, rdata-text).  stubs: {zone: "ip@port"}
    zones that unbound must recurse into (they are made transparent so the
    static parent does not answer for them).
    """
    lines = [
        "server:",
        "  interface: 127.0.0.1@%d" % port,
        "  port: %d" % port,
        "  do-daemonize: no",
        '  username: ""',
        '  chroot: ""',
        '  pidfile: ""',
        '  directory: "%s"' % workdir,
        '  logfile: ""',
        "  use-syslog: no",
        "  verbosity: 1",
        "  num-threads: 1",
        "  so-reuseport: no",
        "  do-ip6: no",
        "  access-control: 127.0.0.0/8 allow",
        '  module-config: "iterator"',
        "  do-not-query-localhost: no",
        "  qname-minimisation: no",
        "  cache-max-ttl: 1",
        "  cache-max-negative-ttl: 1",
        "  infra-host-ttl: 1",
        "  outgoing-num-tcp: 4",
        '  local-zone: "%s." static' % zone.rstrip("."),
    ]
    for z in stubs:
        lines.append('  local-zone: "%s." transparent' % z.rstrip("."))
    for name, rtype, rdata in records:
        lines.append("  local-data: '%s. 60 IN %s %s'" % (
            name.rstrip("."), rtype, rdata))
    for z, addr in stubs.items():
        # Over TCP a dead address fails at once (connection refused), so
        # the SERVFAIL comes in milliseconds rather than after UDP retries.
        lines += ["stub-zone:", '  name: "%s."' % z.rstrip("."),
                  "  stub-addr: %s" % addr, "  stub-tcp-upstream: yes"]
    lines += ["remote-control:", "  control-enable: no"]
    return "\n".join(lines) + "\n"


def start_unbound(procs, workdir, zone, records, stubs, probe_name,
                  timeout=10):
    """Starts unbound on a random port; returns (proc, port) once it answers.

    probe_name must exist in records (as an A record): readiness is a real
    answer for it.  Retries on another port if the chosen one was taken.
    """
    for _ in range(3):
        port = pick_port(["127.0.0.1"], udp=True)
        conf = os.path.join(workdir, "unbound.conf")
        with open(conf, "w") as f:
            f.write(unbound_conf(workdir, port, zone, records, stubs))
        proc = procs.start("unbound", ["unbound", "-d", "-c", conf])

        def answered():
            if not proc.alive():
                return "dead"
            r = dns_query("127.0.0.1", port, probe_name, "A", timeout=0.3)
            return "up" if r and r["rcode"] == "NOERROR" and r["answers"] \
                else None

        state = wait_until(answered, timeout)
        if state == "up":
            return proc, port
        if proc.alive():
            os.kill(proc.pid, signal.SIGTERM)
            proc.popen.wait(timeout=5)
        if state != "dead":
            raise RuntimeError("unbound did not answer within %ds: %s" %
                               (timeout, proc.stderr_tail()))
    raise RuntimeError("unbound would not start: %s" % proc.stderr_tail())
