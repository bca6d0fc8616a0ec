"""lab.py -- every server of the integration zone in one Python process.

Reads a JSON config (see LISTENER KINDS below) naming loopback listeners,
binds them all, prints the fixed line "lab ready" on stdout and serves until
SIGTERM or SIGINT, after which it closes its sockets and exits 0.  Each
connection is served by its own thread with bounded reads and timeouts, so a
misbehaving client can hold nothing forever.

  python3 lab.py CONFIG.json

Config:
  {"log": "PATH",                 # one line per event, flushed at once
   "listeners": [{"ip": "127.0.3.4", "port": N, "kind": KIND, ...}]}

LISTENER KINDS
  https   TLS then HTTP.  "tls": {"chain", "key", "min", "max", "ciphers"};
          "http": {"status", "reason", "headers": [[k, v]], "body",
          "pad": N (N more bytes of "#" lines), "chunked": bool}.  Only
          GET /.well-known/mta-sts.txt gets that response; anything else 404.
  http    The same without TLS (a policy host that forgot TLS).
  smtp    ESMTP: "smtp": {"banner" (may hold CRLFs for a multi-line 220),
          "ehlo": [keywords], "starttls": bool, "split": one write per line};
          STARTTLS switches to "tls" and the dialogue goes on.
  tarpit  Accepts, reads and discards, never answers.
  aux     Plain HTTP for AIA and OCSP: "files": {"/path": [file, type]},
          "ocsp": {"openssl": "openssl", "args": [...]} answers POST /ocsp
          and GET /ocsp/BASE64 by running `openssl ocsp ... -reqin -respout`.

Every address must be loopback (127.0.0.0/8 or ::1); anything else is refused
before a single socket is bound.
"""

import base64
import ipaddress
import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

MAX_HEADER = 16 * 1024
MAX_BODY = 64 * 1024
MAX_LINE = 1000
MAX_COMMANDS = 50
IO_TIMEOUT = 15.0
TARPIT_HOLD = 120.0

_log_lock = threading.Lock()
_log_file = None
_ocsp_lock = threading.Lock()


def log(fmt, *args):
    line = (fmt % args) if args else fmt
    with _log_lock:
        if _log_file is not None:
            _log_file.write("%.3f %s\n" % (time.time(), line))
            _log_file.flush()


TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1 if hasattr(ssl.TLSVersion, "TLSv1")
    else None,
    "TLSv1_1": getattr(ssl.TLSVersion, "TLSv1_1", None),
    "TLSv1_2": ssl.TLSVersion.TLSv1_2,
    "TLSv1_3": ssl.TLSVersion.TLSv1_3,
}


