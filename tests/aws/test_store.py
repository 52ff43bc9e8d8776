"""What the AWS API stores beside definitions (store/repository/_aws.py), on both backends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from orchestrator.store import Repository

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def machine(repo: Repository, name: str = "m") -> int:
    info, _, _ = repo.create_or_get_version(name, PASS)
    return info.id


def test_facts_are_created_merged_published_and_revived(repo: Repository) -> None:
    sm = machine(repo)
    assert repo.aws.get_aws_machine(sm) is None
    first = repo.aws.put_aws_machine(sm, role_arn="r1", tags={"a": "1"})
    assert (first.role_arn, first.tags, first.published) == ("r1", {"a": "1"}, ())
    # Tags merge, untag removes, the role changes
    changed = repo.aws.update_aws_machine(sm, role_arn="r2", tags={"b": "2"}, untag=["a"])
    assert (changed.role_arn, changed.tags) == ("r2", {"b": "2"})
    # Publishing numbers versions 1, 2, ...; the newest revision again is the same version
    version = repo.get_version("m").id
    one = repo.aws.publish_aws_version(sm, version, description="first")
    again = repo.aws.publish_aws_version(sm, version, description="again")
    assert one["number"] == again["number"] == 1
    assert [e["number"] for e in repo.aws.get_aws_machine(sm).published] == [1]  # type: ignore[union-attr]
    # Deleting marks it; putting it again revives it without its old tags or versions
    repo.aws.update_aws_machine(sm, deleted_at=datetime.now(UTC))
    revived = repo.aws.put_aws_machine(sm, role_arn="r3", tags={})
    assert (revived.deleted_at, revived.tags, revived.published) == (None, {}, ())


def test_concurrent_first_writes_make_one_row(repo: Repository) -> None:
    sm = machine(repo, "raced")
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(
            pool.map(
                lambda i: repo.aws.put_aws_machine(sm, role_arn="r", tags={f"t{i}": "x"}),
                range(8),
            )
        )
    assert len(done) == 8
    final = repo.aws.get_aws_machine(sm)
    assert final is not None
    assert set(final.tags) == {f"t{i}" for i in range(8)}
