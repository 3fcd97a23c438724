"""The only modules that talk to Kubernetes or S3."""
