"""Programs that run as Kubernetes Jobs: `conveyor materialize` (and `conveyor train`)."""
