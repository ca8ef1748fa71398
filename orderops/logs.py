"""structlog for everything, including the SDK's own (replay-safe) workflow logger.

Workflow code logs from inside Temporal's sandbox, and the handler formats the line right
there: an import made while formatting (structlog imports some of its modules lazily, e.g.
for JSON values it cannot serialise) or a source file read for a traceback is refused, and
the logging module then prints `--- Logging error ---` with a long traceback instead of the
line. So exceptions are rendered here, to one string field `exception`, from the traceback
objects alone inside the sandbox (file, line and function of each frame; no source lines,
no local variables); values JSON has no type for become strings without any import; and
a line that still cannot be formatted becomes a minimal JSON line saying so.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import logging
import sys
import traceback
from types import TracebackType
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger
from temporalio import activity, workflow

# A rendered exception (its chain and frames) is cut here: one log line stays a line.
MAX_EXCEPTION_CHARS = 8000


def _temporal_context(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Lift the order id out of the SDK's log extras so every line carries it."""
    for key in ("temporal_workflow", "temporal_activity"):
        info = event.pop(key, None)
        if isinstance(info, dict) and "workflow_id" in info:
            event.setdefault("order_id", str(info["workflow_id"]).removeprefix("order-"))
            if "attempt" in info:
                event.setdefault("attempt", info["attempt"])
    return event


def _exc_info(value: Any) -> tuple[type[BaseException], BaseException, TracebackType | None] | None:
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value[0], value[1], value[2]
    if value is True:
        kind, err, tb = sys.exc_info()
        return (kind, err, tb) if kind is not None and err is not None else None
    return None


def exception_message(err: BaseException) -> str:
    """`Type: message`; a pydantic validation error by field and reason only, since its text repeats the input."""
    name = type(err).__qualname__
    errors = getattr(err, "errors", None)
    if callable(errors) and type(err).__name__ == "ValidationError":
        try:
            found = errors(include_input=False, include_url=False, include_context=False)
            fields = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())) or 'input'}: {e.get('msg', '')}" for e in found)
            return f"{name}: {len(found)} validation error(s): {fields}"
        except Exception:  # not pydantic's after all: fall through to its text
            pass
    try:
        text = str(err)
    except Exception:  # an exception whose __str__ fails still gets its line
        text = "<message unavailable>"
    return f"{name}: {text}" if text else name


def _frames(tb: TracebackType | None) -> list[str]:
    """Where each frame was, from the traceback objects: no file is read, nothing is imported."""
    lines = []
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}')
        tb = tb.tb_next
    return lines


def render_exception(err: BaseException, tb: TracebackType | None, with_source: bool) -> str:
    """The exception and its causes as text, most recent last, as Python prints them (source lines only outside the sandbox)."""
    chain: list[tuple[BaseException, TracebackType | None, str]] = []
    seen: set[int] = set()
    current: BaseException | None = err
    link = ""
    while current is not None and id(current) not in seen and len(chain) < 10:
        seen.add(id(current))
        chain.append((current, tb if current is err else current.__traceback__, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "The above exception was the direct cause of the following exception:"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "During handling of the above exception, another exception occurred:"
        else:
            current = None
    parts: list[str] = []
    for position, (one, one_tb, _) in enumerate(reversed(chain)):
        if position:
            parts.append(chain[len(chain) - position][2])
        frames: list[str] = []
        if with_source:
            try:
                frames = [line.rstrip("\n") for line in traceback.format_tb(one_tb)]
            except Exception:  # a source file that cannot be read: its location still
                frames = _frames(one_tb)
        else:
            frames = _frames(one_tb)
        if frames:
            parts.append("Traceback (most recent call last):\n" + "\n".join(frames))
        parts.append(exception_message(one))
    text = "\n".join(parts)
    return text if len(text) <= MAX_EXCEPTION_CHARS else text[: MAX_EXCEPTION_CHARS // 2] + "\n...\n" + text[-MAX_EXCEPTION_CHARS // 2 :]


def _in_sandbox() -> bool:
    try:
        return workflow.unsafe.in_sandbox()
    except Exception:  # not knowing means being careful
        return True


def exception_field(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """`exc_info` (True, a tuple or an exception) as the string field `exception`, which both renderers print."""
    info = _exc_info(event.pop("exc_info", None))
    if info is not None:
        event["exception"] = render_exception(info[1], info[2], with_source=not _in_sandbox())
    elif isinstance(event.get("exception"), BaseException):
        err = event["exception"]
        event["exception"] = render_exception(err, err.__traceback__, with_source=not _in_sandbox())
    return event


def json_value(value: Any) -> Any:
    """A value JSON has no type for, as a string: no lazy import, no repr of models that may hold customer data."""
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return json_value(value.value) if isinstance(value.value, str | int | float | bool) else value.name
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, BaseException):
        return exception_message(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    try:
        module = type(value).__module__
        if module in ("decimal", "pathlib", "uuid", "ipaddress", "fractions"):
            return str(value)
    except Exception:
        pass
    return f"<{type(value).__qualname__}>"


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """ProcessorFormatter that never fails a line: whatever goes wrong, one line still comes out."""

    def __init__(self, *args: Any, fallback_json: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fallback_json = fallback_json

    def format(self, record: logging.LogRecord) -> str:
        try:
            return super().format(record)
        except Exception as err:  # the line is reported instead of `--- Logging error ---`
            try:
                message = record.msg.get("event") if isinstance(record.msg, dict) else record.getMessage()
            except Exception:
                message = str(record.msg)
            fields = {
                "event": str(message),
                "level": record.levelname.lower(),
                "logger": record.name,
                "log_error": exception_message(err),
            }
            if self._fallback_json:
                return json.dumps(fields, default=str)
            return " ".join(f"{k}={v!r}" for k, v in fields.items())


def configure(log_format: str = "console", level: str = "info") -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    json_lines = log_format == "json"
    renderer = (
        structlog.processors.JSONRenderer(default=json_value)
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _Formatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _temporal_context],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, exception_field, renderer],
            fallback_json=json_lines,
        )
    )
    # The order id and attempt go in fields of their own, not appended to the message.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Every request the CLI sends the console would be a line: only its failures are news (one line, from the command).
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))
    # Alembic names every plugin it loads and every migration it runs; `orderops store upgrade` says what it did.
    logging.getLogger("alembic").setLevel(max(root.level, logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
