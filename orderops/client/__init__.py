"""The client API (layer 3): one OrderClient the CLI, the demo, the tests and the console share."""

from orderops.client.api import EventDelivery, OrderClient, OrderSummary, Restock
from orderops.client.errors import ClientError, InvalidRequest, NoWorker
from orderops.client.visibility import OrderQuery, literal

__all__ = ["ClientError", "EventDelivery", "InvalidRequest", "NoWorker", "OrderClient", "OrderQuery", "OrderSummary", "Restock", "literal"]
