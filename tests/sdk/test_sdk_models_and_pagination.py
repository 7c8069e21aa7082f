"""The official Rossum Python SDK (`rossum-api`, sync client) against the Rossum simulator.

Nothing here is simulator-specific: the SDK is used unchanged, exactly as a customer would use it
against https://<x>.rossum.app/api/v1.

Environment:
  ROSSUM_BASE_URL      e.g. http://127.0.0.1:PORT/api/v1 (must already contain /api/v1)
  ROSSUM_USERNAME      a user that can see the template org (its admin, or an org group admin)
  ROSSUM_PASSWORD
  ROSSUM_TEMPLATE_ORG  name of the seeded template organization (default "Template org")

Run by ./scripts/test (pip install -r tests/sdk/requirements.txt; python -m pytest -q tests/sdk)

If the template org is not the login user's own organization (e.g. the user is an organization
group admin), the template checks run with a membership token for it
(POST /auth/membership_token), the way Rossum's own deep-copy tools do.
Objects created by these tests go into the login user's own organization and carry unique names.
"""

from __future__ import annotations

import math
import os
import uuid

import httpx
import pytest
from rossum_api import APIClientError, SyncRossumAPIClient
from rossum_api.domain_logic.resources import Resource
from rossum_api.dtos import Token, UserCredentials
from rossum_api.models import deserialize_default
from rossum_api.models.group import Group
from rossum_api.models.hook import Hook
from rossum_api.models.inbox import Inbox
from rossum_api.models.organization import Organization
from rossum_api.models.queue import Queue
from rossum_api.models.schema import Datapoint, Schema, Section
from rossum_api.models.user import User
from rossum_api.models.workspace import Workspace


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise RuntimeError(f"set {name} (see the docstring of {__file__})")
    return value


BASE = _env("ROSSUM_BASE_URL").rstrip("/")
USERNAME = _env("ROSSUM_USERNAME")
PASSWORD = _env("ROSSUM_PASSWORD")
TEMPLATE_ORG = _env("ROSSUM_TEMPLATE_ORG", "Template org")
TIMEOUT = 30.0


def _client(credentials: UserCredentials | Token) -> SyncRossumAPIClient:
    return SyncRossumAPIClient(base_url=BASE, credentials=credentials, timeout=TIMEOUT)


def _id(url: str) -> int:
    return int(url.rstrip("/").split("/")[-1])


def _unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def admin() -> SyncRossumAPIClient:
    """Username/password client: the SDK logs in lazily (form-encoded POST auth/login)."""
    return _client(UserCredentials(USERNAME, PASSWORD))


@pytest.fixture(scope="module")
def own_org(admin) -> Organization:
    """The login user's own organization (GET auth/user, then GET organizations/{id})."""
    return admin.retrieve_own_organization()


@pytest.fixture(scope="module")
def template_org(admin) -> Organization:
    matches = [o for o in admin.list_organizations() if o.name == TEMPLATE_ORG]
    assert len(matches) == 1, f"expected exactly one org named {TEMPLATE_ORG!r}, got {matches}"
    return matches[0]


@pytest.fixture(scope="module")
def template(admin, own_org, template_org) -> SyncRossumAPIClient:
    """A client whose token is scoped to the template org."""
    if own_org.id == template_org.id:
        return admin
    key = admin.request_json(
        "POST", "auth/membership_token", json={"organization": template_org.url}
    )["key"]
    assert isinstance(key, str) and key
    return _client(Token(key))


# ---------------------------------------------------------------------------------------------
# reading the seeded template


def test_login_and_template_org_is_listed(admin, template_org):
    assert isinstance(template_org, Organization)
    assert template_org.url == f"{BASE}/organizations/{template_org.id}"
    assert template_org.organization_group.startswith(f"{BASE}/organization_groups/")
    assert isinstance(template_org.is_trial, bool)
    assert template_org.created_at


