"""The AWS Step Functions JSON 1.0 API, so boto3 and the AWS CLI work unchanged.

``orchestrator api`` serves it at ``POST /`` (``X-Amz-Target:
AWSStepFunctions.<Action>``); :data:`BUILT_ACTIONS` lists what it answers,
anything else is ``UnknownOperationException``.
"""

from orchestrator.aws.actions import ACTIONS
from orchestrator.aws.protocol import CONTENT_TYPE, endpoint

#: The AWS actions this server answers, sorted.
BUILT_ACTIONS = tuple(sorted(ACTIONS))

__all__ = ["BUILT_ACTIONS", "CONTENT_TYPE", "endpoint"]
