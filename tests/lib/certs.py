"""certs.py -- a throw-away test PKI made with the openssl CLI at test time.

Root -> intermediate -> leaf, where the intermediate signs through
`openssl ca` so each leaf can get arbitrary validity dates, SANs, AIA URLs
carrying the lab's runtime port, a weak key or a SHA-1 signature, and so the
CA database doubles as the index a real `openssl ocsp` answers from.

Nothing here talks to the network.  Usable as a module (class TestCA) or as
a script for poking at by hand:  python3 certs.py DIR [AIA_BASE_URL]
"""

import base64
import datetime
import hashlib
import os
import subprocess
import sys
import threading

OPENSSL = os.environ.get("OPENSSL", "openssl")


def _run(args, cwd=None, stdin=None):
    """Runs openssl; raises with its stderr when it fails."""
    proc = subprocess.run([OPENSSL] + args, cwd=cwd, input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (
            " ".join(args), proc.stderr.decode(errors="replace").strip()))
    return proc.stdout


def asn1_time(when):
    """datetime (UTC) -> the GeneralizedTime form `openssl ca` takes."""
    return when.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%SZ")


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def pem_to_der(pem_path):
    """DER of the first certificate in a PEM file (no subprocess)."""
    with open(pem_path) as f:
        text = f.read()
    begin = "-----BEGIN CERTIFICATE-----"
    end = "-----END CERTIFICATE-----"
    start = text.index(begin) + len(begin)
    return base64.b64decode("".join(text[start:text.index(end, start)]
                                    .split()))


def der_sha256(pem_path):
    """Lower-case hex SHA-256 of a PEM certificate's DER (one cert)."""
    return hashlib.sha256(pem_to_der(pem_path)).hexdigest()


_CA_CNF = """\
[ ca ]
default_ca = inter

[ inter ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = $dir/inter.pem
private_key = $dir/inter.key
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
default_days = 90

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = placeholder

[ v3_root ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ v3_inter ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ v3_ocsp ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
"""

_LEAF_EXT = """\
[ v3_leaf ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = {san}
{aia}
"""


