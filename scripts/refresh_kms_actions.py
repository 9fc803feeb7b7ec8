"""Refresh reconciler/data/kms_actions.json from the installed botocore's KMS model.

    python scripts/refresh_kms_actions.py

The KMS permissions are the API operations, except that the ReEncrypt call needs the
two permissions kms:ReEncryptFrom and kms:ReEncryptTo, and a few permissions have no API
of their own (SynchronizeMultiRegionKey, used by KMS itself). Review the diff: a new
action changes what wildcards such as "kms:Get*" grant in every review.
"""

from __future__ import annotations

import json
from pathlib import Path

import botocore
import botocore.session

# operation -> the permissions it needs, where they differ from its name
SPLIT = {"ReEncrypt": ["ReEncryptFrom", "ReEncryptTo"]}
# permissions without an operation of their own
PERMISSION_ONLY = ["SynchronizeMultiRegionKey"]

OUT = Path(__file__).resolve().parent.parent / "reconciler" / "data" / "kms_actions.json"


def main() -> None:
    model = botocore.session.get_session().get_service_model("kms")
    actions: set[str] = set(PERMISSION_ONLY)
    for name in model.operation_names:
        actions.update(SPLIT.get(name, [name]))
    document = {
        "source": f"botocore {botocore.__version__} KMS service model ({model.api_version})",
        "actions": sorted(actions),
    }
    OUT.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(actions)} actions to {OUT}")


if __name__ == "__main__":
    main()
