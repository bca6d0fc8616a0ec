"""bench.py -- the agent's figures against their baselines (run.sh runs it).

  python3 bench/probe/bench.py FARM_JSON OUT_JSON

Environment: AGENT (mtasts-agent), TOOLS (dir of agent_load, mini_client),
RUNS (A/B pairs per figure, default 5), QUICK=1 (smaller sizes),
CLIENT_CPU (CPU the client under test is pinned to; the farm has the
other), ONLY (comma-separated figure keys to run).

Each A/B figure runs A then B, RUNS times, alternately; each pair gives a
ratio and the median ratio is the figure.  Prints each figure beside its
baseline, the ratio and the goal, and writes everything to OUT_JSON.
"""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


QUICK = os.environ.get("QUICK", "") not in ("", "0")
RUNS = env_int("RUNS", 3 if QUICK else 5)
CPU = os.environ.get("CLIENT_CPU", "1" if (os.cpu_count() or 1) >= 2 else "")
AGENT = os.environ.get("AGENT", "bin/mtasts-agent")
TOOLS = os.environ.get("TOOLS", "build/bench/probe")
ONLY = [x for x in os.environ.get("ONLY", "").split(",") if x]


def pin(argv):
    return (["taskset", "-c", CPU] + argv) if CPU else argv


