"""Hydra YAML configs, importable so Hydra can find them as a config module."""
