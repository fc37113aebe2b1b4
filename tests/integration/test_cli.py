"""`keyway admin …` against a real control plane, run in-process (and once as a process)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from keyway.v1 import access_key_configurations_pb2 as cfg
from keyway.v1 import access_key_configurations_pb2_grpc as cfg_grpc
from keyway.v1 import provider_keys_pb2, provider_keys_pb2_grpc

from control_plane.cli.main import main

from .cli_runner import TOKEN_LINE, Cli, Result, ok, runner
from .control_planes import RunningControlPlane
from .rpc_helpers import product_document

OPENAI_SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz"
ROTATED_SECRET = "sk-proj-ROTATEDROTATEDROTATED0123"
BACKUP_SECRET = "sk-proj-backupbackupbackup9876"


@pytest.fixture
def cli(control_plane: RunningControlPlane, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The CLI as the default account's admin."""
    return runner(control_plane, capsys, control_plane.admin_token)


def create_provider_key(cli: Cli, name: str, secret: str, provider: str = "openai") -> str:
    created = ok(
        cli("provider-keys", "create", "--provider", provider, "--name", name, "--value", secret)
    )
    match = re.search(r"^id\s+(pk_\S+)$", created.out, re.MULTILINE)
    assert match, created.out
    return match.group(1)


def write_json(path: Path, document: object) -> str:
    path.write_text(json.dumps(document, indent=2))
    return str(path)


def test_readme_flow(cli: Cli, tmp_path: Path) -> None:
    outputs: list[str] = []

    def run(*argv: str, stdin: str | None = None) -> Result:
        result = cli(*argv, stdin=stdin)
        outputs.append(result.out + result.err)
        return result

    created = ok(
        run(
            "provider-keys",
            "create",
            "--provider",
            "openai",
            "--name",
            "My OpenAI Key",
            "--value",
            OPENAI_SECRET,
        )
    )
    assert re.search(r"^redacted_value\s+sk-proj-ab\*\*\*wxyz$", created.out, re.MULTILINE)
    primary = re.findall(r"^id\s+(pk_\S+)$", created.out, re.MULTILINE)[0]

    rotated = ok(
        run("provider-keys", "rotate", primary, "--value", "-", stdin=ROTATED_SECRET + "\n")
    )
    assert re.search(rf"^id\s+{primary}$", rotated.out, re.MULTILINE)
    assert re.search(r"^redacted_value\s+sk-proj-RO\*\*\*0123$", rotated.out, re.MULTILINE)

    backup = create_provider_key(run, "Backup", BACKUP_SECRET)
    listed = ok(run("provider-keys", "list"))
    header = listed.out.splitlines()[0]
    assert re.fullmatch(r"ID\s+PROVIDER\s+NAME\s+STATE\s+VALUE\s+LAST USED\s+LAST ERROR", header)
    assert {line.split()[0] for line in listed.out.splitlines()[1:]} == {primary, backup}

    config_file = write_json(tmp_path / "config.json", product_document(primary, backup, primary))
    config = ok(run("configurations", "create", "--file", config_file, "--json")).json()
    assert config["name"] == "Production"
    assert config["router"]["rules"][0]["steps"][0]["keys"] == [{"id": primary}, {"id": backup}]
    shown = ok(run("configurations", "get", config["id"]))
    assert re.search(rf"^router\s+openai: user ordered \[{primary}, {backup}\]$", shown.out, re.M)
    assert f"openai/gpt-4o-mini: user ordered [{primary}]" in shown.out

    access_key = ok(
        run("access-keys", "create", "--name", "checkout", "--configuration", config["id"])
    )
    tokens = TOKEN_LINE.findall(access_key.out)
    assert len(tokens) == 1
    token = tokens[0]
    assert access_key.out.count(token) == 1
    access_key_id = re.findall(r"^id\s+(ak_\S+)$", access_key.out, re.MULTILINE)[0]
    assert re.search(rf"^configuration_id\s+{config['id']}$", access_key.out, re.MULTILINE)
    assert token not in ok(run("access-keys", "get", access_key_id)).out

    refused = run("provider-keys", "delete", backup)
    assert refused.code == 1
    assert refused.err.startswith("keyway: error: FAILED_PRECONDITION (PROVIDER_KEY_IN_USE): ")
    assert f"\n  {config['id']}" in refused.err

    unlinked = ok(run("access-keys", "update", access_key_id, "--configuration", "none", "--json"))
    assert "configurationId" not in unlinked.json()
    row = ok(run("access-keys", "list")).out.splitlines()[1]
    assert re.fullmatch(rf"{access_key_id}\s+checkout\s+enabled\s+kw\S*\*\*\*\S+\s+-\s+-", row)

    everything = "\n".join(outputs)
    for secret in (OPENAI_SECRET, ROTATED_SECRET, BACKUP_SECRET):
        assert secret not in everything


