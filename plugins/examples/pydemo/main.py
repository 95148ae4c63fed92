"""pydemo, an example portable plugin written with the Oort Python SDK
(plugins/python): the functions py_upper and py_total, the source pycounter and
the sink pyfile. oortd runs it as `<python> main.py` in the unpacked package,
where package.sh has put the SDK (oort_plugin/) beside it.

    SELECT py_upper(name) FROM s
    SELECT py_total(price) FROM s GROUP BY TUMBLINGWINDOW(ss, 10)
    CREATE STREAM ticks () WITH (TYPE="pycounter", DATASOURCE="ticks?interval_ms=50&count=10")
    {"actions": [{"pyfile": {"path": "/tmp/out.jsonl"}}]}
"""

import base64
import datetime
import json
import os
import sys
import time
from urllib.parse import parse_qsl

# The package's own folder first, so its vendored oort_plugin wins even under
# `python -P` / PYTHONSAFEPATH, which leave the script's folder off sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import oort_plugin
except ImportError:  # run from a checkout where the SDK is not installed: use plugins/python/src
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python", "src"))
    import oort_plugin


class Upper(oort_plugin.Function):
    """Upper-cases a string."""

    def validate(self, args):
        return None if len(args) == 1 else f"py_upper takes 1 argument, got {len(args)}"

    def exec(self, args, ctx):
        s = args[0]
        if s is None:
            return None
        if not isinstance(s, str):
            raise TypeError(f"py_upper: expects a string, got {type(s).__name__}")
        return s.upper()


class Total(oort_plugin.Function):
    """Sum of a group's numbers (NULLs skipped)."""

    def validate(self, args):
        return None if len(args) == 1 else f"py_total takes 1 argument, got {len(args)}"

    def exec(self, args, ctx):
        total = 0
        for x in args[0]:  # an aggregate gets the group's values as a list
            if x is None:
                continue
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise TypeError(f"py_total: expects numbers, got {type(x).__name__}")
            total += x
        return total

    def is_aggregate(self):
        return True


OPTIONS = ("interval_ms", "count", "start")


def _options(datasource, conf):
    """The source's options: from the DATASOURCE's query string
    (`ticks?interval_ms=50&count=10`, where an unknown key is an error), then from
    the stream's configuration, whose keys oortd upper-cases and which holds every
    WITH option (TYPE, FORMAT...): only the three known keys are taken from it."""
    opts = {}
    if "?" in datasource:
        for k, v in parse_qsl(datasource.split("?", 1)[1], keep_blank_values=True):
            if k.lower() not in OPTIONS:
                raise ValueError(f"pycounter: unknown option {k!r} in the DATASOURCE; valid are {', '.join(OPTIONS)}")
            opts[k.lower()] = v
    opts.update((k.lower(), v) for k, v in conf.items() if k.lower() in OPTIONS)
    return opts


def _number(opts, key, default, minimum):
    raw = opts.get(key, default)
    if raw is None:
        return None
    try:
        value = int(raw) if not isinstance(raw, float) else raw
    except (TypeError, ValueError):
        raise ValueError(f"pycounter: {key} must be a number, got {raw!r}") from None
    if isinstance(value, bool) or value < minimum:
        raise ValueError(f"pycounter: {key} must be at least {minimum}, got {raw!r}")
    return value


class Counter(oort_plugin.Source):
    """Emits {"n": 0}, {"n": 1}, ... every interval_ms, up to count events."""

    def __init__(self):
        self.interval = 0.1
        self.count = None
        self.start = 0

    def configure(self, datasource, conf):
        opts = _options(datasource, conf)
        self.interval = _number(opts, "interval_ms", 100, 1) / 1000
        self.count = _number(opts, "count", None, 0)
        self.start = _number(opts, "start", 0, -(2**63))

    def open(self, ctx):
        began = time.monotonic()
        i = 0
        while self.count is None or i < self.count:
            ctx.emit({"n": self.start + i})
            i += 1
            # A schedule, not a sleep per event: no drift.
            if ctx.wait(max(0.0, began + i * self.interval - time.monotonic())):
                return
        # All emitted: returning leaves the stream open, idle, until the rule
        # stops reading (like the Rust counter).


def _json_default(x):
    if isinstance(x, datetime.datetime):
        return x.isoformat()
    if isinstance(x, bytes):
        return base64.b64encode(x).decode("ascii")
    raise TypeError(f"{type(x).__name__} is not JSON")


class JsonFile(oort_plugin.Sink):
    """Appends each event's fields to the file at path as one JSON line."""

    def __init__(self):
        self.path = None
        self.file = None

    def configure(self, conf):
        path = conf.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError("pyfile: the property path (a file name) is required")
        self.path = path

    def open(self, ctx):
        self.file = open(self.path, "a", encoding="utf-8")
        ctx.logger.info("pyfile: rule %s appends to %s", ctx.rule_id, self.path)

    def collect(self, ctx, events):
        lines = "".join(json.dumps(e.fields, default=_json_default, sort_keys=True) + "\n" for e in events)
        self.file.write(lines)
        self.file.flush()

    def close(self, ctx):
        if self.file is not None:
            self.file.close()
            self.file = None


PLUGIN = oort_plugin.plugin(
    "pydemo",
    "1.0.0",
    functions={"py_upper": Upper(), "py_total": Total()},
    sources={"pycounter": Counter},
    sinks={"pyfile": JsonFile},
)

if __name__ == "__main__":
    oort_plugin.main(PLUGIN)
