"""ARNs in AWS's form, with the region and account from the settings.

arn:aws:states:<region>:<account>:stateMachine:<name>
arn:aws:states:<region>:<account>:stateMachine:<name>:<version>
arn:aws:states:<region>:<account>:execution:<machine>:<name>
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.aws.errors import AwsError
from orchestrator.settings import Settings


@dataclass(frozen=True)
class Arns:
    """Builds and reads the ARNs of one region and account."""

    region: str
    account: str

    @classmethod
    def of(cls, settings: Settings) -> Arns:
        """The ARNs of ``settings`` (``aws_region``, ``aws_account_id``)."""
        return cls(settings.aws_region, settings.aws_account_id)

    @property
    def prefix(self) -> str:
        """``arn:aws:states:<region>:<account>:``."""
        return f"arn:aws:states:{self.region}:{self.account}:"

    def machine(self, name: str, version: int | None = None) -> str:
        """A state machine's ARN, or one of its published versions'."""
        base = f"{self.prefix}stateMachine:{name}"
        return base if version is None else f"{base}:{version}"

    def execution(self, machine: str, name: str) -> str:
        """An execution's ARN."""
        return f"{self.prefix}execution:{machine}:{name}"

    def parse_machine(self, arn: object, field: str = "stateMachineArn") -> tuple[str, int | None]:
        """The name and published version number (None: unqualified) of a machine ARN.

        Raises:
            AwsError: InvalidArn, naming ``field`` and what is wrong.
        """
        rest = self._rest(arn, "stateMachine", field)
        name, _, qualifier = rest.partition(":")
        if not name or (qualifier and not qualifier.isdigit()):
            raise AwsError("InvalidArn", f"Invalid Arn: '{arn}' ({field}: not a state machine)")
        return name, int(qualifier) if qualifier else None

    def parse_execution(self, arn: object, field: str = "executionArn") -> tuple[str, str]:
        """The machine name and execution name of an execution ARN.

        Raises:
            AwsError: InvalidArn, naming ``field`` and what is wrong.
        """
        rest = self._rest(arn, "execution", field)
        machine, _, name = rest.partition(":")
        if not machine or not name or ":" in name:
            raise AwsError("InvalidArn", f"Invalid Arn: '{arn}' ({field}: not an execution)")
        return machine, name

    def _rest(self, arn: object, kind: str, field: str) -> str:
        if not isinstance(arn, str) or not arn:
            raise AwsError("InvalidArn", f"Invalid Arn: {field} must be a non-empty string")
        head = f"{self.prefix}{kind}:"
        if not arn.startswith(head):
            raise AwsError(
                "InvalidArn",
                f"Invalid Arn: '{arn}' ({field} must start with '{head}': "
                f"region {self.region}, account {self.account})",
            )
        return arn[len(head) :]


__all__ = ["Arns"]
