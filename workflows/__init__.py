from workflows.order import OrderWorkflow

__all__ = ["OrderWorkflow"]
