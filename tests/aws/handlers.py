"""Test-only handlers loaded into the API and worker subprocesses of tests/aws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orchestrator.aws.lambdas  # noqa: F401  # registers lambda:invoke
from orchestrator.handlers import HandlerContext, handler


@handler("double")
def double(data: Any) -> Any:
    """``{"n": 2}`` -> ``{"n": 4}`` (registered as a Lambda function name)."""
    return {"n": data["n"] * 2}


@handler("explode")
def explode(data: Any) -> Any:
    """Always fails: a custom error for Catch."""
    raise RuntimeError("the handler exploded")


@handler("aws-tests.callback.waitForTaskToken")
def callback(data: Any, ctx: HandlerContext) -> None:
    """Hand the token out through the file the input names."""
    Path(data["outbox"]).write_text(data["token"])


@handler("AddressFinder")
def address_finder(data: Any) -> Any:
    """The AWS developer guide's Parallel sample calls this Lambda function."""
    return {"address": "1 Main St"}


@handler("PhoneFinder")
def phone_finder(data: Any) -> Any:
    """The AWS developer guide's Parallel sample calls this Lambda function."""
    return {"phone": "555-0100"}


class CustomError(Exception):
    """The custom error of the AWS developer guide's Catch sample."""


@handler("FailFunction")
def fail_function(data: Any) -> Any:
    """The AWS developer guide's Catch sample calls this Lambda function; it fails."""
    raise CustomError("This is a custom error!")
