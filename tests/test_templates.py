"""The policy templates of the sample inventory and the template renderer.

Every template under keyspecs/policies must render, for every key and both targets of the
sample inventory, to a valid key policy that keeps the root delegation statement (so the
account can never be locked out of a key). The renderer must give templates the context
DESIGN section 3 promises, and report a rendered policy that is not JSON at the template
line that produced the bad text.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.desired import build_desired
from reconciler.errors import InputError
from reconciler.loader import load_inventory
from reconciler.policy import can_manage_policy, validate_policy
from reconciler.spec import PolicySource
from reconciler.state import DesiredKey, DesiredTarget
from reconciler.templates import PolicyRenderer, RenderedPolicy, TemplateError

SAMPLE = Path(__file__).resolve().parents[1] / "keyspecs"
TEMPLATES = sorted(p.name for p in (SAMPLE / "policies").glob("*.j2"))


def _key_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*.yaml")
        if p.name != "inventory.yaml" and "policies" not in p.relative_to(root).parts
    )


def _sample_vars() -> dict[str, dict[str, Any]]:
    """The vars the sample specs pass to each template (the first key that uses it)."""
    found: dict[str, dict[str, Any]] = {}
    for path in _key_files(SAMPLE):
        for spec in yaml.safe_load(path.read_text(encoding="utf-8"))["keys"]:
            policy = spec.get("policy") or {}
            if "template" in policy:
                found.setdefault(policy["template"], policy.get("vars", {}))
    return found


SAMPLE_VARS = _sample_vars()


def _problems(exc: InputError) -> str:
    return "\n".join(str(p) for p in exc.problems)


def _desired(root: Path, renderer: PolicyRenderer | None = None) -> list[DesiredTarget]:
    inventory = load_inventory(root)
    try:
        return build_desired(inventory, inventory.settings.targets, renderer)
    except InputError as exc:  # show every problem, not just the first
        pytest.fail(_problems(exc))


def _sample_key_names() -> list[str]:
    names = []
    for path in _key_files(SAMPLE):
        names += [k["name"] for k in yaml.safe_load(path.read_text(encoding="utf-8"))["keys"]]
    return names


def assert_safe_policy(dt: DesiredTarget, dk: DesiredKey) -> None:
    """Valid JSON object, valid key policy, root delegation kept, text == document."""
    where = f"{dt.target.name}/{dk.state.name} ({dk.source.policy_origin})"
    document = json.loads(dk.policy_text)
    assert isinstance(document, dict), where
    assert document == dk.state.policy, where
    assert validate_policy(document) == [], where
    assert can_manage_policy(
        document, [], account_id=dt.target.account_id, partition=dt.target.partition
    ), f"{where}: the account root can no longer manage the key"
    root = f"arn:{dt.target.partition}:iam::{dt.target.account_id}:root"
    assert any(
        s.get("Effect") == "Allow"
        and s.get("Principal") == {"AWS": root}
        and s.get("Action") == "kms:*"
        and "Condition" not in s
        for s in document["Statement"]
    ), f"{where}: no root delegation statement"


# -- the sample inventory -------------------------------------------------------------------


def test_sample_has_templates_and_targets() -> None:
    """Guards the parametrization below: an empty glob would test nothing."""
    assert len(TEMPLATES) >= 7 and "default.json.j2" in TEMPLATES
    inventory = load_inventory(SAMPLE)
    assert [t.name for t in inventory.settings.targets] == ["production", "staging"]


def test_sample_inventory_renders_safe_policies_for_every_key_and_target() -> None:
    desired = _desired(SAMPLE)
    seen = set()
    for dt in desired:
        for dk in dt.keys:
            assert_safe_policy(dt, dk)
            seen.add((dt.target.name, dk.state.name))
    # every key in both targets, except release-signing and dr-backups (production only)
    names = _sample_key_names()
    expected = {(t, n) for t in ("production", "staging") for n in names} - {
        ("staging", "release-signing"),
        ("staging", "dr-backups"),
    }
    assert seen == expected
    # the multi-Region key's replica gets the same template, rendered for its own Region
    (dr,) = [dk for dt in desired for dk in dt.keys if dk.name == "dr-backups"]
    (replica,) = dr.replicas
    assert replica.region == "us-west-2" and replica.state.policy == dr.state.policy
    assert replica.state.tags["Role"] == "disaster-recovery"


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders_for_every_key_and_both_targets(
    template: str, tmp_path: Path
) -> None:
    """Give every sample key this template (with the vars the sample uses for it) in every
    target, and check the policy each one gets."""
    root = tmp_path / "keyspecs"
    shutil.copytree(SAMPLE, root)
    count = 0
    for path in _key_files(root):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for spec in data["keys"]:
            spec.pop("targets", None)
            spec["policy"] = {"template": template}
            if SAMPLE_VARS.get(template):
                spec["policy"]["vars"] = SAMPLE_VARS[template]
            count += 1
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    desired = _desired(root)
    assert len(desired) == 2
    for dt in desired:
        assert len(dt.keys) == count, dt.target.name
        for dk in dt.keys:
            assert dk.source.policy_origin == f"template {template}"
            assert dk.source.policy_file is not None
            assert dk.source.policy_file.endswith(f"policies/{template}")
            assert_safe_policy(dt, dk)


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_has_target_specific_arns(template: str, tmp_path: Path) -> None:
    """The same spec renders each target's own account into the root statement."""
    root = tmp_path / "keyspecs"
    shutil.copytree(SAMPLE, root)
    policy: dict[str, Any] = {"template": template}
    if SAMPLE_VARS.get(template):
        policy["vars"] = SAMPLE_VARS[template]
    for path in _key_files(root):
        path.unlink()
    (root / "one.yaml").write_text(
        yaml.safe_dump({"keys": [{"name": "one", "policy": policy}]}), encoding="utf-8"
    )
    by_target = {dt.target.account_id: dt.keys[0].policy_text for dt in _desired(root)}
    assert set(by_target) == {"111122223333", "444455556666"}
    for account, text in by_target.items():
        other = ({"111122223333", "444455556666"} - {account}).pop()
        assert f"arn:aws:iam::{account}:root" in text
        assert other not in text


