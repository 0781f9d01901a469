"""The Bicep templates, without a Bicep compiler: each one parses with two independent parsers
(pycep-parser's grammar and tree-sitter-bicep's), and what `bicep build` and the deployment
would catch between files is checked on pycep's model: module paths and parameters, the
parameters file, the app settings, the roles and the settings that make the deployment keyless."""
from __future__ import annotations

import json
import re

import pytest

from .conftest import BICEP_FILES, INFRA, ROOT, azd_keys, parse_bicep

# The app settings part 2 of issue 12 reads, by the names agreed there.
REQUIRED_APP_SETTINGS = {
    "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "AZURE_CLIENT_ID",
    "ANTEROOM_STORAGE_ACCOUNT_URL", "ANTEROOM_EVENTGRID_ENDPOINT", "ANTEROOM_EVENTGRID_SCHEMA",
    "ANTEROOM_ARM_RESOURCE_ID", "ANTEROOM_RESOURCE_ID", "ANTEROOM_ACCESS_KEY", "ANTEROOM_SECONDARY_ACCESS_KEY",
    "ANTEROOM_TOKEN_SIGNING_KEY", "ANTEROOM_CALLBACK_SIGNING_KEY", "ANTEROOM_PSTN_CALLER_NUMBERS",
    "ANTEROOM_PSTN_GATEWAY_URL",
}
# Each of these would carry a key or a storage secret; the deployment has none.
FORBIDDEN_APP_SETTINGS = {
    "AzureWebJobsStorage", "ANTEROOM_STORAGE_CONNECTION_STRING", "ANTEROOM_EVENTGRID_KEY",
    "APPINSIGHTS_INSTRUMENTATIONKEY", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
}
# Settings whose value is a Key Vault reference, and the key vault module output each one uses.
KEY_VAULT_REFERENCES = {
    "ANTEROOM_ACCESS_KEY": "accessKeyUri",
    "ANTEROOM_SECONDARY_ACCESS_KEY": "secondaryAccessKeyUri",
    "ANTEROOM_TOKEN_SIGNING_KEY": "tokenSigningKeyUri",
    "ANTEROOM_CALLBACK_SIGNING_KEY": "callbackSigningKeyUri",
}
# (scope resource in rbac.bicep, role key, principal parameter) for every assignment.
EXPECTED_ROLES = {
    ("storage", "storageBlobDataOwner", "appPrincipalId"),
    ("storage", "storageTableDataContributor", "appPrincipalId"),
    ("vault", "keyVaultSecretsUser", "appPrincipalId"),
    ("topic", "eventGridDataSender", "appPrincipalId"),
    ("appInsights", "monitoringMetricsPublisher", "appPrincipalId"),
    ("storage", "storageTableDataReader", "deployerPrincipalId"),
    ("vault", "keyVaultSecretsUser", "deployerPrincipalId"),
}
# Built-in role ids (Azure's built-in roles list), by the names used in the issue.
BUILT_IN_ROLES = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "storageTableDataReader": "76199698-9eea-4c19-bc75-cec21354c6b6",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "eventGridDataSender": "d5a91429-5739-47e2-a06b-3470a27159e7",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}


def _decorators(parameter: dict) -> dict:
    return {d["type"]: d.get("argument", True) for d in parameter["decorators"]}


def _accessed(value) -> list[str]:
    """`a.b.c` in pycep's model, as ["a", "b", "c"] (a plain name gives one element)."""
    if isinstance(value, str):
        return [value]
    operands = value["operator"]["operands"]
    return [operands["operand_1"], *_accessed(operands["operand_2"])]


