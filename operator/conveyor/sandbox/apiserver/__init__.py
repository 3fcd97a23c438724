"""The sandbox's Kubernetes API server: kmock's emulator with the semantics of a real one.

`ApiServer` serves it in the caller's event loop, `ApiServerThread` in a background thread for
synchronous code; `write_kubeconfig` points kubectl and the kubernetes client at it.
It is a development tool, not a Kubernetes: there are no controllers, no TLS, no RBAC; bearer
tokens name users (`UserInfo`) for admission policies only.
"""

from conveyor.sandbox.apiserver.identity import UserInfo, service_account
from conveyor.sandbox.apiserver.kubeconfig import write_kubeconfig
from conveyor.sandbox.apiserver.server import ApiServer, ApiServerThread

__all__ = ["ApiServer", "ApiServerThread", "UserInfo", "service_account", "write_kubeconfig"]
