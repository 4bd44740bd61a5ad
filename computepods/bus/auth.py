"""Who may say what on the bus: four roles, their NATS permissions, their passwords.

A chef runs whatever command a ``<ns>.chef.<id>.run`` message carries, so
whoever may publish that subject may run commands as the chef's user.  The
bus is therefore closed: every client logs in as one of four users, one per
role, and nats-server enforces what each may publish and subscribe
(docs/architecture.md §2 names the subjects):

* ``majordomo``: the pod itself (MajorDomo, Store, Desk, Cron, its watcher,
  in-process chefs): everything under the namespace;
* ``chef``: receives runs, queries and cancels; sends results, status and
  its packs; never a run, a build request or a query.  With the majordomo,
  the only role that may say ``<ns>.pods.hello`` (and ask ``pods.discover``,
  when a run comes from a pod it has not heard yet): a hello is authenticated
  by the bus itself (federation, docs/architecture.md §6);
* ``watcher``: sends file changes;
* ``api``: the REST app: asks for builds and cancels, queries, follows
  build events; never a run.

Request/reply: each role subscribes to its own inbox prefix,
``_INBOX.<role>.>`` (the bridge connects with that prefix, so one role
cannot read another's answers), and answers what it received through
``allow_responses`` rather than a publish permission on ``_INBOX.>``.

Standard library only, and not :mod:`computepods.bus.messages` (which
imports miros): ``cpod build`` writes the embedded server's config before
its heavy imports (docs/architecture.md §10).  The subject templates below
are the ones in ``messages.ROUTES``; a unit test keeps them so.
"""
from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from computepods.errors import UsageError
from computepods.paths import atomic_write

MAJORDOMO, CHEF, WATCHER, API = "majordomo", "chef", "watcher", "api"
ROLES = (MAJORDOMO, CHEF, WATCHER, API)
USER_VAR = "CP_NATS_USER"
PASSWORD_VAR = "CP_NATS_PASSWORD"
LOGIN_VARS = (USER_VAR, PASSWORD_VAR, "CP_NATS_TOKEN", "CP_NATS_CREDS")
PASSWORD_BYTES = 24                  # of randomness in each generated password
SECRET_MODE = 0o600                  # files holding passwords: the owner's alone
CONFIG_NAME = "nats.conf"            # what `cpod nats-config DIR` writes, with <role>.env
INSECURE_VAR = "CP_INSECURE_BUS"     # "1": join a server without authentication (--insecure-bus)
INSECURE_SAID = "said"               # its value in a pod's children: the pod warned already
LOGIN_HELP = ("a pod's clients log in with CP_NATS_USER and CP_NATS_PASSWORD "
              "(`cpod nats-config DIR` writes a server's users and one DIR/<role>.env each)")
OPEN_BUS_HELP = ("anyone who can reach it could run commands through its chefs.  Start it "
                 "with users (`cpod nats-config DIR`, then `nats-server -c DIR/nats.conf`), "
                 "or pass --insecure-bus to use it anyway")

# (publish, subscribe) subject templates per role, beside each role's inbox.
_PERMISSIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    MAJORDOMO: (("{ns}.>",), ("{ns}.>",)),
    CHEF: (("{ns}.chefs.status", "{ns}.steps.results", "{ns}.rules.announce", "{ns}.errors",
            "{ns}.pods.hello", "{ns}.pods.discover"),
           ("{ns}.chef.*.run", "{ns}.chefs.query", "{ns}.chefs.cancel", "{ns}.pods.hello",
            "{ns}.pods.discover")),
    WATCHER: (("{ns}.fs.changed", "{ns}.errors"), ()),
    API: (("{ns}.build.request", "{ns}.build.cancel", "{ns}.api.query", "{ns}.errors"),
          ("{ns}.build.*.events",)),
}
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def inbox_prefix(user: str | None) -> str | None:
    """The inbox prefix a client logged in as ``user`` asks its replies on:
    ``_INBOX.<user>`` (inside any ``_INBOX.>`` permission), or None (nats-py's
    default) for no user or a name that is not one subject token."""
    return f"_INBOX.{user}" if user and _TOKEN.fullmatch(user) else None


@dataclass
class Credentials:
    """How to authenticate to NATS; never written in code or config files."""
    user: str | None = None
    password: str | None = field(default=None, repr=False)     # never in a log line
    token: str | None = field(default=None, repr=False)
    creds_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Credentials":
        user, password, token, creds_file = (env.get(k) for k in LOGIN_VARS)
        return cls(user=user, password=password, token=token, creds_file=creds_file)

    def who(self) -> str:
        """Who logs in, for an error message (never the secret)."""
        if self.user:
            return f"user {self.user!r}"
        return "these credentials" if (self.token or self.creds_file) else "a client without credentials"

    def connect_options(self) -> dict:
        opts: dict[str, Any] = {}
        if self.user:
            opts["user"], opts["password"] = self.user, self.password or ""
            prefix = inbox_prefix(self.user)
            if prefix:                     # the role's own inbox, all its permissions allow
                opts["inbox_prefix"] = prefix
        if self.token:
            opts["token"] = self.token
        if self.creds_file:
            opts["user_credentials"] = self.creds_file
        return opts


