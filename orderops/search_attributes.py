"""Custom search attributes: registered by `orderops server`, set by the workflow."""

from temporalio.common import SearchAttributeKey

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
CURRENT_STEP = SearchAttributeKey.for_keyword("CurrentStep")
PROCESS_ID = SearchAttributeKey.for_keyword("ProcessId")
PROCESS_VERSION = SearchAttributeKey.for_int("ProcessVersion")
PROMISE_AT = SearchAttributeKey.for_datetime("PromiseAt")
SHIP_BY = SearchAttributeKey.for_datetime("ShipBy")
REGION = SearchAttributeKey.for_keyword("Region")
SERVICE_LEVEL = SearchAttributeKey.for_keyword("ServiceLevel")
AT_RISK = SearchAttributeKey.for_bool("AtRisk")
BREACHED = SearchAttributeKey.for_bool("Breached")

ALL = (ORDER_STATUS, CURRENT_STEP, PROCESS_ID, PROCESS_VERSION, PROMISE_AT, SHIP_BY, REGION, SERVICE_LEVEL, AT_RISK, BREACHED)

# Those a task node may set from its result (`search_attributes:` in a definition).
SETTABLE = {key.name: key for key in (PROMISE_AT, SHIP_BY, REGION, SERVICE_LEVEL)}

_CLI_TYPES = {"KEYWORD": "Keyword", "INT": "Int", "DATETIME": "Datetime", "BOOL": "Bool"}


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type.name]}"]
    return flags