class RecordingRenderer(PolicyRenderer):
    """A renderer that keeps what it was asked to render, and what it produced."""

    def __init__(self, policies_dir: Path) -> None:
        super().__init__(policies_dir)
        self.calls: list[tuple[PolicySource, dict[str, Any], RenderedPolicy]] = []

    def render(self, source: PolicySource, context: Mapping[str, Any]) -> RenderedPolicy:
        rendered = super().render(source, context)
        self.calls.append((source, dict(context), rendered))
        return rendered


def test_renderer_output_is_exactly_what_jinja_renders() -> None:
    """The renderer notes template lines while it renders; that must not change the text."""
    renderer = RecordingRenderer(SAMPLE / "policies")
    _desired(SAMPLE, renderer)
    templated = [c for c in renderer.calls if c[0].template is not None]
    assert len(templated) >= 8
    for source, context, rendered in templated:
        assert source.template is not None
        plain = renderer.env.get_template(source.template).render(
            **{**context, "vars": source.vars}
        )
        assert rendered.text == plain, source.template


# -- the template context -------------------------------------------------------------------

CONTEXT_TEMPLATE = """\
{%- set seen = {
  "account_id": account_id,
  "region": region,
  "partition": partition,
  "target.name": target.name,
  "target.vars": target.vars,
  "key.name": key.name,
  "key.aliases": key.aliases,
  "key.tags": key.tags,
  "key.description": key.description,
  "vars": vars,
} -%}
{
  "Version": "2012-10-17",
  "Id": {{ seen | tojson | tojson }},
  "Statement": [
    {
      "Effect": "Allow",
      "Principal": {"AWS": "arn:{{ partition }}:iam::{{ account_id }}:root"},
      "Action": "kms:*",
      "Resource": "*"
    }
  ]
}
"""

