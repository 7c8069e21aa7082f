"""Rendered.ai's official Python SDK (anatools 6.1.2, unchanged) against the orgops Rendered.ai
simulator (`orgops simulate --vendor renderedai`), started by scripts/test, which passes the URL
and the credentials it prints in RAI_SIM_* variables.

The SDK defects of design doc §5 are driven the way a user has to: the member/invitation
listings through `client.ana_api.getMembers/getInvitations`, volume deletion through
`client.ana_api.deleteVolume`.
"""

import json
import os
import uuid

import pytest

# The SDK reads these itself and would override what a test passes (design doc §1.3, §5).
for _name in ("RENDEREDAI_API_KEY", "RENDEREDAI_BEARER_TOKEN", "RENDEREDAI_ENDPOINT",
              "RENDEREDAI_ENVIRONMENT", "RENDEREDAI_WORKSPACE_ID"):
    os.environ.pop(_name, None)

import anatools  # noqa: E402

URL = os.environ["RAI_SIM_URL"]
API_KEY = os.environ["RAI_SIM_API_KEY"]
ORG_API_KEY = os.environ["RAI_SIM_ORG_API_KEY"]
WORKSPACE_API_KEY = os.environ["RAI_SIM_WORKSPACE_API_KEY"]
ADMIN_EMAIL = os.environ["RAI_SIM_ADMIN_EMAIL"]
ADMIN_PASSWORD = os.environ["RAI_SIM_ADMIN_PASSWORD"]
MEMBER_EMAIL = os.environ["RAI_SIM_MEMBER_EMAIL"]
MEMBER_PASSWORD = os.environ["RAI_SIM_MEMBER_PASSWORD"]
TEMPLATE = os.environ["RAI_SIM_TEMPLATE_ORG_ID"]
TARGET = os.environ["RAI_SIM_TARGET_ORG_ID"]


def test_sdk_version():
    assert anatools.__version__ == "6.1.2"


@pytest.fixture(scope="module")
def client():
    return anatools.client(endpoint=URL, APIKey=API_KEY, interactive=False)


def workspace_named(client, org, name):
    found = [w for w in client.get_workspaces(organizationId=org) if w["name"] == name]
    assert len(found) == 1, found
    return found[0]


def shared_channel(client, org, name="example"):
    found = [c for c in client.get_channels(organizationId=org) if c["name"] == name]
    assert len(found) == 1, found
    return found[0]


def test_api_key_login_picks_a_workspace_and_its_org(client):
    orgs = {o["organizationId"]: o for o in client.get_organizations()}
    assert set(orgs) == {TEMPLATE, TARGET}
    assert all(o["role"] == "admin" and o["expired"] is False for o in orgs.values())
    workspace = client.get_workspaces(workspaceId=client.workspace)[0]
    assert client.organization == workspace["organizationId"] in orgs


def test_password_login_and_api_key_lifecycle():
    c = anatools.client(endpoint=URL, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, interactive=False)
    assert c.user["uid"] and c.user["idtoken"]
    assert {o["organizationId"] for o in c.get_organizations()} == {TEMPLATE, TARGET}
    name = f"sdk-key-{uuid.uuid4().hex[:8]}"
    key = c.create_api_key(name=name, scope="organization", organizationId=TARGET)
    assert isinstance(key, str) and len(key) >= 16
    listed = [k for k in c.get_api_keys() if k["name"] == name]
    assert listed and listed[0]["scope"] == "organization" and listed[0]["organizationId"] == TARGET
    assert "key" not in listed[0] and key not in json.dumps(listed)
    scoped = anatools.client(endpoint=URL, APIKey=key, interactive=False)
    assert [o["organizationId"] for o in scoped.get_organizations()] == [TARGET]
    assert c.delete_api_key(name=name) is True
    with pytest.raises(Exception):
        anatools.client(endpoint=URL, APIKey=key, interactive=False)


def test_wrong_password_is_refused():
    with pytest.raises(Exception):
        anatools.client(endpoint=URL, email=ADMIN_EMAIL, password="not-the-password", interactive=False)