def test_retrieve_organization(template, template_org):
    org = template.retrieve_organization(template_org.id)
    assert isinstance(org, Organization)
    assert (org.id, org.name, org.url) == (template_org.id, TEMPLATE_ORG, template_org.url)
    assert all(w.startswith(f"{BASE}/workspaces/") for w in org.workspaces)
    assert all(u.startswith(f"{BASE}/users/") for u in org.users)
    assert org.users, "the template org has users"


def test_template_workspaces(template, template_org):
    workspaces = list(template.list_workspaces())
    assert len(workspaces) >= 3
    for w in workspaces:
        assert isinstance(w, Workspace)
        assert isinstance(w.autopilot, bool)
        assert w.organization == template_org.url
        assert w.url == f"{BASE}/workspaces/{w.id}"
    assert len({w.id for w in workspaces}) == len(workspaces), "no duplicates across pages"


def test_template_schemas(template):
    schemas = list(template.list_schemas())
    assert len(schemas) >= 10
    for s in schemas:
        assert isinstance(s, Schema)
        assert s.url == f"{BASE}/schemas/{s.id}"
    # The list may carry only id/url (as the real API's docs show); a detail GET has the content.
    full = template.retrieve_schema(schemas[0].id)
    assert full.content, "a seeded schema has at least one section"
    assert all(isinstance(section, Section) for section in full.content)
    assert any(True for _ in full.traverse()), "a seeded schema has datapoints"


def test_template_queues(template):
    queues = list(template.list_queues())
    assert len(queues) >= 24
    schema_ids = {s.id for s in template.list_schemas()}
    workspace_urls = {w.url for w in template.list_workspaces()}
    for q in queues:
        assert isinstance(q, Queue)
        assert q.url == f"{BASE}/queues/{q.id}"
        assert q.schema.startswith(f"{BASE}/schemas/"), q.schema
        assert _id(q.schema) in schema_ids
        assert q.workspace is None or q.workspace in workspace_urls
        assert isinstance(q.counts, dict) and q.counts, "counts carries per-status numbers"
        assert all(isinstance(v, int) for v in q.counts.values())
        for h in q.hooks:
            assert h.startswith(f"{BASE}/hooks/")


def test_template_hooks(template):
    hooks = list(template.list_hooks())
    assert len(hooks) >= 6
    queue_urls = {q.url for q in template.list_queues()}
    for h in hooks:
        assert isinstance(h, Hook)
        assert h.type in ("webhook", "function", "job")
        assert isinstance(h.config, dict) and isinstance(h.test, dict)
        assert set(h.queues) <= queue_urls
        assert all(r.startswith(f"{BASE}/hooks/") for r in h.run_after)
    # hook.queues and queue.hooks are two views of one relation.
    queues_by_url = {q.url: q for q in template.list_queues()}
    for h in hooks:
        for q in h.queues:
            assert h.url in queues_by_url[q].hooks, f"{q} does not list {h.url}"


def test_template_inboxes(template):
    # The SDK has no list_inboxes(); the generic paginated request is the documented way.
    raw = list(template.request_paginated("inboxes"))
    assert raw, "the template org has inboxes"
    queue_urls = {q.url for q in template.list_queues()}
    for item in raw:
        inbox = deserialize_default(Resource.Inbox, item)
        assert isinstance(inbox, Inbox)
        assert len(inbox.queues) == 1 and inbox.queues[0] in queue_urls
        assert "@" in inbox.email and inbox.email.startswith(inbox.email_prefix)


def test_template_users_and_roles(template, template_org):
    users = list(template.list_users())
    assert users
    assert all(isinstance(u, User) for u in users)
    roles = list(template.list_user_roles())
    assert all(isinstance(r, Group) for r in roles)
    role_names = {r.name for r in roles}
    assert {"admin", "annotator", "viewer"} <= role_names, role_names
    for u in users:
        assert u.url == f"{BASE}/users/{u.id}"
        # Role ids differ per org and a member of another org keeps its own roles: check form only.
        assert all(g.startswith(f"{BASE}/groups/") for g in u.groups), (u.username, u.groups)
    assert any(set(u.groups) & {r.url for r in roles} for u in users), "someone has a local role"
    admins = list(template.list_user_roles(name="admin"))
    assert [r.name for r in admins] == ["admin"]


