"""What drift and review findings share: severities and rule metadata. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]


@dataclass(frozen=True)
class Rule:
    """A kind of finding: its ID, severity, title and why it matters (SARIF rule metadata)."""

    id: str
    severity: Severity
    title: str
    rationale: str