def test_scoped_keys_narrow_what_is_seen():
    org_client = anatools.client(endpoint=URL, APIKey=ORG_API_KEY, interactive=False)
    assert [o["organizationId"] for o in org_client.get_organizations()] == [TEMPLATE]
    assert {w["organizationId"] for w in org_client.get_workspaces()} == {TEMPLATE}
    ws_client = anatools.client(endpoint=URL, APIKey=WORKSPACE_API_KEY, interactive=False)
    workspaces = ws_client.get_workspaces()
    assert len(workspaces) == 1 and workspaces[0]["organizationId"] == TARGET
    assert ws_client.workspace == workspaces[0]["workspaceId"]


def test_organizations_page_with_the_id_cursor(client):
    page = client.ana_api.getOrganizations(limit=1)
    assert len(page) == 1
    rest = client.ana_api.getOrganizations(limit=1, cursor=page[0]["organizationId"])
    assert len(rest) == 1 and rest[0]["organizationId"] != page[0]["organizationId"]
    assert client.ana_api.getOrganizations(limit=1, cursor=rest[0]["organizationId"]) == []
    # The SDK's own loop with a small page.
    assert {o["organizationId"] for o in client.get_organizations(limit=2)} == {TEMPLATE, TARGET}


def test_edit_organization(client):
    assert client.edit_organization(name="Target Org (renamed)", organizationId=TARGET) is True
    assert client.get_organizations(organizationId=TARGET)[0]["name"] == "Target Org (renamed)"
    assert client.edit_organization(name="Target Org", organizationId=TARGET) is True
    assert client.get_organizations(organizationId=TARGET)[0]["name"] == "Target Org"


def test_members_add_edit_remove(client):
    emails = lambda: {m["email"]: m for m in client.ana_api.getMembers(organizationId=TARGET)}
    assert MEMBER_EMAIL not in emails()
    assert client.add_organization_member(email=MEMBER_EMAIL, role="member", organizationId=TARGET)
    assert emails()[MEMBER_EMAIL]["role"] == "member"
    assert client.edit_organization_member(email=MEMBER_EMAIL, role="admin", organizationId=TARGET)
    assert emails()[MEMBER_EMAIL]["role"] == "admin"
    assert client.remove_organization_member(email=MEMBER_EMAIL, organizationId=TARGET)
    assert MEMBER_EMAIL not in emails()
    with pytest.raises(Exception, match="not a member"):
        client.edit_organization_member(email=MEMBER_EMAIL, role="admin", organizationId=TARGET)


def test_unknown_email_becomes_an_invitation_and_can_be_revoked(client):
    email = f"newcomer-{uuid.uuid4().hex[:8]}@example.com"
    assert client.add_organization_member(email=email, role="member", organizationId=TARGET)
    invites = client.ana_api.getInvitations(organizationId=TARGET)
    assert [i["role"] for i in invites if i["email"] == email] == ["member"]
    assert email not in {m["email"] for m in client.ana_api.getMembers(organizationId=TARGET)}
    assert client.remove_organization_invitation(email=email, organizationId=TARGET) is True
    assert email not in {i["email"] for i in client.ana_api.getInvitations(organizationId=TARGET)}


def test_a_plain_member_cannot_administer():
    member = anatools.client(endpoint=URL, email=MEMBER_EMAIL, password=MEMBER_PASSWORD, interactive=False)
    orgs = member.get_organizations()
    assert [(o["organizationId"], o["role"]) for o in orgs] == [(TEMPLATE, "member")]
    with pytest.raises(Exception, match="Permission denied"):
        member.edit_organization(name="Hijacked", organizationId=TEMPLATE)
    with pytest.raises(Exception, match="Organization not found"):
        member.edit_organization(name="Hijacked", organizationId=TARGET)


