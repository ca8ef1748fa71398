"""Custom search attributes: registered by `orderops server`, set by the workflow."""

from temporalio.common import SearchAttributeKey

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
CURRENT_STEP = SearchAttributeKey.for_keyword("CurrentStep")
PROCESS_ID = SearchAttributeKey.for_keyword("ProcessId")
PROCESS_VERSION = SearchAttributeKey.for_int("ProcessVersion")

ALL = (ORDER_STATUS, CURRENT_STEP, PROCESS_ID, PROCESS_VERSION)

_CLI_TYPES = {"KEYWORD": "Keyword", "INT": "Int"}


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type.name]}"]
    return flags