def test_configuration_update_replaces_only_the_fields_in_the_file(
    cli: Cli, tmp_path: Path
) -> None:
    key = create_provider_key(cli, "k", OPENAI_SECRET)
    backup = create_provider_key(cli, "b", BACKUP_SECRET)
    document = product_document(key, backup, key)
    created = ok(
        cli(
            "configurations",
            "create",
            "--file",
            write_json(tmp_path / "c.json", document),
            "--json",
        )
    ).json()

    renamed = ok(
        cli(
            "configurations",
            "update",
            created["id"],
            "--file",
            "-",
            "--json",
            stdin='{"name": "Renamed", "access": null}',
        )
    ).json()
    assert renamed["name"] == "Renamed"
    assert "access" not in renamed
    assert renamed["router"] == created["router"]

    stale = cli(
        "configurations",
        "update",
        created["id"],
        "--file",
        write_json(tmp_path / "n.json", {"name": "Again"}),
        "--etag",
        created["etag"],
    )
    assert stale.code == 1
    assert stale.err.startswith("keyway: error: ABORTED")

    nothing = cli(
        "configurations", "update", created["id"], "--file", write_json(tmp_path / "e.json", {})
    )
    assert nothing.code == 2
    assert "sets none of the fields an update replaces" in nothing.err


