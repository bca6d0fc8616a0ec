"""scenarios.py -- the lab zone: one domain per fault, and what each expects.

build(ca, ports) returns a Zone holding the DNS records for unbound, the
listener config for lab.py, and one Scenario per domain naming the finding
codes the agent must report for it (with whom each is about) and the error
codes it may report besides.  Every domain is healthy except for its one
fault, so any other error-severity finding is a failure.

Addresses: policy hosts 127.0.1.N, first MX 127.0.2.N, addresses where
nothing listens 127.0.3.N, second MX 127.0.4.N, the v6 policy host ::1, and
the AIA/OCSP listener 127.0.0.1.  All loopback.
"""

import datetime
import hashlib

ZONE = "test"
STS_ID = "20261129T000000"


def days(n):
    return datetime.timedelta(days=n)


def policy_text(domain, mode="enforce", mx=None, max_age=1209600, eol="\n"):
    mx = mx if mx is not None else ["mx1." + domain]
    lines = ["version: STSv1", "mode: " + mode]
    lines += ["mx: " + m for m in mx]
    lines.append("max_age: %d" % max_age)
    return eol.join(lines) + eol


class Scenario:
    def __init__(self, short, run="main"):
        self.short = short
        self.domain = "%s.%s" % (short, ZONE)
        self.policy_host = "mta-sts." + self.domain
        self.run = run          # which agent invocation probes it
        self.expect = []        # (code, frozenset(subjects), severity|None)
        self.allow = set()      # extra error codes tolerated
        self.clean = False      # must produce no finding at all
        self.facts = {}         # what the JSON checks compare against
        self.hosts = {}         # host name -> {"ip", "leaf"}

    def want(self, code, subjects, severity=None):
        if isinstance(subjects, str):
            subjects = [subjects]
        self.expect.append((code, frozenset(subjects), severity))


class Zone:
    def __init__(self, ca, ports):
        self.ca = ca
        self.ports = ports
        self.records = []
        self.listeners = []
        self.stubs = {}
        self.scenarios = []
        self.n = 0

    # --- building blocks --------------------------------------------------

    def rr(self, name, rtype, rdata):
        self.records.append((name, rtype, rdata))

    def txt(self, name, *strings):
        self.rr(name, "TXT", " ".join('"%s"' % s for s in strings))

    def https_host(self, sc, name, ip, leaf=None, http=None, tls=None,
                   kind="https", aaaa=False):
        if aaaa:
            self.rr(name, "AAAA", ip)
        else:
            self.rr(name, "A", ip)
        lst = {"ip": ip, "port": self.ports["https"], "kind": kind,
               "name": name, "http": http}
        if kind == "https":
            leaf = leaf or self.ca.leaf(name)
            lst["tls"] = dict({"chain": leaf["chain"], "key": leaf["key"],
                               "min": "TLSv1_2"}, **(tls or {}))
        self.listeners.append(lst)
        sc.hosts[name] = {"ip": ip, "leaf": leaf}
        return lst

    def smtp_host(self, sc, name, ip, leaf=None, ehlo=None, starttls=True,
                  tls=None):
        self.rr(name, "A", ip)
        leaf = leaf or self.ca.leaf(name)
        if ehlo is None:
            ehlo = ["PIPELINING", "SIZE 10240000"] + \
                (["STARTTLS"] if starttls else []) + ["8BITMIME"]
        lst = {"ip": ip, "port": self.ports["smtp"], "kind": "smtp",
               "name": name, "smtp": {"ehlo": ehlo, "starttls": starttls},
               "tls": dict({"chain": leaf["chain"], "key": leaf["key"],
                            "min": "TLSv1_2"}, **(tls or {}))}
        self.listeners.append(lst)
        sc.hosts[name] = {"ip": ip, "leaf": leaf}
        return lst

    def domain(self, short, txt="default", policy=None, http=None,
               policy_host="default", mx="default", tlsrpt="default",
               run="main"):
        """A healthy domain with the parts given here replaced.

        txt: list of TXT records (each a list of character-strings) or
        None.  policy_host: "default", None (no address), "dead" (nothing
        listening), or a callable(sc, name, ip) making the listener.
        mx: "default" (mx1 healthy), or a list of (pref, name, maker|None)
        where maker(sc, name, ip) makes the listener ("dead" for nothing
        listening).  tlsrpt: a TXT string, or None.
        """
        self.n += 1
        i = self.n
        sc = Scenario(short, run)
        d = sc.domain
        ip_policy = "127.0.1.%d" % i
        ip_mx = "127.0.2.%d" % i
        ip_dead = "127.0.3.%d" % i
        ip_mx2 = "127.0.4.%d" % i
        if txt == "default":
            txt = [["v=STSv1; id=%s;" % STS_ID]]
        for strings in txt or []:
            self.txt("_mta-sts." + d, *strings)
        if policy is None:
            policy = policy_text(d)
        sc.facts["policy"] = policy
        http = http or {"status": 200,
                        "headers": [["Content-Type", "text/plain"]],
                        "body": policy}
        name = sc.policy_host
        if policy_host == "default":
            self.https_host(sc, name, ip_policy, http=http)
        elif policy_host == "dead":
            self.rr(name, "A", ip_dead)
            sc.hosts[name] = {"ip": ip_dead, "leaf": None}
        elif callable(policy_host):
            policy_host(sc, name, ip_policy, http)
        if mx == "default":
            mx = [(10, "mx1." + d, None)]
        for k, (pref, host, maker) in enumerate(mx):
            ip = ip_mx if k == 0 else ip_mx2
            self.rr(d, "MX", "%d %s." % (pref, host))
            if maker == "dead":
                self.rr(host, "A", ip_dead)
                sc.hosts[host] = {"ip": ip_dead, "leaf": None}
            elif maker is None:
                self.smtp_host(sc, host, ip)
            else:
                maker(sc, host, ip)
        if tlsrpt == "default":
            tlsrpt = "v=TLSRPTv1; rua=mailto:tlsrpt@" + d
        if tlsrpt is not None:
            self.txt("_smtp._tls." + d, tlsrpt)
        self.scenarios.append(sc)
        return sc


