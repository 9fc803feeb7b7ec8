"""Benchmark: review a realistic change, offline, as the PR workflow does.

A repository holds the bundled inventory plus 50 keys that all render one template; the
change adds a cross-account principal to that template. Prints the time the real CLI
takes (a subprocess, Python start-up included), the comment's length, and writes the
comment to benchmarks/out/review-comment.md so it can be read as a reviewer sees it.
Then times the policy-semantics engine alone (in-process) per policy pair: on this change
(unconditional statements: no solver call) and on a condition change that the solver
decides (a StringLike on kms:ViaService narrowed, plus a Deny on a missing org ID).

    python benchmarks/bench_review.py [--keys 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"

TEMPLATE = """{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "Enable IAM User Permissions",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:{{ partition }}:iam::{{ account_id }}:root"},
      "Action": "kms:*",
      "Resource": "*"
    },
    {
      "Sid": "Service use",
      "Effect": "Allow",
      "Principal": {"AWS": {{ principals|tojson }}},
      "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
      "Resource": "*"
    }
  ]
}
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def write_template(repo: Path, extra: str = "") -> None:
    principals = (
        "{% set principals = ['arn:' ~ partition ~ ':iam::' ~ account_id ~ ':role/' ~ key.name] %}"
    )
    if extra:
        principals = principals.replace("] %}", f", '{extra}'] %}}")
    (repo / "keyspecs/policies/service-shared.json.j2").write_text(principals + "\n" + TEMPLATE)


def _engine_pairs(keys: int, conditional: bool) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    account = "111122223333"

    def doc(i: int, head: bool) -> dict[str, Any]:
        principals = [f"arn:aws:iam::{account}:role/svc-{i:03d}"]
        use: dict[str, Any] = {
            "Sid": "Service use",
            "Effect": "Allow",
            "Principal": {"AWS": principals},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
            "Resource": "*",
        }
        statements = [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            use,
        ]
        if not conditional:
            if head:
                principals.append("arn:aws:iam::999988887777:role/PartnerAnalytics")
            return {"Version": "2012-10-17", "Statement": statements}
        via = "s3.us-east-1.amazonaws.com" if head else "s3.*.amazonaws.com"
        use["Condition"] = {"StringLike": {"kms:ViaService": via}}
        if head:
            statements.append(
                {
                    "Sid": "OrgOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "kms:*",
                    "Resource": "*",
                    "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
                }
            )
        return {"Version": "2012-10-17", "Statement": statements}

    return [(doc(i, False), doc(i, True)) for i in range(keys)]


def engine_cost(keys: int) -> None:
    """Milliseconds per policy pair of ``semantics.compare`` (its memo cleared first)."""
    sys.path.insert(0, str(ROOT))
    from reconciler import semantics

    for label, conditional in (("this change", False), ("a condition change", True)):
        pairs = _engine_pairs(keys, conditional)
        semantics._compare_texts.cache_clear()
        started = time.perf_counter()
        found = [
            semantics.compare(b, h, account_id="111122223333", region="us-east-1") for b, h in pairs
        ]
        per_pair = (time.perf_counter() - started) * 1000 / len(pairs)
        print(
            f"  engine, {label}: {per_pair:.1f} ms per policy pair ({len(pairs)} pairs); "
            f"first witness: {found[0][0].witness if found[0] else '(none)'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        git(repo, "init", "-q", "-b", "main")
        shutil.copytree(ROOT / "keyspecs", repo / "keyspecs")
        write_template(repo)
        keys = "".join(
            f"  - name: svc-{i:03d}\n    description: service {i} data key\n"
            f"    aliases: [alias/svc-{i:03d}]\n"
            "    policy: {template: service-shared.json.j2}\n"
            for i in range(args.keys)
        )
        (repo / "keyspecs/services.yaml").write_text("keys:\n" + keys)
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "base")
        write_template(repo, "arn:aws:iam::999988887777:role/PartnerAnalytics")
        git(repo, "commit", "-qam", "partner analytics reads every service key")

        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "review", "--base", "main~1", "--head", "main"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
    OUT.mkdir(exist_ok=True)
    (OUT / "review-comment.md").write_text(done.stdout)
    print(f"review of a template used by {args.keys} keys x 2 targets:")
    print(f"  exit code {done.returncode}, {seconds:.2f} s, comment {len(done.stdout)} characters")
    print(f"  comment written to {OUT / 'review-comment.md'}")
    if done.stderr:
        print(done.stderr)
    engine_cost(2 * args.keys)


if __name__ == "__main__":
    main()
