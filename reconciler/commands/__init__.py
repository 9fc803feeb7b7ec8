"""The commands of the command line, one module each (``reconciler.cli`` groups them):
``offline`` (validate, render, targets, permissions), ``plan``, ``apply``, ``drift``,
``review``, ``import_``, ``rotate`` and ``force_unlock``; ``common`` holds what they share.
"""
