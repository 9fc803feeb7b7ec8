"""Hostile input (issue 13, defects 10, 11, 12 and 14), end to end through the real CLI.

A pull request controls every file under keyspecs/. Nothing it adds may make the tool read a
file outside its folder (and print it: ``review`` output becomes a PR comment), run without
bound, end in a traceback, or silently pick one of two conflicting values.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.gitrefs import _member_problem
from reconciler.templates import _first_duplicate

MARKER = "S3CRET-MARKER-c0ffee"

INVENTORY = """\
targets:
  - name: prod
    account_id: "111122223333"
    region: us-east-1
"""
KEY = """\
keys:
  - name: app
    policy:
      template: p.json.j2
"""
TEMPLATE = """\
{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Root", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::{{ account_id }}:root"},
     "Action": "kms:*", "Resource": "*",
     "Condition": {"StringEquals": {"aws:PrincipalTag/team": "{% include 'env.j2' %}"}}}
  ]
}
"""


def _inventory(root: Path, *, leak: bool) -> None:
    """A valid inventory; with ``leak``, its template includes a link to a secret outside."""
    (root / "keyspecs" / "policies").mkdir(parents=True, exist_ok=True)
    (root / "keyspecs" / "inventory.yaml").write_text(INVENTORY, encoding="utf-8")
    (root / "keyspecs" / "app.yaml").write_text(KEY, encoding="utf-8")
    (root / "keyspecs" / "policies" / "p.json.j2").write_text(TEMPLATE, encoding="utf-8")
    env = root / "keyspecs" / "policies" / "env.j2"
    if env.is_symlink() or env.exists():
        env.unlink()
    if leak:
        env.symlink_to(root.parent / "secret.txt")
    else:
        env.write_text("platform", encoding="utf-8")


def _run(
    cwd: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KMS_RECONCILER_"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(cwd / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(cwd / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            # a closed port: any request would fail, and fail differently
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(cwd),
            **(extra_env or {}),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _assert_refused(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert MARKER not in output, output
    assert "Traceback" not in output, output
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), output
    assert any(fragment in line for line in lines), output


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository: a clean inventory committed, then a commit adding the leak."""
    (tmp_path / "secret.txt").write_text(f"{MARKER}\n", encoding="utf-8")
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    _inventory(root, leak=False)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    _inventory(root, leak=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "leak")
    return root


def test_an_include_through_a_symlink_to_a_secret_is_refused_by_validate_and_plan(
    repo: Path,
) -> None:
    for command in ("validate", "plan"):
        done = _run(repo, command, "keyspecs")
        _assert_refused(done, "keyspecs/policies/p.json.j2:7: key 'app': template 'env.j2'")


def test_the_same_include_reading_the_process_environment_is_refused(repo: Path) -> None:
    env = repo / "keyspecs" / "policies" / "env.j2"
    env.unlink()
    env.symlink_to("/proc/self/environ")
    done = _run(repo, "validate", "keyspecs", extra_env={"CI_TOKEN": MARKER})
    _assert_refused(done, "symbolic link that leads outside keyspecs/policies/")


def test_review_of_the_work_tree_does_not_publish_the_secret(repo: Path) -> None:
    done = _run(repo, "review", "keyspecs", "--base", "HEAD~1")
    _assert_refused(done, "template 'env.j2' is a symbolic link")


def test_review_of_a_ref_holding_an_absolute_symlink_is_one_line(repo: Path) -> None:
    done = _run(repo, "review", "keyspecs", "--base", "HEAD~1", "--head", "HEAD")
    _assert_refused(done, "error: keyspecs/policies/env.j2: a symbolic link to the absolute path")


def test_review_of_a_ref_with_a_relative_link_out_of_the_inventory_is_refused(repo: Path) -> None:
    (repo / "README").write_text(f"{MARKER}\n", encoding="utf-8")
    env = repo / "keyspecs" / "policies" / "env.j2"
    env.unlink()
    env.symlink_to("../../README")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "relative leak")
    done = _run(repo, "review", "keyspecs", "--base", "HEAD~2", "--head", "HEAD")
    _assert_refused(done, "a symbolic link to ../../README, which leads outside keyspecs")