def _interpolated_names(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def test_there_are_templates():
    names = {path.relative_to(INFRA).as_posix() for path in BICEP_FILES}
    assert {"main.bicep", "modules/functionapp.bicep", "modules/storage.bicep", "modules/keyvault.bicep",
            "modules/eventgrid.bicep", "modules/monitoring.bicep", "modules/identity.bicep",
            "modules/rbac.bicep"} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_parses_with_pycep(path):
    template = parse_bicep(path)
    assert template["parameters"] or template["resources"]


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_parses_with_tree_sitter_bicep(path):
    import tree_sitter_bicep
    from tree_sitter import Language, Parser

    tree = Parser(Language(tree_sitter_bicep.language())).parse(path.read_bytes())
    broken = []

    def visit(node):
        if node.type == "ERROR" or node.is_missing:
            broken.append(f"line {node.start_point[0] + 1}: {node.type}")
        for child in node.children:
            visit(child)

    visit(tree.root_node)
    assert not broken, broken


def test_the_parsers_reject_broken_bicep():
    """Both parsers must fail on a template with a syntax error, or the tests above prove nothing."""
    from pycep import BicepParser
    import tree_sitter_bicep
    from tree_sitter import Language, Parser

    broken = "resource a 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n  properties: {\n"
    with pytest.raises(Exception):
        BicepParser().parse(text=broken)
    assert Parser(Language(tree_sitter_bicep.language())).parse(broken.encode()).root_node.has_error


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_modules_get_exactly_the_parameters_they_declare(path):
    for name, module in parse_bicep(path).get("modules", {}).items():
        target = (path.parent / module["detail"]["path"]).resolve()
        assert target.is_file(), f"{name}: {target} does not exist"
        declared = parse_bicep(target)["parameters"]
        given = set(module["config"]["params"])
        assert given <= set(declared), f"{name}: unknown parameters {sorted(given - set(declared))}"
        required = {p for p, spec in declared.items() if spec.get("default") is None}
        assert required <= given, f"{name}: missing parameters {sorted(required - given)}"


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_outputs_and_variables_carry_no_secure_parameter(path):
    template = parse_bicep(path)
    secure = {name for name, spec in template["parameters"].items() if "secure" in _decorators(spec)}
    for kind in ("outputs", "variables"):
        text = json.dumps(template.get(kind, {}))
        for name in secure:
            assert f'"{name}"' not in text and "${" + name not in text, f"{kind} of {path.name} use {name}"


def test_parameters_file_matches_main_bicep(main_template):
    document = json.loads((INFRA / "main.parameters.json").read_text())
    given = document["parameters"]
    declared = main_template["parameters"]
    assert set(given) <= set(declared), f"unknown parameters {sorted(set(given) - set(declared))}"
    required = {name for name, spec in declared.items() if spec.get("default") is None}
    assert required <= set(given), f"parameters azd would prompt for: {sorted(required - set(given))}"
    for name, entry in given.items():
        assert set(entry) == {"value"}, name
        assert isinstance(entry["value"], str) and entry["value"].startswith("${"), name


def test_the_hook_fills_every_secret_parameter(main_template):
    """The preprovision hook makes exactly the values the secure and generated parameters read."""
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = main_template["parameters"]
    secure = {name for name, spec in declared.items() if "secure" in _decorators(spec)}
    assert secure == {"accessKey", "secondaryAccessKey", "tokenSigningKey", "callbackSigningKey"}
    from_hook = {name for name in given if _interpolated_names(given[name]["value"]) & set(azd_keys().MAKERS)}
    assert from_hook == secure | {"anteroomResourceId"}
    for name in secure | {"anteroomResourceId"}:
        assert declared[name].get("default") is None, f"{name} must come from the hook, never a default"


def test_parameter_decorators_refuse_bad_values(main_template):
    parameters = main_template["parameters"]
    assert _decorators(parameters["instanceMemoryMB"])["allowed"] == [512, 2048, 4096]
    assert _decorators(parameters["maximumInstanceCount"])["min_value"] == 40
    assert _decorators(parameters["maximumInstanceCount"])["max_value"] == 1000
    assert _decorators(parameters["eventGridSchema"])["allowed"] == ["EventGridSchema", "CloudEventSchemaV1_0"]
    assert _decorators(parameters["anteroomResourceId"])["min_length"] == 36
    assert _decorators(parameters["anteroomResourceId"])["max_length"] == 36
    # base64 of 16 bytes, the least the app accepts; an RSA-2048 PEM's base64 is about 2,300 characters.
    for name in ("accessKey", "secondaryAccessKey", "tokenSigningKey"):
        assert _decorators(parameters[name])["min_length"] == 24
    assert _decorators(parameters["callbackSigningKey"])["min_length"] >= 1000


def test_app_settings(app_template):
    settings = app_template["variables"]["appSettings"]["value"]
    assert REQUIRED_APP_SETTINGS <= set(settings), sorted(REQUIRED_APP_SETTINGS - set(settings))
    assert not FORBIDDEN_APP_SETTINGS & set(settings)
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    for name, uri in KEY_VAULT_REFERENCES.items():
        assert settings[name] == "@Microsoft.KeyVault(SecretUri=${" + uri + "})", name
    # Every setting reaches the site through siteConfig.appSettings.
    app_settings = app_template["resources"]["app"]["config"]["properties"]["siteConfig"]["appSettings"]
    assert app_settings["loop_type"]["detail"]["array_name"]["function"]["parameters"]["arg_1"] == "appSettings"


def test_key_vault_references_use_the_user_assigned_identity(app_template):
    app = app_template["resources"]["app"]["config"]
    assert app["identity"]["type"] == "UserAssigned"
    assert app["properties"]["keyVaultReferenceIdentity"] == "identityId"


def test_flex_consumption_python_311(app_template):
    plan = app_template["resources"]["plan"]["config"]
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    config = app_template["resources"]["app"]["config"]["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["scaleAndConcurrency"] == {"instanceMemoryMB": "instanceMemoryMB",
                                             "maximumInstanceCount": "maximumInstanceCount"}
    deployment = config["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}


def test_storage_is_keyless():
    storage = parse_bicep(INFRA / "modules" / "storage.bicep")["resources"]["storage"]["config"]["properties"]
    assert storage["allowSharedKeyAccess"] is False
    assert storage["minimumTlsVersion"] == "TLS1_2"
    assert storage["supportsHttpsTrafficOnly"] is True
    assert storage["allowBlobPublicAccess"] is False


def test_key_vault_uses_rbac_and_stores_each_key():
    template = parse_bicep(INFRA / "modules" / "keyvault.bicep")
    vault = template["resources"]["vault"]["config"]["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    secrets = {r["config"]["name"] for r in template["resources"].values()
               if r["type"] == "Microsoft.KeyVault/vaults/secrets"}
    assert secrets == set(azd_keys().VAULT_SECRETS.values())


def test_event_grid_topic_takes_entra_auth_only():
    topic = parse_bicep(INFRA / "modules" / "eventgrid.bicep")["resources"]["topic"]["config"]["properties"]
    assert topic["disableLocalAuth"] is True
    assert topic["inputSchema"] == "inputSchema"


def test_role_assignments():
    template = parse_bicep(INFRA / "modules" / "rbac.bicep")
    assert template["variables"]["roles"]["value"] == BUILT_IN_ROLES
    found = set()
    for resource in template["resources"].values():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config = resource["config"]
        if "condition" in config:  # `= if (...) {...}`: the body is one level down
            config = config["config"]
        role = _accessed(config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"])
        assert role[0] == "roles"
        found.add((config["scope"], role[1], config["properties"]["principalId"]))
    assert found == EXPECTED_ROLES


def test_outputs_for_the_hooks_and_the_readme(main_template):
    outputs = set(main_template["outputs"])
    assert {"ANTEROOM_ENDPOINT", "AZURE_KEY_VAULT_NAME", "ANTEROOM_RESOURCE_ID", "ANTEROOM_STORAGE_ACCOUNT_URL",
            "AZURE_EVENTGRID_TOPIC_ID", "AZURE_FUNCTION_APP_NAME", "AZURE_RESOURCE_GROUP"} <= outputs
    keys = azd_keys()
    assert {keys.ENDPOINT, keys.VAULT_NAME, keys.RESOURCE_ID} <= outputs


def test_no_template_names_a_key_in_plain_text():
    """No generated key (base64 of 32 bytes), PEM or base64 of a PEM sits in a template or a parameters file."""
    for path in [*BICEP_FILES, INFRA / "main.parameters.json", ROOT / "azure.yaml"]:
        text = path.read_text()
        assert "PRIVATE KEY-----" not in text and "LS0tLS1CRUdJTi" not in text, path
        assert not re.search(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=", text), path
