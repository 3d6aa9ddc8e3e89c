"""Model architectures and the registry of named, shipped models."""