CONTEXT_INVENTORY = """\
targets:
  - name: prod
    account_id: "111122223333"
    region: us-east-1
    vars: {environment: production, tier: 1}
  - name: china
    account_id: "222233334444"
    region: cn-northwest-1
  - name: gov
    account_id: "333344445555"
    region: us-gov-west-1
    vars: {environment: gov}
defaults:
  tags: {ManagedBy: kms-reconciler}
"""

CONTEXT_KEY = """\
keys:
  - name: app-data
    description: Application data
    aliases: [alias/app-data, alias/app/extra]
    tags: {Owner: web}
    policy:
      template: context.json.j2
      vars: {admin_roles: [AdminRole], nested: {a: [1, 2]}}
  - name: bare
    policy: {template: context.json.j2}
"""


def test_template_context_has_everything_the_design_promises(tmp_path: Path) -> None:
    root = tmp_path / "keyspecs"
    (root / "policies").mkdir(parents=True)
    (root / "inventory.yaml").write_text(CONTEXT_INVENTORY, encoding="utf-8")
    (root / "app.yaml").write_text(CONTEXT_KEY, encoding="utf-8")
    (root / "policies" / "context.json.j2").write_text(CONTEXT_TEMPLATE, encoding="utf-8")
    seen = {
        (dt.target.name, dk.state.name): json.loads(dk.state.policy["Id"])  # type: ignore[index]
        for dt in _desired(root)
        for dk in dt.keys
    }
    assert seen[("prod", "app-data")] == {
        "account_id": "111122223333",
        "region": "us-east-1",
        "partition": "aws",
        "target.name": "prod",
        "target.vars": {"environment": "production", "tier": 1},
        "key.name": "app-data",
        "key.aliases": ["alias/app-data", "alias/app/extra"],
        "key.tags": {"ManagedBy": "kms-reconciler", "Owner": "web"},  # merged with defaults
        "key.description": "Application data",
        "vars": {"admin_roles": ["AdminRole"], "nested": {"a": [1, 2]}},
    }
    china = seen[("china", "bare")]
    assert (china["account_id"], china["region"], china["partition"]) == (
        "222233334444",
        "cn-northwest-1",
        "aws-cn",
    )
    assert china["target.vars"] == {} and china["vars"] == {}
    assert china["key.aliases"] == [] and china["key.description"] == ""
    assert china["key.tags"] == {"ManagedBy": "kms-reconciler"}
    gov = seen[("gov", "app-data")]
    assert (gov["partition"], gov["target.name"], gov["target.vars"]) == (
        "aws-us-gov",
        "gov",
        {"environment": "gov"},
    )
    assert len(seen) == 6


def test_template_context_has_nothing_else(tmp_path: Path) -> None:
    """Under StrictUndefined an unknown name is an error, never an empty string."""
    (tmp_path / "t.json.j2").write_text('{"Id": "{{ environment }}"}\n', encoding="utf-8")
    renderer = PolicyRenderer(tmp_path)
    with pytest.raises(TemplateError, match="'environment' is undefined"):
        renderer.render(PolicySource(template="t.json.j2"), {"target": {"vars": {}}})


# -- one render for the keys that give a template the same values -------------------------

SHARED = (
    """{"Version": "2012-10-17", "Id": "{{ account_id }}-{{ vars.team }}", "Statement": []}\n"""
)
PER_KEY = """{"Version": "2012-10-17", "Id": "{{ key.name }}", "Statement": []}\n"""


def key_context(name: str, account: str = "111122223333", team: str = "web") -> dict[str, Any]:
    return {
        "account_id": account,
        "partition": "aws",
        "region": "us-east-1",
        "target": {"name": "prod", "vars": {}},
        "key": {"name": name, "aliases": [f"alias/{name}"], "tags": {}},
        "team": team,
    }


