"""seed_probe.py -- the seed-style sequential MTA-STS checker (baseline).

  python3 seed_probe.py FARM_JSON DOMAINS_FILE COUNT

What a first script does, one domain after another: `dig` for the
_mta-sts TXT, the MX, the _smtp._tls TXT and the policy host's A record;
`curl` for the policy (pinned to the address dig gave, --cacert for the
farm's root); for each MX `dig` A, then a socket, EHLO, STARTTLS and a
handshake with one `ssl.create_default_context()` per host, keeping the
peer certificate.  Prints one JSON line: domains, ok, wall seconds, rate.
Talks only to the addresses in the farm's JSON (loopback).
"""

import json
import socket
import ssl
import subprocess
import sys
import time


def dig(farm, qtype, name):
    r = subprocess.run(["dig", "@" + farm["dns_ip"], "-p",
                        str(farm["dns_port"]), "+short", "+time=2",
                        "+tries=1", qtype, name],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       timeout=10)
    return [x for x in r.stdout.decode().splitlines() if x]


def recv_reply(f):
    lines = []
    while True:
        line = f.readline(1000)
        if not line:
            raise OSError("connection closed")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return lines


def starttls(farm, host, ip):
    with socket.create_connection((ip, farm["smtp_port"]), timeout=10) as s:
        f = s.makefile("rb")
        if not recv_reply(f)[0].startswith(b"220"):
            return False
        s.sendall(b"EHLO seed.example\r\n")
        ehlo = recv_reply(f)
        if not any(b"STARTTLS" in x.upper() for x in ehlo):
            return False
        s.sendall(b"STARTTLS\r\n")
        if not recv_reply(f)[0].startswith(b"220"):
            return False
        ctx = ssl.create_default_context(cafile=farm["ca_file"])
        with ctx.wrap_socket(s, server_hostname=host) as t:
            return t.getpeercert(binary_form=True) is not None


def probe(farm, domain):
    ok = True
    sts = dig(farm, "TXT", "_mta-sts." + domain)
    mx = dig(farm, "MX", domain)
    dig(farm, "TXT", "_smtp._tls." + domain)
    policy_host = "mta-sts." + domain
    addrs = dig(farm, "A", policy_host)
    if sts and addrs:
        port = farm["https_port"]
        r = subprocess.run(
            ["curl", "-s", "-f", "--max-time", "10", "--cacert",
             farm["ca_file"], "--resolve",
             "%s:%d:%s" % (policy_host, port, addrs[0]),
             "https://%s:%d/.well-known/mta-sts.txt" % (policy_host, port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20)
        ok = ok and r.returncode == 0 and b"STSv1" in r.stdout
    else:
        ok = False
    for rec in mx:
        host = rec.split()[-1].rstrip(".")
        ips = dig(farm, "A", host)
        try:
            ok = ok and bool(ips) and starttls(farm, host, ips[0])
        except (OSError, ssl.SSLError):
            ok = False
    return ok


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[1]) as f:
        farm = json.load(f)
    with open(sys.argv[2]) as f:
        domains = [x.strip() for x in f if x.strip()]
    domains = domains[:int(sys.argv[3])]
    t0 = time.monotonic()
    ok = sum(1 for d in domains if probe(farm, d))
    wall = time.monotonic() - t0
    print(json.dumps({"mode": "seed", "n": len(domains), "ok": ok,
                      "wall_s": round(wall, 4),
                      "rate": round(len(domains) / wall, 2)}))
    return 0 if ok == len(domains) else 1


if __name__ == "__main__":
    sys.exit(main())
