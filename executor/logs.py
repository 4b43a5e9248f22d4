"""Logging the way kaniko's logrus set-up prints it, plus secret redaction.

`configure(verbosity, log_format, log_timestamp)` installs one handler on the root logger, writing
to stderr:

* ``color`` (kaniko's default): ``INFO[0003] Retrieving image manifest alpine`` -- the level in
  ANSI colour when stderr is a terminal, the same layout without escape codes otherwise;
  with ``--log-timestamp`` the bracket holds an RFC 3339 time instead of seconds since start;
* ``text``: logrus' key=value lines, ``time="..." level=info msg="..."`` (logrus always prints
  the time in this format);
* ``json``: one object a line, ``{"level":"info","msg":"...","time":"..."}``.

Levels: panic > fatal > error > warn > info > debug > trace; trace is `TRACE` (5), below DEBUG.

Redaction: `REDACTOR` is a `logging.Filter` on the handler. Anything registered with
`register_secret(value)` is replaced by ``***`` in every message and traceback before it is
formatted. Values shorter than `MIN_SECRET_LENGTH` characters are not registered: masking every
"1" or "on" in the log would make it unreadable while hiding nothing.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime
from typing import Iterable, TextIO

__all__ = [
    "LEVELS",
    "MIN_SECRET_LENGTH",
    "PANIC",
    "REDACTOR",
    "TRACE",
    "JsonFormatter",
    "SecretRedactor",
    "TextFormatter",
    "configure",
    "level_name",
    "parse_level",
    "register_secret",
    "register_secrets",
]

TRACE = 5
PANIC = logging.CRITICAL + 10
logging.addLevelName(TRACE, "TRACE")
logging.addLevelName(PANIC, "PANIC")

LEVELS: dict[str, int] = {
    "panic": PANIC,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

MIN_SECRET_LENGTH = 3
MASK = "***"
_START = time.time()  # logrus prints seconds since the logger was created
_HANDLER_NAME = "kiln"


def parse_level(name: str) -> int:
    """logrus.ParseLevel: a level name (any case) to its `logging` number."""
    try:
        return LEVELS[name.lower()]
    except KeyError:
        raise ValueError(
            f'not a valid log level: "{name}"; use one of panic, fatal, error, warn, info, debug, trace'
        ) from None


def level_name(levelno: int) -> str:
    """The logrus name for a `logging` level number ("warning" for WARNING, as logrus prints it)."""
    if levelno >= PANIC:
        return "panic"
    if levelno >= logging.CRITICAL:
        return "fatal"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


# --------------------------------------------------------------------------------------------
# Redaction


class SecretRedactor(logging.Filter):
    """Replaces registered secret values with ``***`` in log records (message, args, tracebacks)."""

    def __init__(self, min_length: int = MIN_SECRET_LENGTH) -> None:
        super().__init__()
        self.min_length = min_length
        self._values: set[str] = set()
        self._ordered: list[str] = []
        self._lock = threading.Lock()

    def register_value(self, value: str) -> bool:
        """Register a value and, for a multi-line one, each of its lines (stripped). Returns False when
        the whole value was too short to be redacted."""
        ok = self.register(value)
        stripped = value.strip()
        if stripped != value:
            ok = self.register(stripped) or ok
        if "\n" in stripped:
            for line in stripped.splitlines():
                self.register(line.strip())
        return ok

    def register(self, value: str) -> bool:
        """Register one value; returns False when it is too short to be redacted."""
        if not value or len(value) < self.min_length:
            return False
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._ordered = sorted(self._values, key=len, reverse=True)  # longest first
        return True

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._ordered = []

    def redact(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._ordered:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


REDACTOR = SecretRedactor()


def register_secret(value: str) -> bool:
    """Register a value the log must never show (a secret, a secret-looking build arg's value). Also
    registers each line of a multi-line value. Returns False when the whole value was too short."""
    return REDACTOR.register_value(value)


def register_secrets(values: Iterable[str]) -> None:
    for value in values:
        register_secret(value)


# --------------------------------------------------------------------------------------------
# Formatters


def _rfc3339(created: float) -> str:
    """Go's time.RFC3339 in local time: 2006-01-02T15:04:05Z07:00."""
    stamp = datetime.fromtimestamp(created).astimezone()
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S%z")
    if text.endswith("+0000"):
        return text[:-5] + "Z"
    return text[:-2] + ":" + text[-2:]


def _go_quote(text: str) -> str:
    """strconv.Quote, as logrus quotes values with %q."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")


def _logfmt_value(text: str) -> str:
    if text and all(ch in _BARE for ch in text):
        return text
    return _go_quote(text)


_COLORS = {"panic": 31, "fatal": 31, "error": 31, "warning": 33, "info": 36, "debug": 37, "trace": 37}


def _message(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if text.endswith("\n"):
        text = text[:-1]
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        text = f"{text}\n{record.exc_text}"
    if record.stack_info:
        text = f"{text}\n{record.stack_info}"
    return text


class TextFormatter(logging.Formatter):
    """logrus' TextFormatter: coloured/plain ``LEVL[0000] msg`` or key=value ``text`` lines."""

    def __init__(self, *, layout: str = "color", colors: bool = False, full_timestamp: bool = False,
                 start: float | None = None) -> None:
        super().__init__()
        if layout not in ("color", "text"):
            raise ValueError(f"unknown text layout {layout!r}")
        self.layout = layout
        self.colors = colors
        self.full_timestamp = full_timestamp
        self.start = _START if start is None else start

    def format(self, record: logging.LogRecord) -> str:
        level = level_name(record.levelno)
        msg = _message(record)
        if self.layout == "text":
            return (f"time={_logfmt_value(_rfc3339(record.created))} level={level} "
                    f"msg={_logfmt_value(msg)}")
        tag = level.upper()[:4]
        if self.colors:
            tag = f"\x1b[{_COLORS[level]}m{tag}\x1b[0m"
        when = _rfc3339(record.created) if self.full_timestamp else f"{int(record.created - self.start):04d}"
        return f"{tag}[{when}] {msg:<44} "


class JsonFormatter(logging.Formatter):
    """logrus' JSONFormatter: {"level":..., "msg":..., "time":...}, keys sorted, HTML-escaped."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": level_name(record.levelno), "msg": record.getMessage(), "time": _rfc3339(record.created)}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            entry["stack"] = record.exc_text
        text = json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def configure(verbosity: str = "info", log_format: str = "color", log_timestamp: bool = False,
              stream: TextIO | None = None) -> logging.Handler:
    """Install kiln's single log handler on the root logger (replacing an earlier one).

    Raises ValueError naming the bad level or format. Colour is used only when the stream is a
    terminal. HTTP libraries are held at WARNING unless the level is trace.
    """
    level = parse_level(verbosity)
    stream = sys.stderr if stream is None else stream
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter()
    elif log_format == "text":
        formatter = TextFormatter(layout="text", full_timestamp=log_timestamp)
    elif log_format == "color":
        formatter = TextFormatter(layout="color", colors=_is_tty(stream), full_timestamp=log_timestamp)
    else:
        raise ValueError(f'not a valid log format: "{log_format}". Please specify one of (text, color, json)')
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    handler.addFilter(REDACTOR)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    noisy = logging.NOTSET if level <= TRACE else logging.WARNING
    for name in ("urllib3", "requests", "dulwich"):
        logging.getLogger(name).setLevel(noisy)
    return handler