def test_workspace_lifecycle(client):
    channel = shared_channel(client, TARGET)
    ws = client.create_workspace(
        name="SDK workspace", description="made by anatools", channelIds=[channel["channelId"]],
        tags=["sdk"], objective="test", organizationId=TARGET)
    got = client.get_workspaces(workspaceId=ws)[0]
    assert (got["name"], got["organization"], got["tags"], got["objective"]) == (
        "SDK workspace", "Target Org", ["sdk"], "test")
    assert client.edit_workspace(name="SDK workspace 2", workspaceId=ws) is True
    got = client.get_workspaces(workspaceId=ws)[0]
    assert (got["name"], got["description"]) == ("SDK workspace 2", "made by anatools")
    assert [c["channelId"] for c in client.get_channels(workspaceId=ws)] == [channel["channelId"]]
    assert client.delete_workspace(workspaceId=ws) is True
    assert client.get_workspaces(workspaceId=ws) == []


def test_channels_are_shared_by_the_content_org(client):
    names = {c["name"]: c for c in client.get_channels(organizationId=TARGET)}
    assert {"example", "toybox"} <= set(names)
    assert names["example"]["organization"] == "Rendered.ai"
    assert "template-private-channel" not in names
    assert "template-private-channel" in {c["name"] for c in client.get_channels(organizationId=TEMPLATE)}


def test_volumes(client):
    template = {v["name"]: v for v in client.get_volumes(organizationId=TEMPLATE)}
    assert {"Backgrounds", "Vehicle models", "Textures"} <= set(template)
    assert template["Backgrounds"]["tags"] == ["images", "backgrounds"]
    ws = workspace_named(client, TEMPLATE, "Vehicle detection")
    assert {v["name"] for v in client.get_volumes(workspaceId=ws["workspaceId"])} == {"Backgrounds", "Vehicle models"}
    vid = client.create_volume(name="SDK volume", description="d", organizationId=TARGET, tags=["a"])
    got = client.get_volumes(volumeId=vid, organizationId=TARGET)
    assert [(v["name"], v["tags"], v["permission"]) for v in got] == [("SDK volume", ["a"], "write")]
    # delete_volume sends organizationId: null into String! (design doc §5).
    with pytest.raises(Exception, match="must not be null"):
        client.delete_volume(volumeId=vid)
    assert client.ana_api.deleteVolume(volumeId=vid, organizationId=TARGET) is True
    assert client.get_volumes(volumeId=vid, organizationId=TARGET) == []