def build(ca, ports):
    z = Zone(ca, ports)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    P = ports["https"]

    # The clean domain: enforce, two MX (one matched by a wildcard), a TXT
    # record split into two character-strings, a multi-line EHLO reply.
    def good_mx(sc, host, ip):
        z.smtp_host(sc, host, ip, ehlo=[
            "PIPELINING", "SIZE 52428800", "ETRN", "STARTTLS",
            "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"])
    good = z.domain("good", txt=[["v=STSv1; i", "d=%s;" % STS_ID]],
                    policy=policy_text("good.test", mx=[
                        "mx1.good.test", "*.mx.good.test"]),
                    mx=[(10, "mx1.good.test", good_mx),
                        (20, "a.mx.good.test", good_mx)])
    good.clean = True
    z.txt("_smtp._tls.alt.good.test", "unused")  # unrelated noise

    # The policy host is reachable over IPv6 only.
    def v6_host(sc, name, _ip, http):
        z.https_host(sc, name, "::1", http=http, aaaa=True)
    v6 = z.domain("v6", policy_host=v6_host)
    v6.clean = True

    # Valid variants: Content-Type with a parameter, CRLF line ends.
    ctp_policy = policy_text("ctparam.test", eol="\r\n")
    ctp = z.domain("ctparam", policy=ctp_policy, http={
        "status": 200, "headers": [["Content-Type",
                                    "text/plain; charset=utf-8"]],
        "body": ctp_policy})
    ctp.clean = True

    # Valid edge cases a sender accepts, so they must raise nothing: a TXT
    # record without optional spaces and with an extension field; a policy
    # with upper-case mx patterns, trailing blanks, an unknown field and CRLF
    # line ends, served as "Text/Plain" (media types ignore case); a
    # multi-line 220 banner and an EHLO reply written one line at a time.
    z.domain("edgetxt", txt=[["v=STSv1;id=edge1;ext-field=yes"]]).clean = \
        True
    ep = ("version: STSv1\r\nmode: enforce  \r\nmx: MX1.EDGEPOLICY.TEST\r\n"
          "max_age: 1209600\r\nfuture-field: ignored\r\n")
    z.domain("edgepolicy", policy=ep, http={
        "status": 200, "headers": [["content-type",
                                    "Text/Plain; Charset=UTF-8"]],
        "body": ep}).clean = True

    def chatty_mx(sc, host, ip):
        lst = z.smtp_host(sc, host, ip, ehlo=[
            "PIPELINING", "SIZE 10240000", "STARTTLS", "8BITMIME"])
        lst["smtp"]["banner"] = ("220-%s ESMTP lab\r\n220-no UCE\r\n"
                                 "220 be nice" % host)
        lst["smtp"]["split"] = True
    z.domain("edgesmtp", mx=[(10, "mx1.edgesmtp.test", chatty_mx)]).clean = \
        True
    # A wildcard covers exactly one label (RFC 8461 section 4.1).
    s = z.domain("wilddeep", policy=policy_text(
        "wilddeep.test", mx=["*.mx.wilddeep.test"]),
        mx=[(10, "a.b.mx.wilddeep.test", None)])
    s.want("MX_NOT_IN_POLICY", "a.b.mx.wilddeep.test")

    # DNS failures: a SERVFAIL straight away and one behind a CNAME.
    sc = z.domain("dnsfail", txt=None)
    z.stubs["_mta-sts.dnsfail.test"] = "127.0.0.1@%d" % ports["dead"]
    sc.want("DNS_FAILURE", ["dnsfail.test", "_mta-sts.dnsfail.test"])
    sc = z.domain("dnscname", txt=None)
    z.rr("_mta-sts.dnscname.test", "CNAME", "_mta-sts.dead.test.")
    z.stubs["dead.test"] = "127.0.0.1@%d" % ports["dead"]
    sc.want("DNS_FAILURE", ["dnscname.test", "_mta-sts.dnscname.test"])

    def txt_sc(short, records, code):
        s = z.domain(short, txt=records)
        s.want(code, [s.domain, "_mta-sts." + s.domain])
        return s
    txt_sc("txtmissing", [["v=spf1 -all"]], "STS_TXT_MISSING")
    txt_sc("txtmultiple", [["v=STSv1; id=one;"], ["v=STSv1; id=two;"]],
           "STS_TXT_MULTIPLE")
    txt_sc("txtinvalid", [["v=STSv1; id=%s;" % ("a" * 33)]],
           "STS_TXT_INVALID")

    def fetch_subjects(s):
        return [s.domain, s.policy_host]

    s = z.domain("fetchnx", policy_host=None)
    s.want("POLICY_FETCH_FAILED", fetch_subjects(s))
    s = z.domain("fetchrefused", policy_host="dead")
    s.want("POLICY_FETCH_FAILED", fetch_subjects(s))

    def tarpit(sc, name, ip, _http):
        z.rr(name, "A", ip)
        z.listeners.append({"ip": ip, "port": P, "kind": "tarpit",
                            "name": name})
        sc.hosts[name] = {"ip": ip, "leaf": None}
    s = z.domain("tarpit", policy_host=tarpit, run="tarpit")
    s.want("POLICY_FETCH_FAILED", fetch_subjects(s))

    s = z.domain("redirect", http={
        "status": 301, "reason": "Moved Permanently", "headers": [
            ["Location", "https://mta-sts.good.test:%d/.well-known/"
             "mta-sts.txt" % P], ["Content-Type", "text/plain"]],
        "body": "moved\n"})
    s.want("POLICY_REDIRECT", fetch_subjects(s))
    for status, reason in ((404, "Not Found"), (503, "Service Unavailable")):
        s = z.domain("status%d" % status, http={
            "status": status, "reason": reason,
            "headers": [["Content-Type", "text/plain"]], "body": reason})
        s.want("POLICY_HTTP_STATUS", fetch_subjects(s))
    s = z.domain("ctype", http={"status": 200, "headers": [
        ["Content-Type", "text/html"]], "body": policy_text("ctype.test")})
    s.want("POLICY_CONTENT_TYPE", fetch_subjects(s))
    s = z.domain("toolarge", http={
        "status": 200, "headers": [["Content-Type", "text/plain"]],
        "body": policy_text("toolarge.test"), "chunked": True,
        "pad": 70 * 1024 - len(policy_text("toolarge.test"))})
    s.want("POLICY_TOO_LARGE", fetch_subjects(s))

    def policy_sc(short, code, severity=None, **kw):
        s = z.domain(short, policy=policy_text(short + ".test", **kw))
        s.want(code, [s.domain, s.policy_host], severity)
        return s
    policy_sc("syntax", "POLICY_SYNTAX", max_age=31557601)
    policy_sc("testing", "POLICY_MODE_TESTING", mode="testing")
    policy_sc("modenone", "POLICY_MODE_NONE", mode="none")
    policy_sc("maxagelow", "POLICY_MAX_AGE_LOW", max_age=3600)
    s = policy_sc("mxunused", "POLICY_MX_UNUSED",
                  mx=["mx1.mxunused.test", "backup.elsewhere.test"])
    s.expect[-1] = ("POLICY_MX_UNUSED", frozenset(
        ["mxunused.test", "mta-sts.mxunused.test", "backup.elsewhere.test"]),
        None)

    # TLS of the policy host.
    def plain_http(sc, name, ip, http):
        z.https_host(sc, name, ip, http=http, kind="http")
    s = z.domain("tlsplain", policy_host=plain_http)
    s.want("TLS_HANDSHAKE_FAILED", s.policy_host)
    s.allow.add("POLICY_FETCH_FAILED")

    def weak_tls(sc, name, ip, http):
        z.https_host(sc, name, ip, http=http, tls={
            "min": "TLSv1", "max": "TLSv1",
            "ciphers": "DEFAULT:@SECLEVEL=0"})
    s = z.domain("tlsweak", policy_host=weak_tls)
    s.want("TLS_VERSION_WEAK", s.policy_host)

    # Certificates of the policy host, then of an MX.
    def cert_case(short, code, severity=None, on_mx=False, leaf_kw=None,
                  tls=None, chain="full", revoke=False):
        leaf_kw = leaf_kw or {}

        def mk(name):
            lf = z.ca.leaf(name, **leaf_kw)
            if chain == "leaf":
                lf = dict(lf, chain=lf["cert"])
            if revoke:
                z.ca.revoke(lf)
            return lf

        def ph(sc, name, ip, http):
            z.https_host(sc, name, ip, leaf=mk(name), http=http, tls=tls)

        def mxh(sc, name, ip):
            z.smtp_host(sc, name, ip, leaf=mk(name), tls=tls)
        if on_mx:
            s = z.domain(short, mx=[(10, "mx1.%s.test" % short, mxh)])
            s.want(code, "mx1." + s.domain, severity)
        else:
            s = z.domain(short, policy_host=ph)
            s.want(code, s.policy_host, severity)
        return s

    weak = {"ciphers": "DEFAULT:@SECLEVEL=0"}
    for prefix, on_mx in (("", False), ("mx", True)):
        cert_case(prefix + "certexpired", "CERT_EXPIRED", on_mx=on_mx,
                  leaf_kw={"not_before": now - days(100),
                           "not_after": now - days(2)})
        cert_case(prefix + "certmismatch", "CERT_HOSTNAME_MISMATCH",
                  on_mx=on_mx, leaf_kw={"sans": ["other.elsewhere.test"]})
        cert_case(prefix + "certuntrusted", "CERT_UNTRUSTED", on_mx=on_mx,
                  leaf_kw={"self_signed": True})
        cert_case(prefix + "weakkey", "CERT_WEAK_KEY", on_mx=on_mx,
                  leaf_kw={"key": "rsa1024"}, tls=weak)
        cert_case(prefix + "certrevoked", "CERT_REVOKED", on_mx=on_mx,
                  revoke=True)
    cert_case("certfuture", "CERT_NOT_YET_VALID",
              leaf_kw={"not_before": now + days(2),
                       "not_after": now + days(92)})
    cert_case("certexpiring20", "CERT_EXPIRING", "warning",
              leaf_kw={"not_after": now + days(20, ) + datetime.timedelta(
                  hours=1)})
    cert_case("certexpiring3", "CERT_EXPIRING", "error",
              leaf_kw={"not_after": now + days(3) + datetime.timedelta(
                  hours=1)})
    cert_case("chainincomplete", "CERT_CHAIN_INCOMPLETE", chain="leaf")
    cert_case("weaksig", "CERT_WEAK_SIGNATURE", leaf_kw={"md": "sha1"},
              tls=weak)

    # MX faults.
    s = z.domain("mxmissing", mx=[])
    s.want("MX_MISSING", s.domain)
    s = z.domain("mxnotinpolicy", mx=[(10, "mx1.mxnotinpolicy.test", None),
                                      (20, "mx2.mxnotinpolicy.test", None)])
    s.want("MX_NOT_IN_POLICY", "mx2.mxnotinpolicy.test")
    s = z.domain("mxconnect", mx=[(10, "mx1.mxconnect.test", "dead")])
    s.want("MX_CONNECT_FAILED", "mx1.mxconnect.test")
    s = z.domain("mxnostarttls", mx=[(
        10, "mx1.mxnostarttls.test",
        lambda sc, h, ip: z.smtp_host(sc, h, ip, starttls=False))])
    s.want("MX_STARTTLS_MISSING", "mx1.mxnostarttls.test")

    # TLS-RPT.
    s = z.domain("tlsrptmissing", tlsrpt=None)
    s.want("TLSRPT_MISSING", [s.domain, "_smtp._tls." + s.domain], "warning")
    s = z.domain("tlsrptinvalid",
                 tlsrpt="v=TLSRPTv1; rua=ftp://reports.tlsrptinvalid.test/")
    s.want("TLSRPT_INVALID", [s.domain, "_smtp._tls." + s.domain])

    # The AIA/OCSP listener.
    z.listeners.append({
        "ip": "127.0.0.1", "port": ports["aux"], "kind": "aux",
        "name": "aia",
        "files": {"/intermediate.der": [ca.path("intermediate.der"),
                                        "application/pkix-cert"]},
        "ocsp": {"args": ca.ocsp_args()}})
    # Readiness probe name for unbound.
    z.rr("ready.test", "A", "127.0.0.1")
    for sc in z.scenarios:
        sc.facts["policy_sha256"] = hashlib.sha256(
            sc.facts["policy"].encode()).hexdigest()
    return z