class TestCA:
    """A root and an intermediate in dir; leaves are made on demand.

    aia_base is "http://127.0.0.1:PORT" (the lab's plain HTTP listener):
    leaves get caIssuers AIA_BASE/intermediate.der and OCSP AIA_BASE/ocsp.
    """

    def __init__(self, directory, aia_base):
        self.dir = os.path.abspath(directory)
        self.aia_base = aia_base.rstrip("/")
        self._lock = threading.Lock()
        self._n = 0
        os.makedirs(os.path.join(self.dir, "newcerts"), exist_ok=True)
        with open(self.path("index.txt"), "w"):
            pass
        with open(self.path("index.txt.attr"), "w") as f:
            f.write("unique_subject = no\n")
        with open(self.path("serial"), "w") as f:
            f.write("1000\n")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(_CA_CNF.format(dir=self.dir))
        self.cnf = self.path("ca.cnf")
        now = utcnow()
        # The root: self-signed, the only thing the agent trusts.
        self._genkey("root.key", "ec")
        _run(["req", "-config", self.cnf, "-new", "-x509", "-key",
              self.path("root.key"), "-subj", "/CN=mtasts-watch Test Root",
              "-days", "3650", "-extensions", "v3_root", "-sha256",
              "-out", self.path("root.pem")])
        # The intermediate, signed by the root.
        self._genkey("inter.key", "ec")
        _run(["req", "-config", self.cnf, "-new", "-key",
              self.path("inter.key"), "-subj",
              "/CN=mtasts-watch Test Intermediate", "-out",
              self.path("inter.csr")])
        _run(["x509", "-req", "-in", self.path("inter.csr"), "-CA",
              self.path("root.pem"), "-CAkey", self.path("root.key"),
              "-set_serial", "2", "-days", "1825", "-sha256", "-extfile",
              self.cnf, "-extensions", "v3_inter", "-out",
              self.path("inter.pem")])
        with open(self.path("intermediate.der"), "wb") as f:
            f.write(pem_to_der(self.path("inter.pem")))
        self.inter_sha256 = der_sha256(self.path("inter.pem"))
        # One EC key and CSR shared by the ordinary leaves: key generation
        # is the slow part and key reuse changes nothing under test.
        self._genkey("leaf-ec.key", "ec")
        self._csr("leaf-ec.key", "leaf-ec.csr")
        self._genkey("leaf-rsa1024.key", "rsa1024")
        self._csr("leaf-rsa1024.key", "leaf-rsa1024.csr")
        self._genkey("leaf-rsa2048.key", "rsa2048")
        self._csr("leaf-rsa2048.key", "leaf-rsa2048.csr")
        # A delegated OCSP signer is not needed: the intermediate signs
        # its own responses (rsigner = CA).
        self.created = now

    def path(self, name):
        return os.path.join(self.dir, name)

    def _genkey(self, name, kind):
        if kind == "ec":
            args = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        elif kind == "rsa1024":
            args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]
        elif kind == "rsa2048":
            args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        else:
            raise ValueError(kind)
        _run(["genpkey"] + args + ["-out", self.path(name)])

    def _csr(self, key, out):
        _run(["req", "-config", self.cnf, "-new", "-key", self.path(key),
              "-subj", "/CN=placeholder", "-out", self.path(out)])

    def leaf(self, name, sans=None, not_before=None, not_after=None,
             key="ec", md="sha256", aia=True, self_signed=False):
        """Issues a leaf for CN=name; returns a dict of paths and facts.

        sans: DNS names (default [name]).  not_before/not_after: datetimes
        (default now-1d .. now+90d).  key: "ec", "rsa1024" or "rsa2048".
        md: signature digest ("sha1" for a weak signature).  self_signed:
        a lone self-signed leaf instead of one from the intermediate.
        Returned: cert (leaf PEM), key, chain (leaf + intermediate PEM),
        sha256 (of the leaf DER), inter_sha256, serial (upper-case hex).
        """
        with self._lock:
            self._n += 1
            tag = "%03d-%s" % (self._n, name.replace("*", "_"))
        sans = sans if sans is not None else [name]
        now = utcnow()
        nb = not_before or (now - datetime.timedelta(days=1))
        na = not_after or (now + datetime.timedelta(days=90))
        keyfile = self.path("leaf-%s.key" % key)
        csr = self.path("leaf-%s.csr" % key)
        cert = self.path(tag + ".pem")
        san = ", ".join("DNS:" + s for s in sans) if sans else ""
        if self_signed:
            args = ["req", "-config", self.cnf, "-new", "-x509", "-key",
                    keyfile, "-subj", "/CN=" + name, "-days", "90",
                    "-" + md, "-out", cert,
                    "-addext", "basicConstraints=critical,CA:false",
                    "-addext", "extendedKeyUsage=serverAuth"]
            if san:
                args += ["-addext", "subjectAltName=" + san]
            _run(args)
        else:
            aia_line = ""
            if aia:
                aia_line = ("authorityInfoAccess = caIssuers;URI:%s/"
                            "intermediate.der, OCSP;URI:%s/ocsp" %
                            (self.aia_base, self.aia_base))
            ext = self.path(tag + ".ext")
            with open(ext, "w") as f:
                f.write(_LEAF_EXT.format(san=san, aia=aia_line))
            if not san:
                raise ValueError("a leaf needs at least one SAN")
            # `openssl ca` writes index.txt and serial: one at a time.
            with self._lock:
                with open(self.path("serial")) as f:
                    serial_hex = "serial=" + f.read().strip()
                _run(["ca", "-batch", "-config", self.cnf, "-notext",
                      "-in", csr, "-subj", "/CN=" + name, "-md", md,
                      "-startdate", asn1_time(nb), "-enddate",
                      asn1_time(na), "-extfile", ext, "-extensions",
                      "v3_leaf", "-out", cert])
        chain = self.path(tag + ".chain.pem")
        with open(chain, "w") as out:
            for part in ([cert] if self_signed else
                         [cert, self.path("inter.pem")]):
                with open(part) as f:
                    out.write(f.read())
        serial = _run(["x509", "-in", cert, "-noout", "-serial"]).decode() \
            if self_signed else serial_hex
        return {
            "name": name,
            "cert": cert,
            "key": keyfile,
            "chain": chain,
            "sha256": der_sha256(cert),
            "inter_sha256": self.inter_sha256,
            "serial": serial.strip().split("=", 1)[1].upper(),
        }

    def revoke(self, leaf):
        """Marks leaf revoked in the CA database the OCSP responder reads."""
        with self._lock:
            _run(["ca", "-batch", "-config", self.cnf, "-revoke",
                  leaf["cert"], "-crl_reason", "keyCompromise"])

    def ocsp_args(self):
        """Arguments for `openssl ocsp` answering for the intermediate."""
        return ["-index", self.path("index.txt"), "-CA",
                self.path("inter.pem"), "-rsigner", self.path("inter.pem"),
                "-rkey", self.path("inter.key"), "-ndays", "1"]


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: certs.py DIR [AIA_BASE_URL]\n")
        return 2
    ca = TestCA(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else
                "http://127.0.0.1:8080")
    now = utcnow()
    good = ca.leaf("mta-sts.example.test")
    old = ca.leaf("old.example.test", not_before=now -
                  datetime.timedelta(days=60), not_after=now -
                  datetime.timedelta(days=1))
    ca.revoke(old)
    for leaf in (good, old):
        print(leaf["name"], leaf["chain"], leaf["sha256"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