def _md5(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def test_volume_data_listed_downloaded_uploaded_synced_deleted(client, tmp_path):
    """get_volume_data, download_volume_data, upload_volume_data (multipart: the simulator's
    part size is 64 KiB, the seeded model 150 kB) and delete_volume_data, all unchanged; the
    simulator's `hash` is the MD5 hex the SDK's sync compares with."""
    template = {v["name"]: v["volumeId"] for v in client.get_volumes(organizationId=TEMPLATE)}
    listed = {}
    for name in ("Backgrounds", "Vehicle models"):
        for f in client.get_volume_data(volumeId=template[name], recursive=True):
            listed[f["key"]] = f
    assert "backgrounds/street/day.png" in listed and "models/cars/sedan.blend" in listed
    assert listed["models/cars/sedan.blend"]["size"] == 150000
    top = client.get_volume_data(volumeId=template["Backgrounds"])
    assert [f["key"] for f in top] == ["README.txt", "backgrounds/"]
    paged = client.get_volume_data(volumeId=template["Backgrounds"], recursive=True, limit=2)
    assert [f["key"] for f in paged] == ["README.txt", "backgrounds/sky/clear.jpg"]

    local = tmp_path / "dl"
    for name in ("Backgrounds", "Vehicle models"):
        client.download_volume_data(volumeId=template[name], localDir=str(local))
    for key, f in listed.items():
        assert _md5(local / key) == f["hash"], key

    vid = client.create_volume(name="SDK data", organizationId=TARGET)
    try:
        client.upload_volume_data(volumeId=vid, localDir=str(local))
        copied = {f["key"]: f for f in client.get_volume_data(volumeId=vid, recursive=True)}
        assert set(copied) == set(listed)
        for key, f in listed.items():
            assert (copied[key]["size"], copied[key]["hash"]) == (f["size"], f["hash"]), key
        # sync compares with one level of the volume (the SDK lists it without `recursive`): the
        # top-level file whose hash is there is not uploaded again, the nested ones are.
        client.upload_volume_data(volumeId=vid, localDir=str(local), sync=True)
        again = {f["key"]: f for f in client.get_volume_data(volumeId=vid, recursive=True)}
        assert again["README.txt"]["updatedAt"] == copied["README.txt"]["updatedAt"]
        assert again["models/cars/sedan.blend"]["updatedAt"] != copied["models/cars/sedan.blend"]["updatedAt"]
        assert {k: f["hash"] for k, f in again.items()} == {k: f["hash"] for k, f in copied.items()}
        assert client.delete_volume_data(volumeId=vid, files=["backgrounds/"]) is True
        left = [f["key"] for f in client.get_volume_data(volumeId=vid, recursive=True)]
        assert left == ["README.txt", "models/cars/sedan.blend"]
    finally:
        assert client.ana_api.deleteVolume(volumeId=vid, organizationId=TARGET) is True


def test_graphs_download_and_upload(client, tmp_path):
    ws = workspace_named(client, TEMPLATE, "Vehicle detection")["workspaceId"]
    # get_graphs sends staged: false (staged graphs left out); the API default true includes them.
    assert [g["name"] for g in client.get_graphs(workspaceId=ws)] == ["Dusk vehicles"]
    graphs = client.get_graphs(workspaceId=ws, staged=True)
    assert sorted(g["name"] for g in graphs) == ["Dusk vehicles", "Dusk vehicles (staged)"]
    graph = [g for g in graphs if g["name"] == "Dusk vehicles"][0]
    path = client.download_graph(graphId=graph["graphId"], filepath=str(tmp_path / "g.json"), workspaceId=ws)
    body = json.load(open(path))
    volume_ids = {v["volumeId"] for v in client.get_volumes(workspaceId=ws)}
    text = json.dumps(body)
    assert all(f"{v}:/" in text for v in volume_ids)
    assert body["nodes"]["Background"]["values"]["File"].split(":/")[0] in volume_ids
    target_ws = client.get_workspaces(organizationId=TARGET)[0]["workspaceId"]
    gid = client.upload_graph(graph=body, channelId=graph["channelId"], name="Copied graph",
                              description="from the template", staged=False, workspaceId=target_ws)
    copied = [g for g in client.get_graphs(workspaceId=target_ws) if g["graphId"] == gid]
    assert [(g["name"], g["channel"]) for g in copied] == [("Copied graph", "example")]
    assert json.loads(client.ana_api.downloadGraph(workspaceId=target_ws, graphId=gid)) == body


def test_rules(client):
    assert "make and model" in client.get_organization_rules(organizationId=TEMPLATE)
    assert client.edit_organization_rules(rules="Be kind.", organizationId=TARGET) is True
    assert client.get_organization_rules(organizationId=TARGET) == "Be kind."
    ws = workspace_named(client, TEMPLATE, "Vehicle detection")["workspaceId"]
    assert "daytime" in client.get_workspace_rules(workspaceId=ws)
    target_ws = client.get_workspaces(organizationId=TARGET)[0]["workspaceId"]
    assert client.edit_workspace_rules(rules="No night scenes.", workspaceId=target_ws) is True
    assert client.get_workspace_rules(workspaceId=target_ws) == "No night scenes."


def test_bearer_token_login():
    password_client = anatools.client(endpoint=URL, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, interactive=False)
    token = password_client.user["idtoken"]
    c = anatools.client(endpoint=URL, bearer_token=token, interactive=False)
    assert {o["organizationId"] for o in c.get_organizations()} == {TEMPLATE, TARGET}
    assert c.workspace in {w["workspaceId"] for w in c.get_workspaces()}