def test_links_inside_the_inventory_still_work_in_review(repo: Path) -> None:
    env = repo / "keyspecs" / "policies" / "env.j2"
    env.unlink()
    (repo / "keyspecs" / "policies" / "team.txt").write_text("platform", encoding="utf-8")
    env.symlink_to("team.txt")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "inside link")
    done = _run(
        repo, "review", "keyspecs", "--base", "HEAD~2", "--head", "HEAD", "--format", "json"
    )
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "linkname", "kind", "refused"),
    [
        ("keyspecs/a.yaml", "", tarfile.REGTYPE, False),
        ("keyspecs/policies", "", tarfile.DIRTYPE, False),
        ("keyspecs/policies/x.j2", "y.j2", tarfile.SYMTYPE, False),
        ("keyspecs/policies/x.j2", "../app.yaml", tarfile.SYMTYPE, False),
        ("keyspecs/policies/x.j2", "/etc/passwd", tarfile.SYMTYPE, True),
        ("keyspecs/policies/x.j2", "../../.git/config", tarfile.SYMTYPE, True),
        ("keyspecs/x.yaml", "../other/x.yaml", tarfile.SYMTYPE, True),
        ("keyspecs/x.yaml", "a/../../x", tarfile.SYMTYPE, True),
        ("keyspecs/x", "keyspecs/a", tarfile.LNKTYPE, True),
        ("keyspecs/fifo", "", tarfile.FIFOTYPE, True),
        ("/etc/x", "", tarfile.REGTYPE, True),
        ("keyspecs/../x", "", tarfile.REGTYPE, True),
    ],
)
def test_which_archive_members_review_unpacks(
    name: str, linkname: str, kind: bytes, refused: bool
) -> None:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, linkname
    assert (_member_problem(member, "keyspecs") is not None) is refused


@pytest.mark.parametrize(
    ("text", "name", "line"),
    [
        ('{"a": 1, "a": 2}', "a", 1),
        ('{\n "S": [\n  {"E": 1,\n   "E": 2}\n ]\n}', "E", 4),
        ('{"a": {"b": 1}, "b": 2, "a": 3}', "a", 1),
        ('{"x": "\\"a\\"", "a": 1, "\\u0061": 2}', "a", 1),
        ('[{"a": 1}, {"a": 2}]', "", 1),
    ],
)
def test_the_first_duplicate_member_and_where_it_is(text: str, name: str, line: int) -> None:
    found, position = _first_duplicate(text)
    assert found == name
    assert text.count("\n", 0, position) + 1 == line


