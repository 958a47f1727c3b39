"""The registry: suites, policy presets, pair adapters and matrices, read from YAML files."""

from vlabench.registry.load import default_registry_path, load_file, load_registry, registry_paths
from vlabench.registry.schema import (
    MatrixConfig,
    PairAdapter,
    PerturbationAxis,
    PolicyPreset,
    Registry,
    RegistryError,
    RegistryFile,
    SuiteConfig,
    unknown,
)

__all__ = [
    "MatrixConfig",
    "PairAdapter",
    "PerturbationAxis",
    "PolicyPreset",
    "Registry",
    "RegistryError",
    "RegistryFile",
    "SuiteConfig",
    "default_registry_path",
    "load_file",
    "load_registry",
    "registry_paths",
    "unknown",
]
