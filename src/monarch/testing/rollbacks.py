"""The ready check: does every rollback put the data back as it found it?

For each pending migration, in order: digest the data, migrate it, and where it has a
rollback, roll it back, digest again and compare, then migrate it again (which also proves it
runs cleanly on top of its own rollback). The first rollback that does not restore the data
ends the check: what runs after it would run on data the project never has. The digests are
:meth:`Engine.fingerprint`'s: per collection (table), its count and a hash of its content
(indexes and columns too), monarch's bookkeeping left out.

::

    def test_rollbacks_restore_the_data(monarch_db):
        assert_rollbacks_restore(monarch_db)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from monarch.engines.base import differing

if TYPE_CHECKING:
    from monarch.engines.base import Fingerprint
    from monarch.testing.database import ScratchDatabase


@dataclass(frozen=True)
class Difference:
    """One collection (table) whose data a rollback did not restore: its document (row) count
    before the migration and after its rollback (None: it did not exist)."""

    collection: str
    before: int | None
    after: int | None

    def describe(self) -> str:
        if self.before is None:
            return f"{self.collection}: did not exist before, has {self.after} after the rollback"
        if self.after is None:
            return f"{self.collection}: had {self.before} before, is gone after the rollback"
        if self.before != self.after:
            return f"{self.collection}: {self.before} before, {self.after} after the rollback"
        return f"{self.collection}: same count ({self.before}), different content"


@dataclass(frozen=True)
class RollbackCheck:
    """One migration's up -> down -> up: ``differences`` empty when the rollback restored the
    data; ``has_rollback`` False for a migration that was only migrated."""

    name: str
    has_rollback: bool
    differences: tuple[Difference, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass(frozen=True)
class RollbackReport:
    """Every pending migration's check, in the order they ran; ``unchecked``: those after
    a rollback that did not restore the data, not run."""

    database: str
    checks: tuple[RollbackCheck, ...]
    unchecked: tuple[str, ...] = ()

    @property
    def failed(self) -> list[RollbackCheck]:
        return [c for c in self.checks if not c.ok]

    @property
    def without_rollback(self) -> list[str]:
        return [c.name for c in self.checks if not c.has_rollback]

    def describe(self) -> str:
        """What went wrong, naming each migration and the collections (tables) that differ."""
        lines = []
        for check in self.failed:
            lines.append(f"the rollback of {check.name} does not restore the data:")
            lines += [f"  {d.describe()}" for d in check.differences]
        if self.unchecked:
            lines.append(f"not checked after it: {', '.join(self.unchecked)}")
        lines.append(
            f"({len(self.checks)} migration(s) checked, each migrated, rolled back and "
            f"compared, then migrated again, on scratch database {self.database})"
        )
        return "\n".join(lines)


def check_rollbacks(db: ScratchDatabase) -> RollbackReport:
    """Run every pending migration of ``db`` up -> down -> up (only up where it has no
    rollback), comparing the data after each rollback with the data before the migration.
    Leaves every migration applied, unless a rollback does not restore the data: then the
    check stops there, that migration rolled back and the later ones not run. A migration or
    rollback that fails raises :class:`~monarch.errors.MigrationFailed`, as ``migrate`` does."""
    rollbacks = {f.name: f.cls.has_rollback() for f in db.migrations()}
    checks: list[RollbackCheck] = []
    pending = db.pending()
    for index, name in enumerate(pending):
        if not rollbacks.get(name, False):
            db.migrate(to=name)
            checks.append(RollbackCheck(name, has_rollback=False))
            continue
        before = db.fingerprint()
        db.migrate(to=name)
        db.rollback(steps=1)
        differences = compare(before, db.fingerprint())
        checks.append(RollbackCheck(name, has_rollback=True, differences=differences))
        if differences:
            return RollbackReport(db.database, tuple(checks), tuple(pending[index + 1:]))
        db.migrate(to=name)
    return RollbackReport(db.database, tuple(checks))


def assert_rollbacks_restore(db: ScratchDatabase) -> RollbackReport:
    """:func:`check_rollbacks`, failing the test (AssertionError) with a message naming each
    migration whose rollback did not restore the data, and the collections that differ."""
    __tracebackhide__ = True  # pytest shows the user's line, not the kit's
    report = check_rollbacks(db)
    if report.failed:
        raise AssertionError(report.describe())
    return report


def compare(before: dict[str, Fingerprint], after: dict[str, Fingerprint]) -> tuple[
        Difference, ...]:
    """The collections (tables) whose count or content differs between two fingerprints."""
    return tuple(Difference(name, _count(before, name), _count(after, name))
                 for name in differing(before, after))


def _count(state: dict[str, Fingerprint], name: str) -> int | None:
    found = state.get(name)
    return found.count if found is not None else None