# Every finding code the agent knows; the coverage guard requires each to be
# expected by at least one scenario.
ALL_CODES = [
    "DNS_FAILURE", "STS_TXT_MISSING", "STS_TXT_MULTIPLE", "STS_TXT_INVALID",
    "POLICY_FETCH_FAILED", "POLICY_REDIRECT", "POLICY_HTTP_STATUS",
    "POLICY_CONTENT_TYPE", "POLICY_TOO_LARGE", "POLICY_SYNTAX",
    "POLICY_MODE_TESTING", "POLICY_MODE_NONE", "POLICY_MAX_AGE_LOW",
    "POLICY_MX_UNUSED", "TLS_HANDSHAKE_FAILED", "TLS_VERSION_WEAK",
    "CERT_EXPIRED", "CERT_NOT_YET_VALID", "CERT_EXPIRING",
    "CERT_HOSTNAME_MISMATCH", "CERT_CHAIN_INCOMPLETE", "CERT_UNTRUSTED",
    "CERT_REVOKED", "CERT_WEAK_KEY", "CERT_WEAK_SIGNATURE", "MX_MISSING",
    "MX_NOT_IN_POLICY", "MX_CONNECT_FAILED", "MX_STARTTLS_MISSING",
    "TLSRPT_MISSING", "TLSRPT_INVALID",
]