def test_malformed_configuration_file_gives_line_and_column(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "x",\n  "router": {"rules": [}\n}\n')
    result = cli("configurations", "create", "--file", str(path))
    assert result.code == 2
    where = "malformed JSON at line 3, column 24: Expecting value"
    assert result.err == f"keyway: error: {path}: {where}\n"


def test_unknown_field_in_configuration_file_is_named(cli: Cli, tmp_path: Path) -> None:
    document = {"name": "x", "router": {"rules": [{"provider": "openai", "steps": [{"kyes": []}]}]}}
    path = write_json(tmp_path / "typo.json", document)
    result = cli("configurations", "create", "--file", path)
    assert result.code == 2
    assert result.err.startswith(
        f"keyway: error: {path}: router.rules[0].steps[0].kyes: unknown field "
        "(expected one of: type, keySelectionStrategy, keys)"
    )


def test_bad_key_reference_reports_the_servers_field_path(cli: Cli, tmp_path: Path) -> None:
    key = create_provider_key(cli, "k", OPENAI_SECRET)
    document = product_document(key, "pk_doesnotexist00", key)
    result = cli("configurations", "create", "--file", write_json(tmp_path / "c.json", document))
    assert result.code == 1
    assert result.err.startswith("keyway: error: INVALID_ARGUMENT (INVALID_CONFIGURATION): ")
    assert re.search(
        r"^  router\.rules\[0\]\.steps\[0\]\.keys\[1\]\.id: .*pk_doesnotexist00",
        result.err,
        re.MULTILINE,
    )


def test_unknown_provider_is_refused_by_name(cli: Cli) -> None:
    result = cli("provider-keys", "create", "--provider", "nope", "--name", "x", "--value", "v")
    assert result.code == 1
    assert result.err.startswith("keyway: error: INVALID_ARGUMENT")
    assert "provider_id: " in result.err
    assert "'nope'" in result.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("provider-keys", "create", "--provider", "openai", "--value", "v"),
            "the following arguments are required: --name",
        ),
        (("provider-keys", "update", "pk_x"), "nothing to update: give at least one of --name"),
        (("configurations", "create", "--file", "/nonexistent/c.json"), "cannot read"),
        (("custom-providers", "create", "--provider-id", "p", "--name", "n", "--base-url",
          "https://x", "--format", "grpc"),
         "invalid choice 'grpc' (choose from openai, anthropic)"),
        (("custom-providers", "update", "cp_x", "--model", "=up"), "expected ID or ID=UPSTREAM_ID"),
        (("provider-keys", "list", "--page-size", "0"), "expected a positive integer"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_with_a_message(cli: Cli, argv: tuple[str, ...], message: str) -> None:
    result = cli(*argv)
    assert result.code == 2
    assert message in result.err
    assert result.out == ""


def test_wrong_token_is_unauthenticated(cli: Cli) -> None:
    result = cli("providers", "list", token="kwadm_nottherightone")
    assert result.code == 1
    assert result.err.startswith("keyway: error: UNAUTHENTICATED")
    assert "--token" in result.err


def test_json_output_is_parseable_camel_case(cli: Cli) -> None:
    key = create_provider_key(cli, "k", OPENAI_SECRET)
    listed = ok(cli("provider-keys", "list", "--json")).json()
    assert isinstance(listed, list)
    assert [item["id"] for item in listed] == [key]
    assert {"providerId", "redactedValue", "createTime", "updateTime", "etag"} <= set(listed[0])
    one = ok(cli("provider-keys", "get", key, "--json")).json()
    assert one == listed[0]
    assert ok(cli("provider-keys", "list", "--json", "--provider", "anthropic")).json() == []
    assert ok(cli("provider-keys", "delete", key, "--json")).json() == {}


def test_connection_options_work_after_admin_and_after_the_leaf(
    control_plane: RunningControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = f"127.0.0.1:{free_port()}"
    token = control_plane.admin_token
    for argv in (
        ["--json", "--addr", control_plane.address, "--token", token, "providers", "list"],
        ["providers", "list", "--json", "--addr", control_plane.address, "--token", token],
        # The leaf's value wins over the one given after `admin`.
        ["--addr", unreachable, "--token", "x", "providers", "list", "--addr",
         control_plane.address, "--token", token, "--json"],
    ):  # fmt: skip
        assert main(["admin", *argv]) == 0, capsys.readouterr().err
        catalog = json.loads(capsys.readouterr().out)
        assert "openai" in [provider["id"] for provider in catalog]


def test_lists_fetch_every_page_unless_one_is_asked_for(
    cli: Cli, control_plane: RunningControlPlane
) -> None:
    stub = provider_keys_pb2_grpc.ProviderKeyServiceStub(control_plane.channel)
    for index in range(105):
        stub.CreateProviderKey(
            provider_keys_pb2.CreateProviderKeyRequest(
                provider_key=provider_keys_pb2.ProviderKey(provider_id="openai", name=f"k{index}"),
                value=f"sk-proj-{index:030d}",
            ),
            metadata=control_plane.admin,
        )
    everything = ok(cli("provider-keys", "list", "--json")).json()
    assert [item["name"] for item in everything] == [f"k{index}" for index in range(105)]
    assert len(ok(cli("provider-keys", "list")).out.splitlines()) == 1 + 105

    first = ok(cli("provider-keys", "list", "--page-size", "40"))
    lines = first.out.splitlines()
    assert len(lines) == 1 + 40 + 2
    assert lines[-2] == ""
    match = re.fullmatch(r"Next page: --page-token (\S+)", lines[-1])
    assert match
    rest = cli("provider-keys", "list", "--page-size", "100", "--page-token", match[1], "--json")
    assert [item["name"] for item in ok(rest).json()] == [f"k{i}" for i in range(40, 105)]

    paged_json = cli("provider-keys", "list", "--page-size", "100", "--json")
    assert len(paged_json.json()) == 100
    assert paged_json.err.startswith("next page token: ")


def test_accounts_and_admin_keys_with_the_operator_token(
    cli: Cli, control_plane: RunningControlPlane
) -> None:
    operator = control_plane.operator_token
    account = ok(
        cli("accounts", "create", "--display-name", "Team B", "--json", token=operator)
    ).json()
    assert account["displayName"] == "Team B"
    listed = ok(cli("accounts", "list", token=operator)).out
    assert re.search(
        rf"^{account['id']}\s+Team B\s+-\s+\S+Z\s+(published|pending)$", listed, re.MULTILINE
    )

    updated = ok(
        cli("accounts", "update", account["id"], "--description", "billing", token=operator)
    )
    assert re.search(r"^description\s+billing$", updated.out, re.MULTILINE)
    own = ok(cli("accounts", "get", "--json")).json()
    assert own["id"] != account["id"]

    created = ok(
        cli("admin-keys", "create", "--name", "ci", "--account", account["id"], token=operator)
    )
    (token,) = TOKEN_LINE.findall(created.out)
    keys = ok(cli("admin-keys", "list", "--json", token=token)).json()
    assert [key["name"] for key in keys] == ["ci"]
    assert token not in json.dumps(keys)
    as_json = ok(
        cli(
            "admin-keys",
            "create",
            "--name",
            "ci2",
            "--account",
            own["id"],
            "--json",
            token=operator,
        )
    ).json()
    assert set(as_json) == {"adminApiKey", "token"}

    ok(cli("accounts", "delete", account["id"], "--force", token=operator))
    missing = cli("accounts", "get", account["id"], token=operator)
    assert missing.err.startswith("keyway: error: NOT_FOUND")


def test_custom_providers_and_the_catalog(cli: Cli) -> None:
    created = ok(
        cli(
            "custom-providers",
            "create",
            "--provider-id",
            "x-my-llm",
            "--name",
            "My LLM",
            "--base-url",
            "https://llm.example.com/v1",
            "--format",
            "openai",
            "--format",
            "anthropic",
            "--auth-style",
            "x-api-key",
            "--model",
            "llama",
            "--model",
            "fast=llama-3-8b",
        )
    )
    assert re.search(r"^formats\s+openai, anthropic$", created.out, re.MULTILINE)
    assert re.search(r"^auth_style\s+x-api-key$", created.out, re.MULTILINE)
    assert re.search(r"^models\s+llama, fast=llama-3-8b$", created.out, re.MULTILINE)
    custom_id = re.findall(r"^id\s+(\S+)$", created.out, re.MULTILINE)[0]

    updated = ok(cli("custom-providers", "update", custom_id, "--model", "only", "--json")).json()
    assert updated["models"] == [{"id": "only"}]
    assert updated["formats"] == ["API_FORMAT_OPENAI", "API_FORMAT_ANTHROPIC"]

    catalog = ok(cli("providers", "list")).out.splitlines()
    rows = {line.split()[0]: line for line in catalog[1:]}
    assert re.match(r"openai\s+OpenAI\s+yes\s+openai\s+bearer\s+\d+\s+https://", rows["openai"])
    assert re.search(r"\s+no\s+openai, anthropic\s+x-api-key\s+1\s+https://llm", rows["x-my-llm"])

    ok(cli("custom-providers", "delete", custom_id))
    assert ok(cli("custom-providers", "list", "--json")).json() == []


def test_master_key_rotation(cli: Cli, control_plane: RunningControlPlane) -> None:
    create_provider_key(cli, "k", OPENAI_SECRET)
    rotated = ok(cli("master-key", "rotate", "--json", token=control_plane.operator_token))
    assert rotated.json()["keyId"].startswith("kek_")
    assert rotated.json()["rewrapped"] >= 1
    resumed = ok(cli("master-key", "rotate", "--resume-only", token=control_plane.operator_token))
    assert re.search(rf"^key_id\s+{rotated.json()['keyId']}$", resumed.out, re.MULTILINE)
    assert cli("master-key", "rotate").err.startswith("keyway: error: PERMISSION_DENIED")


@pytest.mark.parametrize("source", ["data-dir", "cwd", "token-file", "env"])
def test_token_sources(
    control_plane: RunningControlPlane,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    source: str,
) -> None:
    monkeypatch.delenv("KEYWAY_TOKEN", raising=False)
    monkeypatch.delenv("KEYWAY_DATA_DIR", raising=False)
    monkeypatch.setenv("KEYWAY_ADDR", control_plane.address)
    monkeypatch.chdir(tmp_path)
    token_file = control_plane.data_dir / "admin.token"
    extra: list[str] = []
    if source == "data-dir":
        monkeypatch.setenv("KEYWAY_DATA_DIR", str(control_plane.data_dir))
    elif source == "cwd":
        (tmp_path / ".keyway").mkdir()
        shutil.copy(token_file, tmp_path / ".keyway" / "admin.token")
    elif source == "token-file":
        extra = ["--token-file", str(token_file)]
    else:
        monkeypatch.setenv("KEYWAY_TOKEN", control_plane.admin_token)
    assert main(["admin", "providers", "list", "--json", *extra]) == 0
    assert "openai" in [provider["id"] for provider in json.loads(capsys.readouterr().out)]


def test_missing_token_says_how_to_provide_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KEYWAY_TOKEN", raising=False)
    monkeypatch.delenv("KEYWAY_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["admin", "providers", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keyway: error: no admin token: pass --token")
    assert "KEYWAY_TOKEN" in err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_unreachable_control_plane(capsys: pytest.CaptureFixture[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    code = main(["admin", "--addr", address, "--token", "kwadm_x", "provider-keys", "list"])
    assert code == 1
    assert capsys.readouterr().err == (
        f"keyway: error: cannot reach the control plane at {address} (is it running?)\n"
    )


@pytest.mark.parametrize(
    "address", ["192.0.2.10:50051", "cp.example.internal:50051", "[2001:db8::1]:1"]
)
def test_plaintext_to_a_remote_control_plane_is_refused(
    address: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin token would cross the network in clear."""
    monkeypatch.delenv("KEYWAY_ALLOW_INSECURE_REMOTE", raising=False)
    code = main(["admin", "--addr", address, "--token", "kwadm_x", "provider-keys", "list"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"refusing to send the token in plaintext to {address}" in err
    assert "--tls-ca" in err
    assert "kwadm_x" not in err


@pytest.mark.parametrize("override", ["flag", "environment"])
def test_plaintext_to_a_remote_control_plane_can_be_allowed(
    override: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["admin", "--addr", "192.0.2.10:50051", "--token", "kwadm_x", "--timeout", "0.2"]
    if override == "flag":
        argv.append("--allow-insecure-remote")
    else:
        monkeypatch.setenv("KEYWAY_ALLOW_INSECURE_REMOTE", "1")
    code = main([*argv, "provider-keys", "list"])
    assert code == 1  # it tried: the address does not answer
    assert "refusing" not in capsys.readouterr().err


def test_console_script_reads_the_secret_from_stdin(control_plane: RunningControlPlane) -> None:
    script = shutil.which("keyway") or str(Path(sys.executable).parent / "keyway")
    env = {
        **os.environ,
        "KEYWAY_ADDR": control_plane.address,
        "KEYWAY_TOKEN": control_plane.admin_token,
    }
    argv = [script, "admin", "provider-keys", "create", "--provider", "openai", "--name", "piped"]
    completed = subprocess.run(
        [*argv, "--value", "-", "--json"],
        input=OPENAI_SECRET + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert OPENAI_SECRET not in completed.stdout + completed.stderr
    # The trailing newline was not stored: the redaction ends with the secret's last 4.
    assert json.loads(completed.stdout)["redactedValue"] == "sk-proj-ab***wxyz"


def test_refusals_name_their_fix(cli: Cli, control_plane: RunningControlPlane) -> None:
    needs_operator = cli("accounts", "list")
    assert needs_operator.err.startswith("keyway: error: PERMISSION_DENIED: ")
    assert "`--token-file .keyway/operator.token` with `make run`" in needs_operator.err
    no_account = cli("admin-keys", "create", "--name", "ci", token=control_plane.operator_token)
    assert "`--account ACCOUNT_ID` in the CLI" in no_account.err
    tenant_rpc = cli("provider-keys", "list", token=control_plane.operator_token)
    assert "keyway admin admin-keys create --account ACCOUNT_ID" in tenant_rpc.err
    private = cli(
        "custom-providers", "create", "--provider-id", "local", "--name", "Local",
        "--base-url", "http://127.0.0.1:11434/v1", "--format", "openai",
    )  # fmt: skip
    assert private.code == 1
    assert "base_url: points at a private or loopback address" in private.err
    assert "--allow-private-upstreams" in private.err


def test_keys_are_disabled_and_enabled_and_lists_show_it(cli: Cli) -> None:
    key = create_provider_key(cli, "k", OPENAI_SECRET)
    disabled = ok(cli("provider-keys", "disable", key))
    assert re.search(r"^disabled\s+yes$", disabled.out, re.MULTILINE)
    row = ok(cli("provider-keys", "list")).out.splitlines()[1]
    assert row.split()[:4] == [key, "openai", "k", "disabled"]
    assert ok(cli("provider-keys", "get", key, "--json")).json()["disabled"] is True
    ok(cli("provider-keys", "enable", key))
    assert ok(cli("provider-keys", "list")).out.splitlines()[1].split()[3] == "enabled"

    created = ok(cli("access-keys", "create", "--name", "app"))
    access_key = re.findall(r"^id\s+(ak_\S+)$", created.out, re.MULTILINE)[0]
    ok(cli("access-keys", "disable", access_key))
    assert ok(cli("access-keys", "list")).out.splitlines()[1].split()[:3] == [
        access_key,
        "app",
        "disabled",
    ]
    listed = ok(cli("access-keys", "list", "--json")).json()
    assert [item.get("disabled", False) for item in listed] == [True]
    ok(cli("access-keys", "enable", access_key, "--json"))
    stale = cli("access-keys", "disable", access_key, "--etag", "1")
    assert stale.err.startswith("keyway: error: ABORTED")
    missing = cli("provider-keys", "disable", "pk_doesnotexist00")
    assert missing.err.startswith("keyway: error: NOT_FOUND")


def test_unlisted_allowed_models_are_written_with_a_warning(
    cli: Cli, control_plane: RunningControlPlane, tmp_path: Path
) -> None:
    document = {"name": "typo", "access": {"models": {"allow": ["openai/gpt-4oo"]}}}
    created = cli("configurations", "create", "--file", write_json(tmp_path / "c.json", document))
    assert created.code == 0
    assert created.err == (
        "keyway: warning: access.models.allow[0]: 'openai' lists no model 'gpt-4oo': requests "
        "reach it only by naming openai:gpt-4oo (passed through unlisted); did you mean "
        "'openai/gpt-4o'?\n"
    )
    config_id = re.findall(r"^id\s+(akc_\S+)$", created.out, re.MULTILINE)[0]
    # The API answers the same, on create and on update; a listed model gets no warning.
    stub = cfg_grpc.AccessKeyConfigurationServiceStub(control_plane.channel)
    fixed = stub.UpdateAccessKeyConfiguration(
        cfg.UpdateAccessKeyConfigurationRequest(
            configuration=cfg.AccessKeyConfiguration(
                id=config_id,
                access=cfg.Access(models=cfg.AllowList(allow=["openai/gpt-4o", "openai/o9"])),
            ),
            update_mask=FieldMask(paths=["access"]),
        ),
        metadata=control_plane.admin,
    )
    assert [w.field for w in fixed.warnings] == ["access.models.allow[1]"]
    clean = ok(
        cli(
            "configurations",
            "update",
            config_id,
            "--file",
            write_json(tmp_path / "ok.json", {"access": {"models": {"allow": ["openai/gpt-4o"]}}}),
        )
    )
    assert "'openai/o9'" not in clean.out


def test_configuration_update_shows_before_and_after_and_merges(cli: Cli, tmp_path: Path) -> None:
    key = create_provider_key(cli, "k", OPENAI_SECRET)
    backup = create_provider_key(cli, "b", BACKUP_SECRET)
    path = write_json(tmp_path / "c.json", product_document(key, backup, key))
    created = ok(cli("configurations", "create", "--file", path, "--json")).json()

    # A plain update replaces `access` whole: the diff shows what went away.
    replaced = ok(
        cli(
            "configurations", "update", created["id"], "--file", "-",
            stdin='{"access": {"providers": {"allow": ["openai"]}}}',
        )
    )  # fmt: skip
    diff = replaced.out[replaced.out.index("--- before") :].splitlines()
    assert '-        "anthropic",' in diff or '-        "anthropic"' in diff
    assert any(line.startswith("-") and "anthropic/claude-sonnet-4-5" in line for line in diff)
    assert not any(line.startswith(("-", "+")) and "router" in line for line in diff)

    # --merge changes only what the patch names; arrays in it replace, null removes.
    merged = ok(
        cli(
            "configurations", "update", created["id"], "--merge", "--file", "-", "--json",
            stdin='{"name": "Merged", "access": {"models": {"allow": ["openai/gpt-4o-mini"]}}}',
        )
    ).json()  # fmt: skip
    assert merged["name"] == "Merged"
    assert merged["access"] == {
        "providers": {"allow": ["openai"]},
        "models": {"allow": ["openai/gpt-4o-mini"]},
    }
    assert merged["router"] == created["router"]
    snake = ok(
        cli(
            "configurations", "update", created["id"], "--merge", "--file", "-",
            stdin='{"access": {"providers": null}, "router": {"rules": [{"provider": "openai",'
            ' "steps": [{"type": "user", "key_selection_strategy": "ordered",'
            f' "keys": [{{"id": "{backup}"}}]}}]}}]}}}}',
        )
    )  # fmt: skip
    assert re.search(rf"^router\s+openai: user ordered \[{backup}\]$", snake.out, re.MULTILINE)
    assert re.search(r"^access\s+providers: all$", snake.out, re.MULTILINE)
    unchanged = ok(
        cli("configurations", "update", created["id"], "--merge", "--file", "-", stdin="{}")
    )
    assert unchanged.out == f"No change: <stdin> leaves configuration {created['id']} as it is.\n"
    stale = cli(
        "configurations", "update", created["id"], "--merge", "--file", "-",
        "--etag", created["etag"], stdin='{"name": "Again"}',
    )  # fmt: skip
    assert stale.err.startswith("keyway: error: ABORTED")
    bad = cli(
        "configurations", "update", created["id"], "--merge", "--file", "-",
        stdin='{"router": {"rules": [{"provider": "openai", "stepz": []}]}}',
    )  # fmt: skip
    assert bad.code == 2
    assert "router.rules[0].stepz: unknown field" in bad.err
