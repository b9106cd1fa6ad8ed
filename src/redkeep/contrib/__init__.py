"""Integrations with other frameworks, each behind an optional extra (``redkeep[django]``).

The core package never imports this package's modules.
"""
