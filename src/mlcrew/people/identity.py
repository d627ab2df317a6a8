"""Who is asking: a user (by session or token), a declared consumer (by token), the local owner
(no people configured, loopback only) or nobody."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Literal

from mlcrew.people.roles import ACTIONS, Action

Via = Literal["local", "session", "token", "cli", "anonymous"]


@dataclass(frozen=True)
class Identity:
    name: str
    via: Via
    actions: frozenset[Action]
    role: str | None = None
    external: bool = False
    consumer: str | None = None
    token_id: str | None = None
    csrf: str | None = None  # the session's CSRF token (cookie sessions only)

    def may(self, action: Action) -> bool:
        return action in self.actions

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        if self.consumer is not None:
            return f"consumer:{self.consumer}"
        return self.name


ANONYMOUS = Identity("anonymous", "anonymous", frozenset())


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid {os.getuid()}"


def local_owner() -> Identity:
    """The person at the machine: every right, named by the OS user."""
    return Identity(os_user(), "local", frozenset(ACTIONS), role="admin")


def cli_identity() -> Identity:
    """The local CLI acts as the OS user with every right (it can open the store anyway)."""
    return Identity(os_user(), "cli", frozenset(ACTIONS), role="admin")
