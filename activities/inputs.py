"""Activity arguments, validated with pydantic like every other boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from temporalio.exceptions import ApplicationError

from orderops.order import Order

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], payload: dict) -> M:
    """Bad arguments come from the definition, not from a passing fault: never retry them."""
    try:
        return model.model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApplicationError(
            f"invalid activity input at {where}: {first['msg']}", type="InvalidInput", non_retryable=True
        ) from None


class OrderArgs(BaseModel):
    """Most steps need only the order; extra mapped values (like `result`) are ignored."""

    model_config = ConfigDict(extra="ignore")

    order: Order

    @field_validator("order", mode="before")
    @classmethod
    def _drop_derived(cls, value):
        # The workflow hands activities the order as CEL sees it, amount included.
        return {k: v for k, v in value.items() if k != "amount"} if isinstance(value, dict) else value


class ReviewRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_limit: float = Field(20000, gt=0, description="Orders above this amount need a person")
    duplicate_window_hours: float = Field(24, ge=0)
    phone_pattern: str = Field(r"^1[3-9]\d{9}$", description="Mainland mobile numbers by default")
    require_payment: bool = True


class ReviewArgs(OrderArgs):
    rules: ReviewRules = ReviewRules()


class NotifyArgs(OrderArgs):
    kind: str = Field(min_length=1)
    channel: str = "sms"


class DeliveryArgs(OrderArgs):
    delivery: dict[str, Any] = Field(default_factory=dict)
    delivered_at: datetime = Field(description="When the sign-off event reached the order (workflow time)")


class Feedback(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str = ""


class FeedbackArgs(OrderArgs):
    feedback: Feedback


class PromiseArgs(OrderArgs):
    policy: dict[str, Any]
    accepted_at: datetime


class OpsNoticeArgs(OrderArgs):
    kind: str = Field(min_length=1)
    message: str = Field(min_length=1)


class DelayArgs(OrderArgs):
    promise: dict[str, Any]
    policy: dict[str, Any]
    delivered_at: datetime
