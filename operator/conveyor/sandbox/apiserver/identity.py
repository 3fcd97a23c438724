"""Who sends a request: bearer tokens → users, as a real server's token authenticator does.

There is no authorization (no RBAC): identities feed admission only, so that
ValidatingAdmissionPolicies can tell the operator from a person, as in a cluster. A request
without a token is `system:anonymous`; a token the server does not know is 401 Unauthorized.
The server's own controllers (garbage collection, namespace deletion) act under the names the
real ones use, so policies can exempt them as they must in a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from conveyor.sandbox.apiserver.errors import ApiError

__all__ = [
    "ANONYMOUS",
    "GARBAGE_COLLECTOR",
    "NAMESPACE_CONTROLLER",
    "Authenticator",
    "UserInfo",
    "service_account",
]

AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class UserInfo:
    """`request.userInfo` of admission: the user's name and groups."""

    username: str
    groups: tuple[str, ...] = (AUTHENTICATED,)
    uid: str = ""

    def to_request(self) -> dict[str, object]:
        """As AdmissionRequest.userInfo serializes it (empty fields are omitted)."""
        info: dict[str, object] = {"username": self.username}
        if self.uid:
            info["uid"] = self.uid
        if self.groups:
            info["groups"] = list(self.groups)
        return info


def service_account(namespace: str, name: str) -> UserInfo:
    """The identity of a ServiceAccount's token, with the groups a real server gives it."""
    return UserInfo(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
    )


ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))
NAMESPACE_CONTROLLER = service_account("kube-system", "namespace-controller")
GARBAGE_COLLECTOR = service_account("kube-system", "generic-garbage-collector")


class Authenticator:
    """Bearer tokens and the users they stand for."""

    def __init__(self, tokens: Mapping[str, UserInfo] | None = None) -> None:
        self._tokens = dict(tokens or {})

    def user(self, authorization: str | None) -> UserInfo:
        """The user of an `Authorization` header; ApiError 401 for an unknown credential."""
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        user = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return user
