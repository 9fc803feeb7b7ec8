"""Refresh reconciler/data/kms_actions.json from the installed botocore's KMS model.

    python scripts/refresh_kms_actions.py

The KMS permissions are the API operations, except that the ReEncrypt call needs the
two permissions kms:ReEncryptFrom and kms:ReEncryptTo, and a few permissions have no API
of their own (SynchronizeMultiRegionKey, used by KMS itself). The file also records the
model's key specs, key usages and grant operations, which reconciler/catalog.py must
cover (tests/test_catalog_tables.py fails when the installed botocore knows one that the
tables lack). Review the diff: a new action changes what wildcards such as "kms:Get*"
grant in every review, and a new key spec needs its usages in catalog.KEY_SPEC_USAGES.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore
import botocore.session

# operation -> the permissions it needs, where they differ from its name
SPLIT = {"ReEncrypt": ["ReEncryptFrom", "ReEncryptTo"]}
# permissions without an operation of their own
PERMISSION_ONLY = ["SynchronizeMultiRegionKey"]

OUT = Path(__file__).resolve().parent.parent / "reconciler" / "data" / "kms_actions.json"


def tables() -> dict[str, Any]:
    """What the installed botocore's KMS model says: actions and the closed sets."""
    model = botocore.session.get_session().get_service_model("kms")
    actions: set[str] = set(PERMISSION_ONLY)
    for name in model.operation_names:
        actions.update(SPLIT.get(name, [name]))
    return {
        "source": f"botocore {botocore.__version__} KMS service model ({model.api_version})",
        "actions": sorted(actions),
        "key_specs": sorted(model.shape_for("KeySpec").enum),
        "key_usages": sorted(model.shape_for("KeyUsageType").enum),
        "grant_operations": sorted(model.shape_for("GrantOperation").enum),
    }


def main() -> None:
    document = tables()
    OUT.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(document['actions'])} actions to {OUT}")


if __name__ == "__main__":
    main()