# -- duplicates, flags and principals, with file, line, key and field ------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "policies/p.json.j2": (
                    '{"Version": "2012-10-17",\n "Statement": [],\n "Statement": []}\n'
                )
            },
            "keyspecs/policies/p.json.j2:3: key 'app': "
            'rendered policy has the member "Statement" twice',
            id="two-statements",
        ),
        pytest.param(
            {
                "policies/p.json.j2": TEMPLATE.replace(
                    '"Effect": "Allow"', '"Effect": "Deny",\n "Effect": "Allow"'
                ),
                "policies/env.j2": "x",
            },
            "keyspecs/policies/p.json.j2:5: key 'app': "
            'rendered policy has the member "Effect" twice',
            id="deny-then-allow",
        ),
        pytest.param(
            {"app.yaml": KEY + "    tags: {Team: a}\n    tags: {Team: b}\n"},
            "keyspecs/app.yaml:6: keys[0].tags: "
            "'tags' appears twice in the same mapping (first on line 5) (key 'app')",
            id="yaml-duplicate-key",
        ),
        pytest.param(
            {"app.yaml": KEY + '    bypass_policy_lockout_safety_check: "yes"\n'},
            "keyspecs/app.yaml:5: keys[0].bypass_policy_lockout_safety_check: "
            "must be true or false, not 'yes' (key 'app')",
            id="bypass-yes",
        ),
        pytest.param(
            {"app.yaml": KEY + '    bypass_policy_lockout_safety_check: "off"\n'},
            "keyspecs/app.yaml:5: keys[0].bypass_policy_lockout_safety_check: "
            "must be true or false, not 'off' (key 'app')",
            id="bypass-off",
        ),
        pytest.param(
            {
                "app.yaml": "keys:\n  - name: app\n    policy:\n      document:\n"
                "        Version: '2012-10-17'\n        Statement:\n"
                "          - {Effect: Allow, Principal: {AWS: not-an-arn}, "
                "Action: 'kms:*', Resource: '*'}\n"
            },
            "keyspecs/app.yaml:7: keys[0].policy.document: "
            "Statement[0]: Principal.AWS: 'not-an-arn' is not an AWS account ID",
            id="principal-not-an-arn",
        ),
    ],
)
def test_ambiguous_input_is_an_error_naming_where(
    files: dict[str, str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inventory(tmp_path, leak=False)
    for name, text in files.items():
        (tmp_path / "keyspecs" / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate", "keyspecs"])
    assert result.exit_code == 1, result.output
    assert any(line.startswith(f"error: {expected}") for line in result.stderr.splitlines()), (
        result.stderr
    )


def test_real_booleans_and_principals_still_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inventory(tmp_path, leak=False)
    (tmp_path / "keyspecs" / "app.yaml").write_text(
        KEY + "    bypass_policy_lockout_safety_check: true\n    allow_alias_takeover: false\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate", "keyspecs"])
    assert result.exit_code == 0, result.output


# -- bounded work: each ends in one line within seconds --------------------------------------


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        pytest.param(
            {
                "app.yaml": "a: &a ["
                + ", ".join(["x"] * 10)
                + "]\n"
                + "".join(
                    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i > 1 else "*a"] * 10) + "]\n"
                    for i in range(1, 9)
                )
                + "keys: *a8\n"
            },
            "aliases expand to more than",
            id="billion-laughs-10^9",
        ),
        pytest.param(
            {
                "policies/p.json.j2": "{% for i in range(100000) %}{% for j in range(100000) %}"
                "{% endfor %}{% endfor %}"
            },
            "loop iterations and calls",
            id="nested-range-loops",
        ),
        pytest.param(
            {
                "app.yaml": "keys:\n  - name: app\n    aliases: ["
                + ",".join(f"alias/a{i}" for i in range(200_000))
                + "]\n"
            },
            "keyspecs/app.yaml:3: the file holds more than",
            id="200k-aliases",
        ),
        pytest.param(
            {"policies/p.json.j2": "{{ '%0999999999d' % 0 }}"}, "format width", id="printf-width"
        ),
        pytest.param(
            {"policies/p.json.j2": "{{ '{:>999999999}'.format(1) }}"},
            "format width",
            id="format-width",
        ),
        pytest.param(
            {"policies/p.json.j2": "{{ ([('a' * 100000)] * 100000)|join }}"},
            "join would make",
            id="join",
        ),
        pytest.param(
            {"app.yaml": "keys: " + "[" * 1000 + "]" * 1000 + "\n"},
            "nest more than 100 levels",
            id="nesting-1000",
        ),
    ],
)
def test_unbounded_input_ends_in_one_line_within_seconds(
    files: dict[str, str], fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inventory(tmp_path, leak=False)
    for name, text in files.items():
        (tmp_path / "keyspecs" / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["validate", "keyspecs"])
    assert time.monotonic() - started < 5
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert all(line.startswith("error: ") for line in lines), result.stderr
    assert any(fragment in line for line in lines), result.stderr


def test_a_template_deadline_stops_slow_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the step bound but slow (each step copies 100 kB): the deadline ends it."""
    monkeypatch.setattr("reconciler.templates.MAX_SECONDS", 0.2)
    _inventory(tmp_path, leak=False)
    (tmp_path / "keyspecs" / "policies" / "p.json.j2").write_text(
        "{% for i in range(90000) %}{% set s = 'a' * 100000 %}{% endfor %}", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate", "keyspecs"])
    assert result.exit_code == 1, result.output
    assert "rendering took longer than 0.2 seconds" in result.stderr


# -- cases that depend on a cli.py change (see the branch's report) --------------------------


def test_a_path_that_is_a_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """Depends on cli.py: click's ``file_okay=False`` makes this a usage error (exit 2)."""
    (tmp_path / "keyspecs").write_text("not a folder", encoding="utf-8")
    done = _run(tmp_path, "validate", "keyspecs")
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == ["error: inventory directory 'keyspecs' is not a directory"]