def insecure_from_env(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment allows a server without authentication."""
    return env.get(INSECURE_VAR, "") not in ("", "0")


def insecure_env(base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``base`` for a child of a pod that joined an open bus: allowed too,
    and quiet about it (the pod said it once for all its processes)."""
    return dict(base, **{INSECURE_VAR: INSECURE_SAID})


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def permissions(role: str, namespace: str) -> Permissions:
    """What ``role`` may publish and subscribe under ``namespace``."""
    if role not in _PERMISSIONS:
        raise ValueError(f"unknown bus role {role!r} (roles: {', '.join(ROLES)})")
    if not _TOKEN.fullmatch(namespace):
        raise UsageError(f"namespace {namespace!r}: must be one subject token "
                         "(letters, digits, '-', '_')")
    pub, sub = _PERMISSIONS[role]
    return Permissions(tuple(s.format(ns=namespace) for s in pub),
                       tuple(s.format(ns=namespace) for s in sub) + (f"{inbox_prefix(role)}.>",))


@dataclass(frozen=True)
class BusUsers:
    """The four users of one bus: a password per role, and the namespaces
    their permissions cover (one per pod sharing the server; usually one)."""
    namespaces: tuple[str, ...]
    passwords: dict[str, str]

    @classmethod
    def generate(cls, *namespaces: str) -> "BusUsers":
        namespaces = tuple(dict.fromkeys(namespaces or ("cp",)))
        for ns in namespaces:
            permissions(MAJORDOMO, ns)             # a namespace NATS can hold, or say so now
        return cls(namespaces, {role: secrets.token_urlsafe(PASSWORD_BYTES) for role in ROLES})

    @classmethod
    def load(cls, path: Path) -> "BusUsers":
        """What :meth:`save` kept (a running pod's users: ``paths.BUS_USERS``)."""
        data = json.loads(Path(path).read_text())
        return cls(tuple(data["namespaces"]), dict(data["passwords"]))

    def permissions(self, role: str) -> Permissions:
        """``role``'s permissions in every namespace of this bus."""
        each = [permissions(role, ns) for ns in self.namespaces]
        return Permissions(tuple(dict.fromkeys(s for p in each for s in p.publish)),
                           tuple(dict.fromkeys(s for p in each for s in p.subscribe)))

    def credentials(self, role: str) -> Credentials:
        return Credentials(user=role, password=self.passwords[role])

    def env(self, role: str) -> dict[str, str]:
        """The environment a client of ``role`` logs in with (what the bridge reads)."""
        return {USER_VAR: role, PASSWORD_VAR: self.passwords[role]}

    def child_env(self, role: str, base: Mapping[str, str] = os.environ) -> dict[str, str]:
        """``base`` for a child process of ``role``: its login replaces any other
        (a password passes by environment, never on a command line ``ps`` shows)."""
        env = {k: v for k, v in base.items() if k not in LOGIN_VARS}
        env.update(self.env(role))
        return env

    def authorization(self) -> str:
        """nats.conf's ``authorization`` block: the users and their permissions.
        No ``no_auth_user``: a client without a password is refused."""
        users = []
        for role in ROLES:
            perms = self.permissions(role)
            users.append(
                f"    {{user: {_q(role)}, password: {_q(self.passwords[role])},\n"
                f"     permissions: {{publish: {{allow: {_list(perms.publish)}}},\n"
                f"                   subscribe: {{allow: {_list(perms.subscribe)}}},\n"
                f"                   allow_responses: true}}}}")
        return "authorization {\n  users: [\n" + "\n".join(users) + "\n  ]\n}\n"

    def save(self, path: Path) -> None:
        """Keep the passwords in ``path``, readable by the owner alone."""
        _write_secret(Path(path), json.dumps({"namespaces": list(self.namespaces),
                                              "passwords": self.passwords}).encode())


def server_config(users: BusUsers, max_payload: int) -> str:
    """A whole nats.conf: the payload limit and the users."""
    return f"max_payload: {max_payload}\n" + users.authorization()


def write_config_dir(directory: Path, users: BusUsers, max_payload: int) -> list[Path]:
    """``cpod nats-config DIR``: ``DIR/nats.conf`` and one ``DIR/<role>.env``
    per role, each 0600; the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / CONFIG_NAME]
    _write_secret(written[0], server_config(users, max_payload).encode())
    for role in ROLES:
        path = directory / f"{role}.env"
        _write_secret(path, "".join(f"{k}={v}\n" for k, v in users.env(role).items()).encode())
        written.append(path)
    return written


def _write_secret(path: Path, data: bytes) -> None:
    # atomic_write makes a new file: an older file's wider mode does not carry over
    atomic_write(path, data, mode=SECRET_MODE)


def _q(text: str) -> str:
    return json.dumps(text)                        # a quoted string nats.conf parses


def _list(subjects: tuple[str, ...]) -> str:
    return "[" + ", ".join(_q(s) for s in subjects) + "]"
