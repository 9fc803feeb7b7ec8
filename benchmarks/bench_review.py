"""Benchmark: review a realistic change, offline, as the PR workflow does.

A repository holds the bundled inventory plus 50 keys that all render one template; the
change adds a cross-account principal to that template. Prints the time the real CLI
takes (a subprocess, Python start-up included), the comment's length, and writes the
comment to benchmarks/out/review-comment.md so it can be read as a reviewer sees it.

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


if __name__ == "__main__":
    main()
