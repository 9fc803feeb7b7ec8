"""kms-reconciler: keep AWS KMS keys in git, plan the difference, apply it in order."""

__version__ = "0.1.0"
