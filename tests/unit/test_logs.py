"""orderops.logs: every event one line, exceptions rendered into a field, no customer input echoed."""

from __future__ import annotations

import io
import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest
import structlog
from pydantic import BaseModel, ValidationError

from orderops import logs


class Customer(BaseModel):
    name: str
    phone: int


@pytest.fixture
def configured():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    buffer = io.StringIO()

    def configure(log_format: str) -> io.StringIO:
        logs.configure(log_format, "info")
        [handler] = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(buffer)
        return buffer

    try:
        yield configure
    finally:
        root.handlers[:], level, config = saved
        root.setLevel(level)
        structlog.configure(**config)


def one_json_line(buffer: io.StringIO) -> dict:
    text = buffer.getvalue()
    assert "--- Logging error ---" not in text
    [line] = text.splitlines()
    return json.loads(line)


def test_stdlib_exception_is_one_json_line_with_its_traceback(configured):
    buffer = configured("json")
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("orderops.test").exception("lookup failed", extra={"node": "n1"})
    event = one_json_line(buffer)
    assert (event["event"], event["level"], event["node"]) == ("lookup failed", "error", "n1")
    assert event["exception"].startswith("Traceback (most recent call last):\n")
    assert event["exception"].endswith("KeyError: 'missing'")
    assert '{}["missing"]' in event["exception"]  # outside the sandbox, source lines too


def test_structlog_exception_is_one_json_line(configured):
    buffer = configured("json")
    try:
        raise RuntimeError("carrier down")
    except RuntimeError:
        structlog.get_logger().exception("booking failed", carrier="sf")
    event = one_json_line(buffer)
    assert event["carrier"] == "sf"
    assert event["exception"].endswith("RuntimeError: carrier down")


def test_validation_error_names_fields_not_the_customer_input(configured):
    buffer = configured("json")
    data = {"name": 7, "phone": "Li Wei 88 Century Avenue"}
    try:
        Customer.model_validate(data)
    except ValidationError:
        logging.getLogger("orderops.test").exception("bad order")
    event = one_json_line(buffer)
    assert "Li Wei" not in buffer.getvalue()
    assert "ValidationError: 2 validation error(s): name: " in event["exception"]
    assert "phone: " in event["exception"]


def test_values_json_has_no_type_for_become_strings_without_repr(configured):
    buffer = configured("json")
    customer = Customer(name="Li Wei", phone=13800138001)
    logging.getLogger("orderops.test").warning(
        "odd values",
        extra={"amount": Decimal("68.00"), "path": Path("/tmp/x"), "skus": {"TEA-001"}, "model": customer, "err": ValueError("x")},
    )
    event = one_json_line(buffer)
    assert (event["amount"], event["path"], event["skus"], event["err"]) == ("68.00", "/tmp/x", ["TEA-001"], "ValueError: x")
    assert event["model"] == "<Customer>"
    assert "Li Wei" not in buffer.getvalue()


def test_a_line_that_cannot_be_formatted_is_still_one_json_line(configured):
    buffer = configured("json")

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    logging.getLogger("orderops.test").error("a %s b %s", Hostile(), 1)  # getMessage() itself fails
    event = one_json_line(buffer)
    assert event["level"] == "error"
    assert event["log_error"] == "RuntimeError: no text"


def test_rendering_without_source_reads_no_file_and_keeps_the_chain():
    try:
        try:
            raise OSError("disk")
        except OSError as err:
            raise ValueError("step") from err
    except ValueError as err:
        text = logs.render_exception(err, err.__traceback__, with_source=False)
    assert text.index("OSError: disk") < text.index("direct cause") < text.index("ValueError: step")
    assert 'raise ValueError("step")' not in text  # locations only
    assert 'test_logs.py", line' in text


def test_console_format_prints_the_exception_after_the_line(configured):
    buffer = configured("console")
    try:
        raise RuntimeError("carrier down")
    except RuntimeError:
        logging.getLogger("orderops.test").exception("booking failed", extra={"node": "book"})
    text = buffer.getvalue()
    first, *rest = text.splitlines()
    assert "booking failed" in first and "node=book" in first
    assert rest[-1] == "RuntimeError: carrier down"
