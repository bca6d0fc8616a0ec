#!/usr/bin/env python3
"""promparse.py -- a strict parser of the Prometheus text exposition format
(version 0.0.4), for checking what the collector serves on /metrics.

Usage:
    python3 tests/lib/promparse.py FILE|-        exit 0 and a summary when
                                                 valid, 1 with FILE:LINE:
                                                 reason when not
    python3 tests/lib/promparse.py --allow-untyped FILE
    python3 tests/lib/promparse.py --self-test   checks the parser itself

Importable: parse(text) returns a list of Family; a ParseError carries the
line number and the reason.

It is stricter than Prometheus' own scraper on purpose, so that what it
accepts is accepted by every consumer (Go's expfmt.TextParser, the
Prometheus scrape loop, VictoriaMetrics, the OpenMetrics-leaning ones):

- input is UTF-8 and every line, the last one included, ends with '\\n';
- metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
  [a-zA-Z_][a-zA-Z0-9_]* and do not start with '__' (reserved);
- label values escape only \\\\, \\" and \\n; HELP texts only \\\\ and \\n;
- a value is a decimal float (what strconv.ParseFloat reads, minus hex
  floats and underscores) or exactly +Inf, -Inf, Inf or NaN; a timestamp an
  int64 of milliseconds;
- per family at most one HELP and one TYPE, both before its first sample;
  the samples of a family are contiguous (families are not interleaved);
- no two samples share a name and label set, no sample repeats a label;
- histogram buckets carry le, summary quantiles carry quantile, counters
  are not negative;
- unless allow_untyped, every family has a HELP and a TYPE line (the
  project's own rule for what it exposes).
"""

import math
import re
import sys

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
SPECIAL = {"+Inf": math.inf, "-Inf": -math.inf, "Inf": math.inf,
           "NaN": math.nan}
TIMESTAMP = re.compile(r"-?[0-9]+")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count")}
BLANKS = " \t"


class ParseError(Exception):
    def __init__(self, line, reason):
        super().__init__("line %d: %s" % (line, reason))
        self.line = line
        self.reason = reason


class Sample:
    def __init__(self, name, labels, value, timestamp, line):
        self.name = name
        self.labels = labels  # dict, label name -> value (unescaped)
        self.value = value
        self.timestamp = timestamp
        self.line = line


class Family:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.help = None
        self.samples = []


def parse_value(text, line):
    if text in SPECIAL:
        return SPECIAL[text]
    if FLOAT.fullmatch(text) is None:
        raise ParseError(line, "bad value %r" % text)
    value = float(text)
    if math.isinf(value):
        raise ParseError(line, "value %r out of float64 range" % text)
    return value


class _Line:
    """A cursor over one line (without its '\\n')."""

    def __init__(self, text, number):
        self.s = text
        self.i = 0
        self.n = number

    def blanks(self):
        start = self.i
        while self.i < len(self.s) and self.s[self.i] in BLANKS:
            self.i += 1
        return self.i - start

    def at_end(self):
        return self.i >= len(self.s)

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def match(self, regex, what):
        m = regex.match(self.s, self.i)
        if m is None:
            raise ParseError(self.n, "invalid %s at column %d" %
                             (what, self.i + 1))
        self.i = m.end()
        return m.group(0)

    def token(self):
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in BLANKS:
            self.i += 1
        return self.s[start:self.i]

    def fail(self, reason):
        raise ParseError(self.n, reason)


def _unescape(cur, end, allowed, what):
    """Reads up to the unescaped end character (None: end of line)."""
    out = []
    while True:
        if cur.at_end():
            if end is None:
                return "".join(out)
            cur.fail("unterminated %s" % what)
        ch = cur.s[cur.i]
        cur.i += 1
        if ch == end:
            return "".join(out)
        if ch != "\\":
            out.append(ch)
            continue
        if cur.at_end():
            cur.fail("backslash at the end of a %s" % what)
        esc = cur.s[cur.i]
        cur.i += 1
        if esc not in allowed:
            cur.fail("invalid escape \\%s in a %s" % (esc, what))
        out.append("\n" if esc == "n" else esc)