def make_context(tls):
    """A server SSLContext from a listener's "tls" block."""
    import warnings
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # The cipher string (and with it the security level) must be set
    # before the certificate is loaded: a 1024-bit RSA key or a SHA-1
    # signature is refused at load time under the default level.
    if tls.get("ciphers"):
        ctx.set_ciphers(tls["ciphers"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if tls.get("min"):
            ctx.minimum_version = TLS_VERSIONS[tls["min"]]
        if tls.get("max"):
            ctx.maximum_version = TLS_VERSIONS[tls["max"]]
    ctx.load_cert_chain(tls["chain"], tls["key"])

    def on_sni(sslsock, server_name, _ctx):
        try:
            sslsock.lab_sni = server_name
        except AttributeError:
            pass
        return None

    ctx.sni_callback = on_sni
    return ctx


def tls_wrap(ctx, conn, who):
    """Server-side handshake; returns the TLS socket or None (logged)."""
    try:
        tconn = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as e:
        log("tls-fail %s err=%s", who, str(e).replace(" ", "_")[:200])
        return None
    log("tls %s version=%s cipher=%s sni=%s", who, tconn.version(),
        (tconn.cipher() or ("?",))[0], getattr(tconn, "lab_sni", None) or "-")
    return tconn


def read_until(conn, marker, limit):
    """Reads until marker; returns (head, rest) or (None, b"") past limit."""
    buf = b""
    while marker not in buf:
        if len(buf) > limit:
            return None, b""
        chunk = conn.recv(4096)
        if not chunk:
            return None, b""
        buf += chunk
    head, _, rest = buf.partition(marker)
    return head, rest


def looks_like_http(conn):
    """Peeks at the first bytes: an HTTP request starts with a method.

    A real server answers 400 at once to a TLS ClientHello on a plain port
    instead of waiting for a blank line that never comes; so does the lab.
    """
    if isinstance(conn, ssl.SSLSocket):
        return True
    first = conn.recv(1, socket.MSG_PEEK)
    return bool(first) and first.isalpha() and first.isupper()


def read_http_request(conn):
    """Returns (method, target, headers dict, body) or None."""
    if not looks_like_http(conn):
        try:
            send_response(conn, 400, "Bad Request",
                          [("Content-Type", "text/plain")], b"bad request\n")
        except OSError:
            pass
        return None
    head, rest = read_until(conn, b"\r\n\r\n", MAX_HEADER)
    if head is None:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if sep:
            headers[k.strip().lower()] = v.strip()
    body = rest
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return None
    if length < 0 or length > MAX_BODY:
        return None
    while len(body) < length:
        chunk = conn.recv(min(65536, length - len(body)))
        if not chunk:
            return None
        body += chunk
    return parts[0], parts[1], headers, body[:length]


def send_response(conn, status, reason, headers, body, chunked=False):
    out = ["HTTP/1.1 %d %s" % (status, reason)]
    names = {k.lower() for k, _ in headers}
    for k, v in headers:
        out.append("%s: %s" % (k, v))
    if chunked:
        out.append("Transfer-Encoding: chunked")
    elif "content-length" not in names:
        out.append("Content-Length: %d" % len(body))
    out.append("Connection: close")
    conn.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
    if not chunked:
        conn.sendall(body)
        return
    for i in range(0, len(body), 4096):
        piece = body[i:i + 4096]
        conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    conn.sendall(b"0\r\n\r\n")


def policy_body(http):
    body = http.get("body", "").encode()
    pad = int(http.get("pad", 0))
    if pad:
        line = b"# " + b"x" * 61 + b"\n"
        body += (line * (pad // len(line) + 1))[:pad]
    return body


def serve_http(conn, lst, who):
    req = read_http_request(conn)
    if req is None:
        log("http-bad %s", who)
        return
    method, target, headers, _ = req
    log("http %s method=%s path=%s host=%s ua=%s", who, method, target,
        headers.get("host", "-"), headers.get("user-agent", "-")
        .replace(" ", "_"))
    http = lst.get("http", {})
    if method == "GET" and target == "/.well-known/mta-sts.txt":
        send_response(conn, int(http.get("status", 200)),
                      http.get("reason", "OK"),
                      [tuple(h) for h in http.get("headers", [])],
                      policy_body(http), bool(http.get("chunked")))
    else:
        send_response(conn, 404, "Not Found",
                      [("Content-Type", "text/plain")], b"not here\n")


def run_ocsp(ocsp, der):
    """Answers one DER OCSP request with a real `openssl ocsp`."""
    with _ocsp_lock, tempfile.TemporaryDirectory() as tmp:
        req = os.path.join(tmp, "req.der")
        resp = os.path.join(tmp, "resp.der")
        with open(req, "wb") as f:
            f.write(der)
        proc = subprocess.run(
            [ocsp.get("openssl", "openssl"), "ocsp"] + ocsp["args"] +
            ["-reqin", req, "-respout", resp],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        if proc.returncode != 0 or not os.path.exists(resp):
            log("ocsp-fail rc=%d err=%s", proc.returncode,
                proc.stderr.decode(errors="replace").replace("\n", "|")[:300])
            return None
        with open(resp, "rb") as f:
            return f.read()


def serve_aux(conn, lst, who):
    req = read_http_request(conn)
    if req is None:
        log("aux-bad %s", who)
        return
    method, target, _, body = req
    path = urllib.parse.urlsplit(target).path
    log("aux %s method=%s path=%s len=%d", who, method, path, len(body))
    files = lst.get("files", {})
    if method == "GET" and path in files:
        fname, ctype = files[path]
        with open(fname, "rb") as f:
            data = f.read()
        send_response(conn, 200, "OK", [("Content-Type", ctype)], data)
        return
    der = None
    if "ocsp" in lst and method == "POST" and path.rstrip("/") in ("/ocsp",
                                                                    ""):
        der = body
    elif "ocsp" in lst and method == "GET" and path.startswith("/ocsp/"):
        try:
            der = base64.b64decode(urllib.parse.unquote(path[6:]))
        except ValueError:
            der = None
    if der:
        resp = run_ocsp(lst["ocsp"], der)
        if resp is not None:
            log("ocsp-answered %s bytes=%d", who, len(resp))
            send_response(conn, 200, "OK",
                          [("Content-Type", "application/ocsp-response")],
                          resp)
            return
        send_response(conn, 500, "Internal Server Error", [], b"")
        return
    send_response(conn, 404, "Not Found", [("Content-Type", "text/plain")],
                  b"not here\n")


class LineReader:
    """Bounded CRLF line reader over a (possibly TLS) socket."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                return None
            chunk = self.conn.recv(1024)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("latin-1")


def serve_smtp(conn, lst, who):
    smtp = lst.get("smtp", {})
    name = lst.get("name", "lab.test")
    conn.sendall(("%s\r\n" % smtp.get("banner", "220 %s ESMTP lab" % name))
                 .encode())
    reader = LineReader(conn)
    in_tls = False
    for _ in range(MAX_COMMANDS):
        line = reader.line()
        if line is None:
            return
        verb = line.split(" ", 1)[0].upper()
        log("smtp %s tls=%d cmd=%s", who, int(in_tls), verb)
        if verb == "EHLO":
            kws = list(smtp.get("ehlo", []))
            if in_tls:
                kws = [k for k in kws if k.upper() != "STARTTLS"]
            lines = ["%s greets you" % name] + kws
            out = ["250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", l)
                   for i, l in enumerate(lines)]
            if smtp.get("split"):
                # One segment per line: the reader must reassemble.
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for piece in out:
                    conn.sendall(piece.encode())
            else:
                conn.sendall("".join(out).encode())
        elif verb == "HELO":
            conn.sendall(("250 %s\r\n" % name).encode())
        elif verb == "STARTTLS" and smtp.get("starttls") and not in_tls:
            if reader.buf:
                # Pipelined bytes after STARTTLS are an injection attempt.
                conn.sendall(b"554 5.5.1 no pipelining into TLS\r\n")
                return
            conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
            tconn = tls_wrap(lst["_ctx"], conn, who)
            if tconn is None:
                return
            conn = tconn
            reader = LineReader(conn)
            in_tls = True
        elif verb in ("NOOP", "RSET"):
            conn.sendall(b"250 2.0.0 OK\r\n")
        elif verb == "QUIT":
            conn.sendall(b"221 2.0.0 Bye\r\n")
            return
        else:
            conn.sendall(b"502 5.5.2 not in this lab\r\n")


def serve_tarpit(conn, lst, who):
    conn.settimeout(1.0)
    deadline = time.monotonic() + TARPIT_HOLD
    got = 0
    while time.monotonic() < deadline and not STOP.is_set():
        try:
            chunk = conn.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            break
        got += len(chunk)
    log("tarpit-done %s bytes=%d", who, got)


STOP = threading.Event()


def handle(conn, peer, lst):
    who = "ip=%s port=%d name=%s peer=%s" % (
        lst["ip"], lst["port"], lst.get("name", "-"), peer[0])
    kind = lst["kind"]
    log("accept %s kind=%s", who, kind)
    conn.settimeout(IO_TIMEOUT)
    try:
        if kind == "https":
            tconn = tls_wrap(lst["_ctx"], conn, who)
            if tconn is not None:
                conn = tconn
                serve_http(conn, lst, who)
        elif kind == "http":
            serve_http(conn, lst, who)
        elif kind == "smtp":
            serve_smtp(conn, lst, who)
        elif kind == "tarpit":
            serve_tarpit(conn, lst, who)
        elif kind == "aux":
            serve_aux(conn, lst, who)
    except (OSError, ssl.SSLError, ValueError) as e:
        log("conn-error %s err=%s", who, str(e).replace(" ", "_")[:200])
    finally:
        try:
            conn.close()
        except OSError:
            pass


def check_loopback(ip):
    addr = ipaddress.ip_address(ip)
    if not addr.is_loopback:
        raise SystemExit("lab: refusing non-loopback address %s" % ip)


def bind(lst):
    ip = lst["ip"]
    check_loopback(ip)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((ip, lst["port"]))
    s.listen(64)
    s.setblocking(False)
    return s


def main():
    global _log_file
    if len(sys.argv) != 2:
        sys.stderr.write("usage: lab.py CONFIG.json\n")
        return 2
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    _log_file = open(cfg["log"], "a") if cfg.get("log") else sys.stderr
    listeners = cfg["listeners"]
    for lst in listeners:
        check_loopback(lst["ip"])
    for lst in listeners:
        if "tls" in lst:
            lst["_ctx"] = make_context(lst["tls"])
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for lst in listeners:
            try:
                s = bind(lst)
            except OSError as e:
                sys.stderr.write("lab: bind %s:%d: %s\n" %
                                 (lst["ip"], lst["port"], e))
                return 3
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, lst)

        def on_signal(_sig, _frame):
            STOP.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        log("ready listeners=%d", len(socks))
        sys.stdout.write("lab ready\n")
        sys.stdout.flush()
        while not STOP.is_set():
            for key, _ in sel.select(timeout=0.2):
                try:
                    conn, peer = key.fileobj.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    log("accept-error err=%s", e)
                    continue
                conn.setblocking(True)
                t = threading.Thread(target=handle,
                                     args=(conn, peer, key.data),
                                     daemon=True)
                t.start()
    finally:
        for s in socks:
            s.close()
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