# ---------------------------------------------------------------------------------------------
# pagination


@pytest.mark.parametrize("page_size", [1, 5])
def test_multi_page_iteration_matches_single_page(template, page_size):
    one_page = [q.id for q in template.list_queues(ordering=["id"])]
    paged = [q.id for q in template.list_queues(ordering=["id"], page_size=page_size)]
    assert paged == one_page
    assert one_page == sorted(one_page)


def test_pagination_envelope(template):
    page = template.request_json(
        "GET", "queues", params={"page_size": 5, "include_total": "true", "ordering": "id"}
    )
    total = page["pagination"]["total"]
    assert total >= 24
    assert page["pagination"]["total_pages"] == math.ceil(total / 5)
    assert len(page["results"]) == 5
    assert page["pagination"]["previous"] is None
    nxt = page["pagination"]["next"]
    assert nxt.startswith(f"{BASE}/queues?"), nxt
    second = template.request_json("GET", nxt)  # absolute URLs are used as given
    assert [q["id"] for q in second["results"]] != [q["id"] for q in page["results"]]

    ws = list(template.list_workspaces(page_size=1))
    assert len(ws) >= 3


# ---------------------------------------------------------------------------------------------
# creating setup objects


SCHEMA_CONTENT = [
    {
        "category": "section",
        "id": "basic_info_section",
        "label": "Basic information",
        "children": [
            {
                "category": "datapoint",
                "id": "document_id",
                "label": "Invoice number",
                "type": "string",
                "rir_field_names": ["document_id"],
                "constraints": {"required": False},
            },
            {
                "category": "datapoint",
                "id": "date_issue",
                "label": "Issue date",
                "type": "date",
                "format": "YYYY-MM-DD",
                "rir_field_names": ["date_issue"],
                "constraints": {"required": False},
            },
        ],
    }
]


