"""Edge Harness as a pytest plugin: on-device measurements as ordinary tests.

Registered through the ``pytest11`` entry point (``harness.pytest_plugin.plugin``),
so installing edge-harness makes its options, fixtures and marker available
to any pytest suite. This package imports nothing heavy at load time: a suite
that never asks for a device pays nothing for the plugin.
"""