def render(renderer: PolicyRenderer, name: str, context: dict[str, Any]) -> RenderedPolicy:
    source = PolicySource(template=name, vars={"team": context.pop("team")})
    return renderer.render(source, context)


def test_keys_that_give_a_template_the_same_values_share_one_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shared.json.j2").write_text(SHARED, encoding="utf-8")
    renderer = PolicyRenderer(tmp_path)
    renders: list[str] = []
    real = renderer._render_anew

    def counted(name: str, context: Mapping[str, Any]) -> RenderedPolicy:
        renders.append(name)
        return real(name, context)

    monkeypatch.setattr(renderer, "_render_anew", counted)
    first = render(renderer, "shared.json.j2", key_context("a"))
    second = render(renderer, "shared.json.j2", key_context("b"))  # reads no key.* name
    assert first.text == second.text and first.document == second.document
    assert first.document is not second.document  # each key its own document
    second.document["Id"] = "changed"
    assert first.document["Id"] == "111122223333-web"
    assert len(renders) == 1
    other_team = render(renderer, "shared.json.j2", key_context("c", team="db"))
    other_account = render(renderer, "shared.json.j2", key_context("d", account="444455556666"))
    assert other_team.document["Id"] == "111122223333-db"
    assert other_account.document["Id"] == "444455556666-web"
    assert len(renders) == 3


def test_a_template_that_reads_the_key_renders_for_each_key(tmp_path: Path) -> None:
    (tmp_path / "per-key.json.j2").write_text(PER_KEY, encoding="utf-8")
    (tmp_path / "outer.json.j2").write_text('{% include "per-key.json.j2" %}', encoding="utf-8")
    renderer = PolicyRenderer(tmp_path)
    for template in ("per-key.json.j2", "outer.json.j2"):  # the include reads key.name too
        ids = [render(renderer, template, key_context(n)).document["Id"] for n in "ab"]
        assert ids == ["a", "b"], template


@pytest.mark.parametrize(
    "template",
    [
        '{"Id": "{{ [1, 2, 3] | random }}", "Statement": []}',
        '{"Id": "{{ lipsum(1, false, 2, 3) | trim }}", "Statement": []}',
        '{% set t = "per-key" %}{% include t ~ ".json.j2" %}',
    ],
    ids=["random-filter", "lipsum", "computed-include"],
)
def test_templates_whose_output_cannot_be_told_from_their_values_render_every_time(
    tmp_path: Path, template: str
) -> None:
    (tmp_path / "t.json.j2").write_text(template, encoding="utf-8")
    (tmp_path / "per-key.json.j2").write_text(PER_KEY, encoding="utf-8")
    renderer = PolicyRenderer(tmp_path)
    assert renderer._reads("t.json.j2") is None
    assert renderer._reads("per-key.json.j2") == ("key",)


def test_a_template_error_is_reported_for_every_key_that_renders_it(tmp_path: Path) -> None:
    (tmp_path / "t.json.j2").write_text('{"Id": "{{ vars.missing }}"}', encoding="utf-8")
    renderer = PolicyRenderer(tmp_path)
    for name in "ab":
        with pytest.raises(TemplateError, match="undefined"):
            render(renderer, "t.json.j2", key_context(name))


# -- where a rendered policy that is not JSON went wrong ------------------------------------

LOOP_TEMPLATE = """\
{#-
  A header comment that renders to nothing.
-#}
{
  "Version": "2012-10-17",
  "Statement": [
{% for r in vars.roles %}
    {"Effect": "Allow", "Principal": {"AWS": "{{ r }}"}, "Action": "kms:*", "Resource": "*"},
{% endfor %}
  ]
}
"""