def run_json(argv, timeout=600):
    """Runs a tool that prints one JSON line; returns it parsed."""
    r = subprocess.run(pin(argv), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    out = r.stdout.decode().strip().splitlines()
    if not out:
        raise RuntimeError("%s: no output (exit %d): %s" % (
            argv[0], r.returncode, r.stderr.decode()[-500:]))
    j = json.loads(out[-1])
    if j.get("ok") != j.get("n"):
        sys.stderr.write("warning: %s: %s of %s succeeded (%s)\n" % (
            os.path.basename(argv[0]), j.get("ok"), j.get("n"),
            j.get("last_error", "")))
    return j


def timed(argv, timeout=600, stdout=subprocess.DEVNULL):
    """Wall seconds and child CPU seconds of one command."""
    before = os.times()
    t0 = time.monotonic()
    r = subprocess.run(pin(argv), stdout=stdout, stderr=subprocess.PIPE,
                       timeout=timeout)
    wall = time.monotonic() - t0
    after = os.times()
    cpu = ((after.children_user - before.children_user) +
           (after.children_system - before.children_system))
    return wall, cpu, r


class Bench:
    def __init__(self, farm):
        self.farm = farm
        self.figures = []
        self.tmp = tempfile.mkdtemp(prefix="mtbench.")
        self.domains = os.path.join(farm["dir"], "domains.txt")

    def agent_load(self, mode, ip, port, fmt, names, n, conc):
        return run_json([os.path.join(TOOLS, "agent_load"), mode, ip,
                         str(port), fmt, str(names), str(n), str(conc),
                         self.farm["ca_file"]])

    # ---- the figures ----

    def ab(self, key, title, unit, a, b, goal, higher_better=True,
           a_name="agent", b_name="baseline", note=""):
        """a() and b() each return (value, detail)."""
        if ONLY and key not in ONLY:
            return
        pairs = []
        for i in range(RUNS):
            va, da = a()
            vb, db = b()
            pairs.append({"a": va, "b": vb,
                          "ratio": va / vb if vb else 0.0,
                          "a_detail": da, "b_detail": db})
            sys.stderr.write("  %s run %d/%d: %s %.1f, %s %.1f\n" % (
                key, i + 1, RUNS, a_name, va, b_name, vb))
        ratio = statistics.median(p["ratio"] for p in pairs)
        met = ratio >= goal if higher_better else ratio <= goal
        fig = {"key": key, "title": title, "unit": unit,
               "agent": statistics.median(p["a"] for p in pairs),
               "baseline": statistics.median(p["b"] for p in pairs),
               "a_name": a_name, "b_name": b_name,
               "ratio": round(ratio, 3),
               "goal": ("<= %g" if not higher_better else ">= %g") % goal,
               "met": met, "runs": pairs, "note": note}
        self.figures.append(fig)
        self.show(fig)

    def show(self, f):
        if f.get("baseline") is None:
            print("%-34s %12s %-10s %s" % (f["title"], f["agent"], f["unit"],
                                           f.get("note", "")))
            return
        print("%-34s %10.1f %-9s baseline %10.1f  ratio %6.2fx  goal %s  %s"
              % (f["title"], f["agent"], f["unit"], f["baseline"],
                 f["ratio"], f["goal"], "met" if f["met"] else "NOT MET"))
        sys.stdout.flush()

    def handshakes(self):
        fm = self.farm
        n = 1500 if QUICK else 2000
        names = min(fm["domains"], 1000)

        def agent(ip):
            def f():
                j = self.agent_load("tls", ip, fm["https_port"],
                                    "mta-sts.d%d.bench.test", names, n, 32)
                return j["rate"], j
            return f

        def s_time(ip):
            def f():
                r = subprocess.run(pin([
                    "openssl", "s_time", "-connect",
                    "%s:%d" % (ip, fm["https_port"]), "-new", "-time",
                    "2"]), stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, timeout=60)
                m = re.search(r"(\d+) connections in (\d+) real seconds",
                              r.stdout.decode())
                if not m:
                    raise RuntimeError("s_time: " + r.stdout.decode()[-300:])
                return int(m.group(1)) / int(m.group(2)), {
                    "connections": int(m.group(1)),
                    "real_s": int(m.group(2))}
            return f

        self.ab("handshakes_ecdsa", "cert-capture handshakes/s (ECDSA)",
                "/s", agent(fm["ip_ec"]), s_time(fm["ip_ec"]), 2.2,
                b_name="openssl s_time -new")
        if not QUICK:
            self.ab("handshakes_rsa", "cert-capture handshakes/s (RSA)",
                    "/s", agent(fm["ip_rsa"]), s_time(fm["ip_rsa"]), 2.2,
                    b_name="openssl s_time -new",
                    note="not a goal of the issue; same goal shown")

    def cpu_per_handshake(self):
        fm = self.farm
        n = 1500 if QUICK else 2000
        names = min(fm["domains"], 1000)
        fmt = "mta-sts.d%d.bench.test"

        def agent():
            j = self.agent_load("tls", fm["ip_ec"], fm["https_port"], fmt,
                                names, n, 32)
            return j["cpu_us_per_op"], j

        def mini():
            j = run_json([os.path.join(TOOLS, "mini_client"), fm["ip_ec"],
                          str(fm["https_port"]), fmt, str(names), str(n),
                          "32"])
            return j["cpu_us_per_op"], j

        self.ab("cpu_per_handshake", "client CPU per handshake", "us",
                agent, mini, 1.25, higher_better=False,
                b_name="mini_client (epoll+OpenSSL)")

    def starttls(self):
        fm = self.farm
        n = 1500 if QUICK else 2000
        names = min(fm["domains"], 1000)
        fmt = "mx%d.mx.bench.test"

        def stls():
            j = self.agent_load("starttls", fm["ip_mx"], fm["smtp_port"],
                                fmt, names, n, 32)
            return j["rate"], j

        def direct():
            j = self.agent_load("tls", fm["ip_mx_tls"], fm["smtp_port"],
                                fmt, names, n, 32)
            return j["rate"], j

        self.ab("starttls", "STARTTLS handshakes/s", "/s", stls, direct,
                0.8, a_name="agent STARTTLS",
                b_name="agent direct TLS (same server, same cert)")

    def policy_fetch(self):
        fm = self.farm
        n = 1500 if QUICK else 2000
        names = min(fm["domains"], 1000)
        port = fm["https_port"]
        cfg = os.path.join(self.tmp, "curl.list")
        with open(cfg, "w") as f:
            f.write('insecure\nsilent\nconnect-to = "::%s:"\n' % fm["ip_ec"])
            for i in range(n):
                f.write('url = "https://mta-sts.d%d.bench.test:%d'
                        '/.well-known/mta-sts.txt"\noutput = "/dev/null"\n'
                        % (1 + i % names, port))

        def agent():
            j = self.agent_load("fetch", fm["ip_ec"], port,
                                "mta-sts.d%d.bench.test", names, n, 100)
            return j["rate"], j

        def curl():
            wall, cpu, r = timed(["curl", "--parallel", "--parallel-max",
                                  "100", "-K", cfg])
            if r.returncode != 0:
                raise RuntimeError("curl exited %d" % r.returncode)
            return n / wall, {"n": n, "wall_s": round(wall, 4),
                              "cpu_s": round(cpu, 4)}

        self.ab("policy_fetch", "policy fetches/s", "/s", agent, curl, 1.0,
                b_name="curl --parallel --parallel-max 100 -K list")

    def dns(self):
        fm = self.farm
        queries = fm["queries"]

        def agent():
            j = run_json([os.path.join(TOOLS, "agent_load"), "dns",
                          fm["resolver"], queries, "0", "100"])
            return j["rate"], j

        def dnsperf():
            r = subprocess.run(pin([
                "dnsperf", "-s", fm["dns_ip"], "-p", str(fm["dns_port"]),
                "-d", queries, "-q", "100", "-n", "1"]),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=120)
            m = re.search(r"Queries per second:\s+([\d.]+)",
                          r.stdout.decode())
            if not m:
                raise RuntimeError("dnsperf: " + r.stdout.decode()[-300:])
            return float(m.group(1)), {"qps": float(m.group(1))}

        self.ab("dns", "DNS lookups/s", "/s", agent, dnsperf, 0.25,
                b_name="dnsperf -q 100")

    def full_probes(self):
        fm = self.farm
        n = min(fm["domains"], 1000 if QUICK else 5000)
        sample = 30 if QUICK else 60
        lst = os.path.join(self.tmp, "full.txt")
        with open(self.domains) as f, open(lst, "w") as out:
            for i, line in enumerate(f):
                if i >= n:
                    break
                out.write(line)

        def agent():
            wall, cpu, r = timed([
                AGENT, "probe", "--resolver", fm["resolver"], "--ca-file",
                fm["ca_file"], "--https-port", str(fm["https_port"]),
                "--smtp-port", str(fm["smtp_port"]), "--json",
                "--timeout", "30", "-f", lst])
            if r.returncode not in (0, 1):
                raise RuntimeError("agent exited %d: %s" % (
                    r.returncode, r.stderr.decode()[-300:]))
            return n / wall, {"n": n, "wall_s": round(wall, 3),
                              "cpu_s": round(cpu, 3),
                              "cpu_ms_per_probe": round(cpu * 1000 / n, 3),
                              "exit": r.returncode}

        def seed():
            j = run_json([sys.executable, os.path.join(HERE,
                          "seed_probe.py"), os.path.join(fm["dir"],
                          "farm.json"), lst, str(sample)])
            return j["rate"], j

        self.ab("full_probes", "full probes/s (%d domains)" % n, "/s",
                agent, seed, 20.0,
                b_name="seed-style sequential script (%d-domain sample)"
                % sample,
                note="baseline rate from a sample: it is sequential, so "
                "its rate does not depend on the list length")

    # ---- memory against the tarpit ----

    def rss_pending(self, count):
        """Peak RSS (KiB) of the agent while count probes hang on the
        tarpit, read once every probe holds both of its connections."""
        fm = self.farm
        lst = os.path.join(self.tmp, "tarpit%d.txt" % count)
        with open(lst, "w") as f:
            for i in range(1, count + 1):
                f.write("t%d.bench.test\n" % i)
        p = subprocess.Popen(pin([
            AGENT, "probe", "--resolver", fm["resolver"], "--ca-file",
            fm["ca_file"], "--https-port", str(fm["https_port"]),
            "--smtp-port", str(fm["smtp_port"]), "--json", "--timeout",
            "60", "--concurrency", str(count), "-f", lst]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # taskset execs the agent in place, so p.pid is the agent.
        want = 2 * count
        rss = fds = 0
        stable_since = None
        last_fds = -1
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 8.0 and p.poll() is None:
                try:
                    fds = len(os.listdir("/proc/%d/fd" % p.pid))
                    with open("/proc/%d/status" % p.pid) as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                rss = max(rss, int(line.split()[1]))
                except OSError:
                    break
                if fds != last_fds:
                    last_fds = fds
                    stable_since = time.monotonic()
                elif (fds >= want and
                      time.monotonic() - stable_since > 0.5):
                    break
                time.sleep(0.05)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        return rss, fds, want

    def memory(self):
        if ONLY and "memory" not in ONLY:
            return
        fm = self.farm
        sizes = [1000] if QUICK else [1000, 2000, 4000]
        sizes = [s for s in sizes if s <= fm["tarpit"]]
        if not sizes:
            return
        reps = 1 if QUICK else 3
        base = statistics.median(self.rss_pending(1)[0] for _ in range(reps))
        reps = 1 if QUICK else 2
        rows = {}
        for s in sizes:
            vals = []
            for _ in range(reps):
                rss, fds, want = self.rss_pending(s)
                if fds < want:
                    sys.stderr.write("warning: %d probes: %d of %d sockets "
                                     "open when measured\n" % (s, fds, want))
                vals.append(rss)
            rows[s] = statistics.median(vals)
            sys.stderr.write("  memory %d pending: RSS %d KiB\n"
                             % (s, rows[s]))
        d1000 = (rows[sizes[0]] - base) / 1024.0
        per = {s: (rows[s] - base) / s for s in sizes}
        linear = (max(per.values()) / min(per.values()) <= 1.25
                  if len(per) > 1 and min(per.values()) > 0 else None)
        met = d1000 <= 32.0 and linear in (True, None)
        # The floor on this machine: the minimal epoll + OpenSSL client
        # holding the same number of handshakes on the same tarpit.
        floor = statistics.median(run_json([
            os.path.join(TOOLS, "mini_client"), "pending",
            fm["ip_tarpit"], str(fm["https_port"]), str(sizes[0])]
        )["kib_per_handshake"] for _ in range(reps))
        floor_mib = floor * sizes[0] / 1024.0
        fig = {"key": "memory", "title": "RSS(%d pending)-RSS(1)"
               % sizes[0], "unit": "MiB", "agent": round(d1000, 2),
               "baseline": round(floor_mib, 2), "a_name": "agent",
               "b_name": "minimal epoll+OpenSSL client holding %d "
               "handshakes on the tarpit (the issue gives 8.5 MiB for "
               "a minimal client, 60 MiB for tls-scan)" % sizes[0],
               "ratio": round(d1000 / floor_mib, 3),
               "goal": "<= 32 MiB, linear",
               "met": met, "rss1_kib": base,
               "rss_kib": rows,
               "kib_per_probe": {s: round(v, 2) for s, v in per.items()},
               "minimal_client_kib_per_handshake": floor,
               "linear": linear}
        self.figures.append(fig)
        print("%-34s %10.1f %-9s baseline %10.1f  ratio %6.2fx  goal %s  %s"
              % (fig["title"], fig["agent"], "MiB", floor_mib,
                 fig["ratio"], "<= 32 MiB", "met" if met else "NOT MET"))
        print("%-34s %s KiB/probe at %s pending (linear: %s); minimal "
              "OpenSSL client %.1f KiB per waiting handshake" % (
                  "  memory per pending probe", ", ".join(
                      "%.1f" % per[s] for s in sizes), "/".join(
                      str(s) for s in sizes), linear, floor))

    def scale(self):
        if ONLY and "scale" not in ONLY:
            return
        fm = self.farm
        n = fm["domains"]
        vt = ["/usr/bin/time", "-f", "%e %U %S %M"]
        wall, cpu, r = timed(vt + [
            AGENT, "probe", "--resolver", fm["resolver"], "--ca-file",
            fm["ca_file"], "--https-port", str(fm["https_port"]),
            "--smtp-port", str(fm["smtp_port"]), "--json", "--timeout",
            "60", "--concurrency", "256", "-f", self.domains],
            timeout=900, stdout=subprocess.PIPE)
        lines = r.stdout.decode().splitlines()
        ok = 0
        for line in lines:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("completed") and not any(
                    x.get("severity") == "error"
                    for x in j.get("findings", [])):
                ok += 1
        m = re.search(r"([\d.]+) ([\d.]+) ([\d.]+) (\d+)\s*$",
                      r.stderr.decode())
        if not m:
            raise RuntimeError("time: " + r.stderr.decode()[-300:])
        e, u, s, maxrss = (float(m.group(1)), float(m.group(2)),
                           float(m.group(3)), int(m.group(4)))
        full = [f for f in self.figures if f["key"] == "full_probes"]
        per_small = (statistics.median(
            p["a_detail"]["cpu_ms_per_probe"] for p in full[0]["runs"])
            if full else None)
        n_small = full[0]["runs"][0]["a_detail"]["n"] if full else 0
        per_big = (u + s) * 1000.0 / n
        fig = {"key": "scale", "title": "scale: %d domains, one round" % n,
               "domains": n, "results": len(lines), "clean": ok,
               "wall_s": e, "cpu_user_s": u, "cpu_sys_s": s,
               "peak_rss_mib": round(maxrss / 1024.0, 1),
               "probes_per_s": round(n / e, 1),
               "cpu_ms_per_probe": round(per_big, 3),
               "cpu_ms_per_probe_small": per_small,
               "small_domains": n_small,
               "linear": (per_small is not None and
                          per_big <= 1.25 * per_small)}
        self.figures.append(fig)
        print("%-34s %d results (%d clean) in %.1f s, %.0f probes/s, CPU "
              "%.1f s user + %.1f s sys (%.2f ms/probe%s), peak RSS %.1f MiB"
              % (fig["title"], len(lines), ok, e, n / e, u, s, per_big,
                 ", %.2f at %d" % (per_small, n_small)
                 if per_small else "", maxrss / 1024.0))


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[1]) as f:
        farm = json.load(f)
    b = Bench(farm)
    print("agent benchmarks: %d runs per A/B figure, client on CPU %s, "
          "farm on the other%s" % (RUNS, CPU or "any",
                                   " (QUICK)" if QUICK else ""))
    t0 = time.monotonic()
    steps = [b.handshakes, b.cpu_per_handshake, b.starttls, b.policy_fetch,
             b.dns, b.full_probes, b.memory, b.scale]
    failed = 0
    for step in steps:
        try:
            step()
        except (RuntimeError, OSError, subprocess.SubprocessError,
                ValueError, KeyError) as e:
            failed += 1
            print("%s: error: %s" % (step.__name__, e))
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "quick": QUICK, "runs": RUNS, "client_cpu": CPU,
           "farm": {k: farm[k] for k in ("domains", "tarpit", "setup_s")},
           "elapsed_s": round(time.monotonic() - t0, 1),
           "figures": b.figures}
    with open(sys.argv[2], "w") as f:
        json.dump(out, f, indent=1)
    print("written: %s (%.0f s)" % (sys.argv[2], out["elapsed_s"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
