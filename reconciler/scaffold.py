"""``kms-reconciler init``: a commented starter inventory that validates and plans.

One target, the defaults, one key with an alias, rotation, tags and the guides' application
key policy (administrators plus users, root delegation first), and the JSON Schemas for
editors in ``.schema/`` (a dot-folder: the loader skips it).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from reconciler import schema

INVENTORY = """\
# yaml-language-server: $schema=.schema/inventory.schema.json
# The inventory settings. Every other *.yaml file in this folder (and below it) is a key
# file with a top-level `keys:` list; policies/ holds the key-policy templates.

# The tag kms-reconciler puts on every key it owns (value: the key's name). Keep the
# default; change it only before the first apply: existing keys are found by it.
identity_tag: kms-reconciler:name

targets:
  # One (account, Region) pair the keys live in. Put your own account ID here: a run
  # refuses credentials of another account, so a wrong profile never touches it.
  - name: production
    account_id: "111122223333"        # quoted: an account ID is a string
    region: us-east-1
    # role_arn: arn:aws:iam::111122223333:role/kms-reconciler           # apply, rotate
    # plan_role_arn: arn:aws:iam::111122223333:role/kms-reconciler-read # plan, drift
    defaults: {deletion_window_days: 30}

defaults:                              # for every key (a key's own fields win)
  tags: {ManagedBy: kms-reconciler}
  rotation: {enabled: true, period_days: 365}
"""

KEYS = """\
# yaml-language-server: $schema=.schema/keyfile.schema.json
keys:
  # The guide's application key: the application role encrypts and decrypts, the
  # administrators manage the key, and the account root keeps IAM delegation.
  - name: app-data                    # identity: lower-case letters, digits and '-'
    description: Application data encryption key
    aliases: [alias/app-data]
    tags: {Application: web-app, Owner: platform-team}
    policy:
      template: application.json.j2
      vars:
        admin_roles: [KeyAdminRole]
        user_roles: [WebApplicationRole]
"""


def scaffold(folder: Path) -> list[Path]:
    """Write the starter inventory into ``folder`` (which must be empty or absent); the
    files written."""
    template = files("reconciler").joinpath("data/init/application.json.j2").read_text("utf-8")
    written = {
        folder / "inventory.yaml": INVENTORY,
        folder / "app.yaml": KEYS,
        folder / "policies" / "application.json.j2": template,
        **{folder / ".schema" / name: schema.dumps(doc) for name, doc in schema.schemas().items()},
    }
    for path, text in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(written)
