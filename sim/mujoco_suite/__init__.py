"""MuJoCo task suite (the embedded default backend)."""