class Parser:
    def __init__(self, allow_untyped=False):
        self.allow_untyped = allow_untyped
        self.families = {}  # name -> Family, in order of appearance
        self.current = None  # family whose samples came last
        self.closed = set()  # families whose samples are over
        self.series = set()

    def _family(self, name):
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = Family(name)
        return fam

    def _leave_current(self, name):
        if self.current is not None and self.current != name:
            self.closed.add(self.current)
            self.current = None

    def _meta(self, cur, keyword):
        if cur.blanks() == 0 or cur.at_end():
            cur.fail("%s without a metric name" % keyword)
        name = cur.match(METRIC_NAME, "metric name in %s" % keyword)
        if not cur.at_end() and cur.blanks() == 0:
            cur.fail("invalid metric name in %s" % keyword)
        fam = self.families.get(name)
        if fam is not None and (fam.samples or name in self.closed):
            cur.fail("%s for %s after its samples" % (keyword, name))
        self._leave_current(name)
        fam = self._family(name)
        if keyword == "HELP":
            if fam.help is not None:
                cur.fail("second HELP for %s" % name)
            fam.help = _unescape(cur, None, "\\n", "HELP text")
            return
        kind = cur.token()
        cur.blanks()
        if not cur.at_end():
            cur.fail("junk after TYPE %s %s" % (name, kind))
        if kind not in TYPES:
            cur.fail("unknown type %r for %s" % (kind, name))
        if fam.type is not None:
            cur.fail("second TYPE for %s" % name)
        for other in self.families.values():
            if other is fam or other.type not in SUFFIXES:
                continue
            for suffix in SUFFIXES[other.type]:
                if name == other.name + suffix:
                    cur.fail("TYPE %s clashes with %s %s" %
                             (name, other.type, other.name))
        fam.type = kind

    def _owner(self, name):
        """The family a sample name belongs to."""
        fam = self.families.get(name)
        if fam is not None and fam.type != "histogram":
            return fam
        for base, other in self.families.items():
            if other.type in SUFFIXES:
                for suffix in SUFFIXES[other.type]:
                    if name == base + suffix:
                        return other
        if fam is not None:
            return fam  # a histogram's bare name: refused below
        return self._family(name)

    def _labels(self, cur):
        labels = {}
        cur.i += 1  # '{'
        while True:
            cur.blanks()
            if cur.peek() == "}":
                cur.i += 1
                return labels
            lname = cur.match(LABEL_NAME, "label name")
            if lname.startswith("__"):
                cur.fail("reserved label name %s" % lname)
            if lname in labels:
                cur.fail("label %s repeated" % lname)
            cur.blanks()
            if cur.peek() != "=":
                cur.fail("expected '=' after label %s" % lname)
            cur.i += 1
            cur.blanks()
            if cur.peek() != '"':
                cur.fail("expected '\"' to open the value of %s" % lname)
            cur.i += 1
            labels[lname] = _unescape(cur, '"', '\\"n', "label value")
            cur.blanks()
            if cur.peek() == ",":
                cur.i += 1
            elif cur.peek() != "}":
                cur.fail("expected ',' or '}' after label %s" % lname)

    def _sample(self, cur):
        name = cur.match(METRIC_NAME, "metric name")
        labels = {}
        if cur.peek() not in ("{", " ", "\t", ""):
            cur.fail("invalid metric name %r" % (name + cur.token()))
        if cur.peek() == "{":
            labels = self._labels(cur)
        if cur.blanks() == 0 or cur.at_end():
            cur.fail("no value for %s" % name)
        value = parse_value(cur.token(), cur.n)
        timestamp = None
        if cur.blanks() and not cur.at_end():
            text = cur.token()
            if TIMESTAMP.fullmatch(text) is None:
                cur.fail("bad timestamp %r" % text)
            timestamp = int(text)
            if not -2**63 <= timestamp < 2**63:
                cur.fail("timestamp %r out of int64 range" % text)
            cur.blanks()
        if not cur.at_end():
            cur.fail("junk after the value of %s" % name)

        fam = self._owner(name)
        if fam.name in self.closed:
            cur.fail("samples of %s interleaved with another family" %
                     fam.name)
        self._leave_current(fam.name)
        self.current = fam.name
        if fam.type is None and not self.allow_untyped:
            cur.fail("sample %s before any TYPE of its family" % name)
        if fam.help is None and not self.allow_untyped:
            cur.fail("sample %s before any HELP of its family" % name)
        if fam.type == "histogram":
            if name == fam.name:
                cur.fail("histogram %s has no sample of its bare name" %
                         name)
            if name.endswith("_bucket"):
                if "le" not in labels:
                    cur.fail("bucket %s without le" % name)
                parse_value(labels["le"], cur.n)
        if fam.type == "summary" and name == fam.name:
            if "quantile" not in labels:
                cur.fail("summary %s without quantile" % name)
            parse_value(labels["quantile"], cur.n)
        if fam.type == "counter" and value < 0:
            cur.fail("counter %s is negative" % name)
        key = (name, tuple(sorted(labels.items())))
        if key in self.series:
            cur.fail("duplicate series %s%s" % (name, labels))
        self.series.add(key)
        fam.samples.append(Sample(name, labels, value, timestamp, cur.n))

    def feed(self, text):
        if text and not text.endswith("\n"):
            raise ParseError(text.count("\n") + 1,
                             "the last line does not end with '\\n'")
        for number, raw in enumerate(text.split("\n")[:-1], 1):
            cur = _Line(raw, number)
            cur.blanks()
            if cur.at_end():
                continue
            if cur.peek() == "#":
                cur.i += 1
                cur.blanks()
                keyword = cur.token()
                if keyword in ("HELP", "TYPE"):
                    self._meta(cur, keyword)
                continue  # any other comment
            self._sample(cur)
        return list(self.families.values())