def test_create_workspace_schema_queue_inbox_hook(admin, own_org):
    ws_name = _unique("SDK workspace")
    ws = admin.create_new_workspace({"name": ws_name, "organization": own_org.url})
    assert isinstance(ws, Workspace)
    assert ws.name == ws_name and ws.organization == own_org.url
    assert ws.url == f"{BASE}/workspaces/{ws.id}"

    schema_name = _unique("SDK schema")
    schema = admin.create_new_schema({"name": schema_name, "content": SCHEMA_CONTENT})
    assert isinstance(schema, Schema)
    assert schema.name == schema_name
    dp = schema.get_by_id("document_id")
    assert isinstance(dp, Datapoint) and dp.type == "string" and dp.label == "Invoice number"
    assert schema.get_by_id("date_issue").type == "date"

    queue_name = _unique("SDK queue")
    queue = admin.create_new_queue({"name": queue_name, "workspace": ws.url, "schema": schema.url})
    assert isinstance(queue, Queue)
    assert (queue.name, queue.workspace, queue.schema) == (queue_name, ws.url, schema.url)
    assert queue.inbox is None
    assert isinstance(queue.counts, dict)

    prefix = f"sdk-{uuid.uuid4().hex[:8]}"
    inbox = admin.create_new_inbox(
        {"name": _unique("SDK inbox"), "email_prefix": prefix, "queues": [queue.url]}
    )
    assert isinstance(inbox, Inbox)
    assert inbox.queues == [queue.url]
    assert inbox.email_prefix == prefix
    assert inbox.email.startswith(prefix + "-") and "@" in inbox.email, inbox.email

    hook_name = _unique("SDK hook")
    hook = admin.create_new_hook(
        {
            "name": hook_name,
            "type": "webhook",
            "queues": [queue.url],
            "active": True,
            "events": ["annotation_status.changed", "annotation_content.initialize"],
            "config": {"url": "https://hooks.example.com/rossum", "insecure_ssl": False},
            "sideload": [],
            "metadata": {"source": "sdk-test"},
        }
    )
    assert isinstance(hook, Hook)
    assert hook.name == hook_name and hook.queues == [queue.url] and hook.active
    assert [str(e) for e in hook.events] == [
        "annotation_status.changed",
        "annotation_content.initialize",
    ]
    assert hook.config["url"] == "https://hooks.example.com/rossum"
    assert hook.metadata == {"source": "sdk-test"}

    # ---- retrieve each back
    ws_back = admin.retrieve_workspace(ws.id)
    assert ws_back.name == ws_name and ws_back.queues == [queue.url]

    schema_back = admin.retrieve_schema(schema.id)
    assert schema_back.name == schema_name and schema_back.queues == [queue.url]
    raw_schema = admin.request_json("GET", f"schemas/{schema.id}")
    assert raw_schema["content"] == SCHEMA_CONTENT, "schema content is stored verbatim"

    queue_back = admin.retrieve_queue(queue.id)
    assert queue_back.inbox == inbox.url, "creating the inbox links it to the queue"
    assert hook.url in queue_back.hooks, "queue.hooks reflects hook.queues"
    assert queue_back.schema == schema.url and queue_back.workspace == ws.url

    inbox_back = deserialize_default(Resource.Inbox, admin.request_json("GET", f"inboxes/{inbox.id}"))
    assert (inbox_back.email, inbox_back.queues) == (inbox.email, [queue.url])

    hook_back = admin.retrieve_hook(hook.id)
    assert hook_back.name == hook_name and hook_back.queues == [queue.url]

    # ---- the new objects show up in (filtered) lists
    assert queue.id in [q.id for q in admin.list_queues(workspace=ws.id)]
    assert ws.id in [w.id for w in admin.list_workspaces(page_size=1)]
    assert schema.id in [s.id for s in admin.list_schemas(page_size=2)]
    assert hook.id in [h.id for h in admin.list_hooks(page_size=2)]
    assert inbox.id in [i["id"] for i in admin.request_paginated("inboxes", page_size=2)]


# ---------------------------------------------------------------------------------------------
# authentication


def test_wrong_password_is_rejected():
    bad = SyncRossumAPIClient(
        base_url=BASE, credentials=UserCredentials(USERNAME, PASSWORD + "-wrong"), timeout=TIMEOUT
    )
    with pytest.raises(APIClientError) as err:
        list(bad.list_workspaces())
    assert err.value.status_code == 401
    assert err.value.url.endswith("/auth/login")


def test_bare_token_from_login(admin):
    # The SDK logs in with form data; the docs and the `rossum` CLI send JSON. Both must work.
    form = httpx.post(
        f"{BASE}/auth/login", data={"username": USERNAME, "password": PASSWORD}, timeout=TIMEOUT
    )
    assert form.status_code == 200, form.text
    as_json = httpx.post(
        f"{BASE}/auth/login", json={"username": USERNAME, "password": PASSWORD}, timeout=TIMEOUT
    )
    assert as_json.status_code == 200, as_json.text
    key = as_json.json()["key"]
    assert isinstance(key, str) and key

    by_token = _client(Token(key))
    token_ws = [w.id for w in by_token.list_workspaces()]
    assert token_ws == [w.id for w in admin.list_workspaces()]
    assert all(isinstance(w, Workspace) for w in by_token.list_workspaces(page_size=1))


def test_unknown_bare_token_is_401():
    with pytest.raises(APIClientError) as err:
        list(_client(Token("not-a-valid-token")).list_workspaces())
    assert err.value.status_code == 401
