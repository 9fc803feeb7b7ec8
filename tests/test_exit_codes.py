"""Exit codes hold the contract: 2 means only "changes present", "drift found" or "blocking
findings"; every usage or input error is 1, in one ``error:`` line, with no traceback.
click's own usage exit code (2) is remapped: a typo in a CI flag must never read as drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ["validate", "render", "plan", "apply", "drift", "review", "import", "rotate", "targets"]


def cli(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_option_is_an_input_error_for_every_command(workdir: Path, command: str) -> None:
    line = one_error_line(cli(command, "--no-such-flag"))
    assert f"{command}: No such option" in line and "--no-such-flag" in line
    assert f"{command} --help" in line


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["plan", "--format", "yaml"], ["--format", "yaml"]),
        (["drift", "--fail-on", "hihg"], ["--fail-on", "hihg"]),
        (["review", "--base", "main", "--fail-on", "hihg"], ["--fail-on", "hihg"]),
        (["render", "--format", "xml"], ["--format", "xml"]),
        (["targets", "--format", "csv"], ["--format", "csv"]),
        (["drift", "--format", "html"], ["--format", "html"]),
        (["review"], ["--base"]),  # a required option missing
        (["rotate"], ["KEY"]),  # a required argument missing
        (["apply", "--plan", "no-such-plan.json"], ["--plan", "no-such-plan.json"]),
        (["nosuchcommand"], ["nosuchcommand"]),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else v,
)
def test_usage_errors_exit_1_naming_the_option(
    workdir: Path, args: list[str], names: list[str]
) -> None:
    line = one_error_line(cli(*args))
    for name in names:
        assert name in line


@pytest.mark.parametrize(
    "args",
    [["validate"], ["plan"], ["drift"], ["render"], ["targets"], ["review", "--base", "HEAD"]],
    ids=lambda args: args[0],
)
def test_a_path_that_is_a_file_is_an_input_error(workdir: Path, args: list[str]) -> None:
    (workdir / "afile.yaml").write_text("keys: []\n")
    line = one_error_line(cli(args[0], "afile.yaml", *args[1:]))
    assert line == "error: inventory directory 'afile.yaml' is not a directory"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"KMS_RECONCILER_QUOTA_SCALE": "fast"}, "KMS_RECONCILER_QUOTA_SCALE"),
        ({"KMS_RECONCILER_QUOTA_SCALE": "-1"}, "KMS_RECONCILER_QUOTA_SCALE"),
        ({"AWS_MAX_ATTEMPTS": "many"}, "AWS_MAX_ATTEMPTS"),
        ({"AWS_RETRY_MODE": "legacy"}, "AWS_RETRY_MODE"),
        ({"KMS_RECONCILER_REQUEST_PATH": "urllib3"}, "KMS_RECONCILER_REQUEST_PATH"),
    ],
    ids=["quota-scale-word", "quota-scale-negative", "max-attempts", "retry-mode", "request-path"],
)
def test_bad_settings_in_the_environment_exit_1(
    workdir: Path, env: dict[str, str], field: str
) -> None:
    for command in ("plan", "drift", "apply"):
        line = one_error_line(cli(command, "--sandbox", env=env))
        assert line.startswith(f"error: {field}: ")


def test_help_and_version_exit_0(workdir: Path) -> None:
    assert cli("--help").exit_code == 0
    assert cli("--version").exit_code == 0
    for command in COMMANDS:
        assert cli(command, "--help").exit_code == 0


def test_no_command_prints_the_help_and_exits_1(workdir: Path) -> None:
    result = cli()
    assert result.exit_code == 1 and "Commands:" in result.stderr


def test_detailed_exitcode_2_only_for_changes(workdir: Path) -> None:
    assert cli("plan", "--sandbox", "--target", "staging", "--detailed-exitcode").exit_code == 2
    assert cli("apply", "--sandbox", "--target", "staging", "--auto-approve").exit_code == 0
    assert cli("plan", "--sandbox", "--target", "staging", "--detailed-exitcode").exit_code == 0


def test_a_target_error_is_prefixed_once(workdir: Path, tmp_path: Path) -> None:
    unset: dict[str, str | None] = {
        name: None  # CliRunner unsets a variable given as None
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        )
    }
    env = {
        **unset,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    line = one_error_line(cli("plan", "--target", "production", env=env))
    assert line.count("target 'production'") == 1
    assert "no AWS credentials found" in line


# -- colour conventions (no-color.org, TERM=dumb, --color when piped) -------------------------


@pytest.mark.parametrize(
    ("tty", "environ", "expected"),
    [
        (True, {}, True),
        (False, {}, False),  # piped: no colour unless --color
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
        (True, {"TERM": "dumb"}, False),
        (True, {"TERM": "xterm-256color"}, True),
    ],
    ids=["tty", "piped", "no-color", "no-color-empty", "term-dumb", "term-xterm"],
)
def test_colour_by_default_follows_the_conventions(
    tty: bool, environ: dict[str, str], expected: bool
) -> None:
    from reconciler.commands.common import colour_default

    assert colour_default(tty, environ) is expected


def test_color_flag_forces_colour_even_when_piped(workdir: Path) -> None:
    coloured = cli("plan", "--sandbox", "--target", "staging", "--color")
    plain = cli("plan", "--sandbox", "--target", "staging")
    assert coloured.exit_code == plain.exit_code == 0
    assert "\x1b[" in coloured.stdout  # CliRunner's stdout is not a terminal
    assert "\x1b[" not in plain.stdout
    dumb = cli("plan", "--sandbox", "--target", "staging", env={"TERM": "dumb"})
    assert "\x1b[" not in dumb.stdout


# -- KMS_RECONCILER_LOG: every AWS request, never a secret -----------------------------------


def test_debug_log_shows_every_request_and_no_policy(workdir: Path, tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    env = {"KMS_RECONCILER_LOG": "debug", "KMS_RECONCILER_LOG_FILE": str(log)}
    result = cli("apply", "--sandbox", "--target", "staging", "--auto-approve", env=env)
    assert result.exit_code == 0, result.output
    lines = log.read_text().splitlines()
    creates = [line for line in lines if " CreateKey attempt 1: ok in " in line]
    assert len(creates) == 7  # six keys of staging and the lock anchor
    assert any(" CreateAlias " in line and "AliasName=alias/app-data-key" in line for line in lines)
    text = "\n".join(lines)
    assert '"Statement"' not in text and "Policy=" not in text  # never a parameter value
    assert cli("plan", "--sandbox", "-vvv", "--target", "staging").stderr.count(" attempt 1: ") > 5


def test_a_bad_log_level_is_an_input_error(workdir: Path) -> None:
    line = one_error_line(cli("plan", "--sandbox", env={"KMS_RECONCILER_LOG": "loud"}))
    assert line.startswith("error: KMS_RECONCILER_LOG: must be one of debug")


def test_drift_fail_on_takes_only_severities_drift_has(workdir: Path) -> None:
    line = one_error_line(cli("drift", "--fail-on", "critical"))
    assert "'critical' is not one of 'low', 'medium', 'high'" in line


def test_an_unreachable_sts_says_which_endpoint_to_set(workdir: Path) -> None:
    # port 9 on loopback: nothing listens, the connection is refused at once
    env = {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
    }
    line = one_error_line(cli("plan", "--target", "staging", env=env))
    assert "cannot reach AWS STS" in line and "AWS_ENDPOINT_URL_STS" in line


@pytest.mark.parametrize("command", [*COMMANDS, "force-unlock", "permissions", "init", "schema"])
def test_every_command_help_has_an_example(workdir: Path, command: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0
    assert "Examples:\n  kms-reconciler " in result.stdout.replace("    ", "  ")


def test_render_filters_by_region(workdir: Path) -> None:
    result = cli("render", "--format", "json", "--region", "eu-west-1")
    assert result.exit_code == 0, result.output
    regions = {k["region"] for k in json.loads(result.stdout)["keys"]}
    assert regions == {"eu-west-1"}
    assert one_error_line(cli("render", "--region", "ap-south-1")).endswith(
        "--region: no target in Region ap-south-1"
    )
