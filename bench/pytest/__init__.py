"""The pytest-benchmark plugin: hooks and options, the xpu fixture, extra_info."""
