"""vmstor: the application that assembles the storage subsystems (CLI, config, daemon)."""

__version__ = "0.1.0"