def parse(text, allow_untyped=False):
    """Families of an exposition given as str or bytes; ParseError."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            line = text[:e.start].count(b"\n") + 1
            raise ParseError(line, "not UTF-8: %s" % e.reason) from None
    return Parser(allow_untyped).feed(text)


def find(families, name, **labels):
    """The samples named name whose labels include the ones given."""
    out = []
    for fam in families:
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v
                                      for k, v in labels.items()):
                out.append(s)
    return out


# ---- self-test ----

GOOD = (b'# HELP a_total Things, with a \\\\ and a \\n.\n'
        b'# TYPE a_total counter\n'
        b'a_total{x="1",y="q\\"\\\\\\n"} 3\n'
        b'a_total{x="2"} 1.5e3 1700000000000\n'
        b'# a comment\n'
        b'\n'
        b'# HELP b Gauge.\n'
        b'# TYPE b gauge\n'
        b'b +Inf\n'
        b'b{k="v",} NaN\n'
        b'# HELP h A histogram.\n'
        b'# TYPE h histogram\n'
        b'h_bucket{le="1"} 0\n'
        b'h_bucket{le="+Inf"} 2\n'
        b'h_sum 3\n'
        b'h_count 2\n')

# (what, exposition, line refused, part of the reason, allow_untyped)
BAD = [
    ("duplicate TYPE",
     b'# HELP a x\n# TYPE a gauge\n# TYPE a gauge\na 1\n', 3,
     "second TYPE", False),
    ("duplicate HELP",
     b'# HELP a x\n# HELP a y\n# TYPE a gauge\na 1\n', 2, "second HELP",
     False),
    ("bad label escape",
     b'# HELP a x\n# TYPE a gauge\na{l="\\t"} 1\n', 3, "invalid escape",
     False),
    ("unterminated label value",
     b'# HELP a x\n# TYPE a gauge\na{l="x} 1\n', 3, "unterminated", False),
    ("interleaved families",
     b'# HELP a x\n# TYPE a gauge\na{l="1"} 1\n'
     b'# HELP b x\n# TYPE b gauge\nb 1\na{l="2"} 1\n', 7, "interleaved",
     False),
    ("TYPE of another family between samples, interleaved",
     b'# HELP a x\n# TYPE a gauge\na{l="1"} 1\n# HELP b x\n'
     b'# TYPE b gauge\na{l="2"} 1\nb 1\n', 6, "interleaved", False),
    ("sample before the TYPE of its family, another family between",
     b'# HELP a x\n# TYPE a gauge\na 1\nb 2\n# TYPE b gauge\n', 5,
     "after its samples", True),
    ("TYPE after samples",
     b'# HELP a x\na 1\n# TYPE a gauge\n', 3, "after its samples", True),
    ("invalid metric name", b'# HELP 1a x\n# TYPE 1a gauge\n1a 1\n', 1,
     "invalid metric name", False),
    ("invalid metric name in a sample",
     b'# HELP a x\n# TYPE a gauge\na-b 1\n', 3, "invalid metric name",
     False),
    ("invalid label name",
     b'# HELP a x\n# TYPE a gauge\na{1l="x"} 1\n', 3, "label name", False),
    ("reserved label name",
     b'# HELP a x\n# TYPE a gauge\na{__name__="x"} 1\n', 3, "reserved",
     False),
    ("repeated label",
     b'# HELP a x\n# TYPE a gauge\na{l="x",l="y"} 1\n', 3, "repeated",
     False),
    ("bad value", b'# HELP a x\n# TYPE a gauge\na 1,5\n', 3, "bad value",
     False),
    ("bad value spelling", b'# HELP a x\n# TYPE a gauge\na inf\n', 3,
     "bad value", False),
    ("hex value", b'# HELP a x\n# TYPE a gauge\na 0x10\n', 3, "bad value",
     False),
    ("missing value", b'# HELP a x\n# TYPE a gauge\na\n', 3, "no value",
     False),
    ("bad timestamp", b'# HELP a x\n# TYPE a gauge\na 1 1.5\n', 3,
     "bad timestamp", False),
    ("duplicate series",
     b'# HELP a x\n# TYPE a gauge\na{x="1",y="2"} 1\na{y="2",x="1"} 2\n',
     4, "duplicate series", False),
    ("no newline at the end", b'# HELP a x\n# TYPE a gauge\na 1', 3,
     "does not end", False),
    ("unknown type", b'# HELP a x\n# TYPE a gauges\na 1\n', 2,
     "unknown type", False),
    ("no TYPE", b'# HELP a x\na 1\n', 2, "before any TYPE", False),
    ("no HELP", b'# TYPE a gauge\na 1\n', 2, "before any HELP", False),
    ("negative counter",
     b'# HELP a_total x\n# TYPE a_total counter\na_total -1\n', 3,
     "negative", False),
    ("bucket without le",
     b'# HELP h x\n# TYPE h histogram\nh_bucket 1\n', 3, "without le",
     False),
    ("not UTF-8", b'# HELP a x\n# TYPE a gauge\na{l="\xff"} 1\n', 3,
     "not UTF-8", False),
    ("bad HELP escape", b'# HELP a x\\y\n# TYPE a gauge\na 1\n', 1,
     "invalid escape", False),
]


def self_test():
    failed = 0
    try:
        fams = parse(GOOD)
        a = find(fams, "a_total", x="1")
        assert len(fams) == 3, fams
        assert a and a[0].labels["y"] == 'q"\\\n', a[0].labels
        assert fams[0].help == "Things, with a \\ and a \n."
        assert math.isinf(find(fams, "b")[0].value)
        assert find(fams, "a_total", x="2")[0].timestamp == 1700000000000
        assert len(fams[2].samples) == 4
        print("ok   valid exposition accepted")
    except (ParseError, AssertionError) as e:
        print("FAIL valid exposition: %r" % e)
        failed += 1
    for what, text, line, reason, untyped in BAD:
        try:
            parse(text, allow_untyped=untyped)
        except ParseError as e:
            if e.line != line or reason not in e.reason:
                print("FAIL %s: refused at line %d (%s), expected line %d "
                      "(%s)" % (what, e.line, e.reason, line, reason))
                failed += 1
            else:
                print("ok   %s refused: %s" % (what, e))
            continue
        print("FAIL %s: accepted" % what)
        failed += 1
    # The relaxed mode takes what Prometheus takes without metadata.
    try:
        parse(b'a 1\nb{x="y"} 2\n', allow_untyped=True)
        print("ok   untyped samples accepted with allow_untyped")
    except ParseError as e:
        print("FAIL untyped: %s" % e)
        failed += 1
    print("%d passed, %d failed" % (len(BAD) + 2 - failed, failed))
    return 1 if failed else 0


def main(argv):
    allow_untyped = False
    args = argv[1:]
    if args == ["--self-test"]:
        return self_test()
    if args and args[0] == "--allow-untyped":
        allow_untyped = True
        args = args[1:]
    if len(args) != 1:
        sys.stderr.write("usage: promparse.py [--allow-untyped] FILE|-\n"
                         "       promparse.py --self-test\n")
        return 2
    path = args[0]
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        sys.stderr.write("promparse: %s\n" % e)
        return 2
    try:
        fams = parse(data, allow_untyped)
    except ParseError as e:
        print("%s:%d: %s" % (path, e.line, e.reason))
        return 1
    samples = sum(len(f.samples) for f in fams)
    kinds = {}
    for f in fams:
        kinds[f.type or "untyped"] = kinds.get(f.type or "untyped", 0) + 1
    print("%s: valid, %d families (%s), %d samples" %
          (path, len(fams),
           ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())),
           samples))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
