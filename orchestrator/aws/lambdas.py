"""``arn:aws:states:::lambda:invoke``: call the handler its ``FunctionName`` names.

Add ``orchestrator.aws.lambdas`` to ``ORCHESTRATOR_HANDLER_MODULES`` (workers and
the API) and a Task written for AWS,

    "Resource": "arn:aws:states:::lambda:invoke",
    "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:charge",
                   "Payload.$": "$"}

calls the handler registered as ``charge`` (or under the full function ARN) with
the ``Payload``, and returns what AWS's integration returns: ``{"Payload": result,
"StatusCode": 200, ...}``, so ``"OutputPath": "$.Payload"`` works unchanged.
"""

from __future__ import annotations

from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.errors import StatesError
from orchestrator.handlers import HandlerContext, registry, resource_name

#: The resource name of the optimised Lambda integration (``resource_name`` of its ARN).
LAMBDA_INVOKE = "lambda:invoke"


def _function(name: str) -> Any:
    """The handler of a function name, a function ARN or a qualified ARN."""
    short = resource_name(name) if name.startswith("arn:") else name.split(":")[0]
    found = registry.handlers.get(name) or registry.handlers.get(short)
    if found is None:
        raise StatesError(
            "Lambda.ResourceNotFoundException",
            f"Function not found: {name} (register a handler named {short!r})",
        )
    return found


def invoke(data: Any, ctx: HandlerContext) -> dict[str, Any]:
    """Run the handler ``FunctionName`` names on ``Payload``, shaped as Lambda's answer."""
    if not isinstance(data, dict) or not isinstance(data.get("FunctionName"), str):
        raise StatesError(errors.TASK_FAILED, "lambda:invoke needs Parameters.FunctionName")
    fn = _function(data["FunctionName"])
    payload = data.get("Payload")
    result = fn(payload, ctx) if _takes_context(fn) else fn(payload)
    return {
        "ExecutedVersion": "$LATEST",
        "Payload": result,
        "StatusCode": 200,
        "SdkHttpMetadata": {"HttpStatusCode": 200},
    }


def _takes_context(fn: Any) -> bool:
    import inspect

    try:
        return len(inspect.signature(fn).parameters) >= 2
    except (TypeError, ValueError):
        return False


registry.register(LAMBDA_INVOKE, invoke, replace=True)

__all__ = ["LAMBDA_INVOKE", "invoke"]
