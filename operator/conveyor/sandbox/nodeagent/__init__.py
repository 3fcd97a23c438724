"""The sandbox node agent: the kubelet, the Job controller, the Deployment controller and
Service proxies of a one-node cluster, running Conveyor-image containers as local processes.

Not a Kubernetes: containers are processes of this machine (no namespaces, no cgroups), so ports
are remapped (``CONVEYOR_PORT_<NAME>`` and the ``sandbox.conveyor.dev/ports`` pod annotation),
volumes are not mounted (the termination-message file is named by ``TERMINATION_MESSAGE_PATH``
instead of mounted at ``terminationMessagePath``), and memory limits are address-space limits.
Deployments own their Pods directly (no ReplicaSets). Job ``ttlSecondsAfterFinished`` is
ignored. See each module's docstring for what it emulates and what it does not.
"""

from .agent import NodeAgent

__all__ = ["NodeAgent"]
