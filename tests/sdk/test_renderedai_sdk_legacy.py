"""The legacy Rendered.ai SDK (anatools 3.3.4, the last release with limits and workspace guests,
unchanged) against the orgops Rendered.ai simulator, started by scripts/test. 3.3.4 has no
endpoint parameter: its 'prod' URLs are patched before a client is made (design doc §1.1).

3.x swallows GraphQL errors (prints them, returns False), so refusals are asserted as False plus
"nothing changed".
"""

import os
import uuid

import pytest

for _name in ("RENDEREDAI_API_KEY", "RENDEREDAI_BEARER_TOKEN", "RENDEREDAI_ENDPOINT"):
    os.environ.pop(_name, None)

import anatools  # noqa: E402
import anatools.anaclient.anaclient as anaclient_module  # noqa: E402

URL = os.environ["RAI_SIM_URL"]
STATUS_URL = os.environ["RAI_SIM_STATUS_URL"]
ORG_API_KEY = os.environ["RAI_SIM_ORG_API_KEY"]
ADMIN_EMAIL = os.environ["RAI_SIM_ADMIN_EMAIL"]
ADMIN_PASSWORD = os.environ["RAI_SIM_ADMIN_PASSWORD"]
MEMBER_EMAIL = os.environ["RAI_SIM_MEMBER_EMAIL"]
TEMPLATE = os.environ["RAI_SIM_TEMPLATE_ORG_ID"]
TARGET = os.environ["RAI_SIM_TARGET_ORG_ID"]

anaclient_module.envs["prod"]["api"] = URL
anaclient_module.envs["prod"]["statusAPI"] = STATUS_URL


def test_sdk_version():
    assert anatools.__version__ == "3.3.4"


@pytest.fixture(scope="module")
def client():
    c = anatools.client(email=ADMIN_EMAIL, password=ADMIN_PASSWORD, interactive=False)
    c.set_organization(TARGET)
    assert c.organization == TARGET
    return c


def test_password_login_lists_orgs_and_workspaces(client):
    assert {o["organizationId"] for o in client.organizations} == {TEMPLATE, TARGET}
    assert {w["organizationId"] for w in client.workspaces} == {TEMPLATE, TARGET}


def test_org_scoped_api_key_login():
    c = anatools.client(APIKey=ORG_API_KEY, interactive=False)
    assert c.organization == TEMPLATE
    assert [o["organizationId"] for o in c.organizations] == [TEMPLATE]
    assert {w["organizationId"] for w in c.workspaces} == {TEMPLATE}


def test_organization_limits_and_their_enforcement(client):
    limits = {l["setting"]: l for l in client.get_organization_limits(organizationId=TARGET)}
    assert {"Workspaces", "Members", "Managed Volumes", "Compute Time"} <= set(limits)
    ws = limits["Workspaces"]
    assert isinstance(ws["limit"], str) and isinstance(ws["usage"], float)
    usage = int(ws["usage"])
    assert usage == len(client.get_workspaces(organizationId=TARGET))
    assert client.set_organization_limit("Workspaces", usage, organizationId=TARGET) is True
    got = client.get_organization_limits(organizationId=TARGET, setting="Workspaces")
    assert [(l["limit"], l["usage"]) for l in got] == [(str(usage), float(usage))]
    # At the limit a new workspace is refused (3.x prints the error and answers False).
    assert client.create_workspace(name="One too many") is False
    assert len(client.get_workspaces(organizationId=TARGET)) == usage
    assert client.set_organization_limit("Workspaces", usage + 5, organizationId=TARGET) is True
    ws_id = client.create_workspace(name="Legacy workspace")
    assert isinstance(ws_id, str)
    assert [w["name"] for w in client.get_workspaces(workspaceId=ws_id)] == ["Legacy workspace"]
    assert client.delete_workspace(workspaceId=ws_id, prompt=False) is True


def test_workspace_limits(client):
    ws = client.workspace
    limits = {l["setting"]: l for l in client.get_workspace_limits(workspaceId=ws)}
    assert "Graphs" in limits and isinstance(limits["Graphs"]["usage"], float)
    assert client.set_workspace_limit("Graphs", 7, workspaceId=ws) is True
    assert [l["limit"] for l in client.get_workspace_limits(setting="Graphs", workspaceId=ws)] == ["7"]


def test_workspace_guests(client):
    ws = client.workspace
    assert client.add_workspace_guest(MEMBER_EMAIL, workspaceId=ws) is True
    guests = client.get_workspace_guests(workspaceId=ws)
    assert [(g["email"], g["workspaceId"]) for g in guests] == [(MEMBER_EMAIL, ws)]
    assert client.remove_workspace_guest(MEMBER_EMAIL, workspaceId=ws) is True
    assert client.get_workspace_guests(workspaceId=ws) == []

    stranger = f"guest-{uuid.uuid4().hex[:8]}@example.com"
    assert client.add_workspace_guest(stranger, workspaceId=ws) is True
    invites = client.get_workspace_invites(workspaceId=ws)
    assert [i["email"] for i in invites] == [stranger]
    assert client.remove_workspace_invitation(
        stranger, workspaceId=ws, invitationId=invites[0]["invitationId"]) is True
    assert client.get_workspace_invites(workspaceId=ws) == []


def test_organization_members(client):
    members = lambda: {m["email"]: m["role"] for m in client.get_organization_members(organizationId=TARGET)}
    assert client.add_organization_member(MEMBER_EMAIL, "member", organizationId=TARGET) is True
    assert members()[MEMBER_EMAIL] == "member"
    assert client.edit_organization_member(MEMBER_EMAIL, "admin", organizationId=TARGET) is True
    assert members()[MEMBER_EMAIL] == "admin"
    assert client.remove_organization_member(MEMBER_EMAIL, organizationId=TARGET) is True
    assert MEMBER_EMAIL not in members()
    # Removing the last admin is refused.
    assert client.remove_organization_member(ADMIN_EMAIL, organizationId=TARGET) is False
    assert members()[ADMIN_EMAIL] == "admin"