@pytest.mark.parametrize(
    ("template", "line", "fragment"),
    [
        pytest.param(LOOP_TEMPLATE, 10, "Expecting value at rendered line 6", id="trailing-comma"),
        pytest.param(
            '{#- c\n-#}\n{\n  "Version": "2012-10-17"\n  "Statement": []\n}\n',
            5,
            "Expecting ',' delimiter",
            id="missing-comma-static-text",
        ),
        pytest.param(
            '{#- c -#}\n{\n  "Version": "2012-10-17",\n  "Id": {{ vars.roles }}\n}\n',
            4,
            "Expecting value",
            id="python-list-from-expression",
        ),
        pytest.param(
            '{% set x = 1 %}\n{% if x %}\n{\n{% endif %}\n  "Version": "2012-10-17",,\n}\n',
            5,
            "Expecting property name",
            id="after-blocks",
        ),
        pytest.param(
            '{%- macro arn(r) -%}\n"arn:aws:iam::1:role/{{ r }}"\n{%- endmacro -%}\n'
            '{\n  "Version": "2012-10-17",\n  "Id": {{ arn("a") }} {{ arn("b") }}\n}\n',
            6,
            "Expecting ',' delimiter",
            id="after-macro-call",
        ),
        pytest.param(
            '{\n  "Version": "2012-10-17",\n  "Statement": [\n',
            3,
            "Expecting value",
            id="unterminated",
        ),
        pytest.param("{#- nothing -#}\n", 1, "rendered policy is empty", id="empty"),
    ],
)
def test_json_errors_point_at_the_template_line(
    template: str, line: int, fragment: str, tmp_path: Path
) -> None:
    (tmp_path / "t.json.j2").write_text(template, encoding="utf-8")
    renderer = PolicyRenderer(tmp_path)
    with pytest.raises(TemplateError) as info:
        renderer.render(
            PolicySource(template="t.json.j2", vars={"roles": ["a", "b"]}),
            {"account_id": "111122223333", "partition": "aws"},
        )
    assert info.value.line == line, info.value.message
    assert fragment in info.value.message
    assert info.value.file is not None and info.value.file.endswith("t.json.j2")


def test_plain_json_file_errors_use_the_file_line(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{\n  "Version": "2012-10-17",\n}\n', encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        PolicyRenderer(tmp_path).render(PolicySource(file="p.json"), {})
    assert (info.value.line, info.value.field) == (3, None)
    assert "Expecting property name" in info.value.message


@pytest.mark.parametrize(
    ("source", "field"),
    [
        pytest.param(PolicySource(template="missing.j2"), "template", id="template-missing"),
        pytest.param(PolicySource(file="missing.json"), "file", id="file-missing"),
        pytest.param(PolicySource(file="../x.json"), "file", id="file-dotdot"),
        pytest.param(PolicySource(template="/etc/x.j2"), "template", id="template-absolute"),
    ],
)
def test_spec_mistakes_blame_the_policy_field(source: PolicySource, field: str) -> None:
    with pytest.raises(TemplateError) as info:
        PolicyRenderer(SAMPLE / "policies").render(source, {})
    assert (info.value.file, info.value.field) == (None, field)


@pytest.mark.parametrize(
    "payload",
    [
        "{{ 'a' * 10**9 }}",
        "{{ ('a' * 90000) * 90000 }}",
        "{{ [1] * 1000000 }}",
        "{{ 2 ** n }}",
        "{{ 'x'.center(10**9) }}",
        "{{ 'x'|center(10**9) }}",
        "{{ 'x'|indent(10**9) }}",
        "{{ range(10**9)|list }}",
    ],
    ids=[
        "string-repeat",
        "nested-repeat",
        "list-repeat",
        "huge-power",
        "str-method",
        "center-filter",
        "indent-filter",
        "huge-range",
    ],
)
def test_templates_cannot_exhaust_memory(payload: str, tmp_path: Path) -> None:
    (tmp_path / "p.json.j2").write_text(payload + "\n", encoding="utf-8")
    renderer = PolicyRenderer(tmp_path)
    with pytest.raises(TemplateError, match="refused by the sandbox") as err:
        renderer.render(PolicySource(template="p.json.j2", vars={}), {"n": 10**9})
    assert err.value.line == 1
