"""Protected environments: destructive commands need the environment's name typed back.

The one rule, for every command that changes a database (migrate, rollback, restore, copy_db,
recover, drop_db, unlock): a protected environment's name must be given, typed on a terminal or
passed as ``--confirm NAME`` (``confirm=`` in Python). ``-y/--yes`` only skips y/N questions and
never stands in for the name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monarch.errors import ConfirmationRequired

if TYPE_CHECKING:
    from monarch.config import Environment


def require_confirmation(environment: Environment, action: str, confirm: str | None) -> None:
    """Raise ConfirmationRequired unless ``environment`` is unprotected or ``confirm`` names it.

    ``action`` completes "... needs confirmation", e.g. ``"migrate"``.
    """
    if not environment.protected or confirm == environment.name:
        return
    if confirm is not None:
        raise ConfirmationRequired(
            f"confirmation {confirm!r} does not match the protected environment "
            f"{environment.name!r}; nothing was done",
            hint=f"pass --confirm {environment.name}",
        )
    raise ConfirmationRequired(
        f"environment {environment.name!r} is protected ({environment.protected_reason}): "
        f"{action} needs confirmation; nothing was done",
        hint=f"run it on a terminal and type the name, or pass --confirm {environment.name}",
    )
