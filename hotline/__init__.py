"""Shared plumbing for every hotline process: settings, event bus, logging and the CLI.

See docs/adr/0001-layout-and-the-hotline-package.md for why this package exists beside the
card's top-level packages.
"""
