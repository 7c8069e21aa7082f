"""Rossum's official SDK (rossum-api) against the orgops Rossum simulator, unchanged.

Run by ./scripts/test with ROSSUM_BASE_URL, ROSSUM_USERNAME, ROSSUM_PASSWORD, ROSSUM_CREATE_KEY
pointing at `orgops simulate`.
"""
import os
import uuid

import httpx
import pytest
from rossum_api import APIClientError, SyncRossumAPIClient
from rossum_api.dtos import Token, UserCredentials

BASE = os.environ["ROSSUM_BASE_URL"]
USER = os.environ["ROSSUM_USERNAME"]
PASSWORD = os.environ["ROSSUM_PASSWORD"]
CREATE_KEY = os.environ["ROSSUM_CREATE_KEY"]
TEMPLATE = os.environ.get("ROSSUM_TEMPLATE_ORG", "Template org")


@pytest.fixture(scope="module")
def admin():
    return SyncRossumAPIClient(base_url=BASE, credentials=UserCredentials(USER, PASSWORD))


def org_client(admin, org_url):
    """A client with a membership token for one organization, as the group admin gets it."""
    key = admin.request_json("post", "auth/membership_token", json={"organization": org_url})["key"]
    return SyncRossumAPIClient(base_url=BASE, credentials=Token(key))


@pytest.fixture(scope="module")
def template(admin):
    orgs = [o for o in admin.list_organizations() if o.name == TEMPLATE]
    assert len(orgs) == 1
    return org_client(admin, orgs[0].url)


def test_admin_sees_the_group(admin):
    names = [o.name for o in admin.list_organizations()]
    assert TEMPLATE in names
    groups = list(admin.list_organization_groups())
    assert len(groups) == 1 and groups[0].is_production


def test_template_lists_deserialize_in_the_sdk_models(template):
    workspaces = list(template.list_workspaces())
    schemas = list(template.list_schemas())
    queues = list(template.list_queues())
    hooks = list(template.list_hooks())
    assert len(workspaces) >= 3
    assert len(schemas) >= 10
    assert all(s.content for s in schemas)
    assert len(queues) >= 24
    for q in queues:
        assert q.schema.startswith(BASE + "/schemas/")
        assert q.inbox and q.inbox.startswith(BASE + "/inboxes/")
        assert "to_review" in q.counts
    assert len(hooks) >= 6
    assert any(h.run_after for h in hooks)
    assert any(len(h.queues) > 1 for h in hooks)
    inboxes = list(template.request_paginated("inboxes"))
    assert len(inboxes) == len(queues)
    roles = {r.name for r in template.list_user_roles()}
    assert {"admin", "annotator", "viewer", "manager"} <= roles
    assert len(list(template.list_users())) >= 5
    assert len(list(template.list_email_templates())) >= 5 * len(queues)
    assert len(list(template.list_connectors())) >= 1
    assert len(list(template.list_rules())) >= 1


def test_pagination_follows_next(template):
    everything = list(template.request_paginated("queues"))
    paged = list(template.request_paginated("queues", page_size=5))
    assert [q["id"] for q in paged] == [q["id"] for q in everything]


def test_create_an_org_and_its_setup_through_the_sdk(admin):
    name = f"SDK org {uuid.uuid4().hex[:6]}"
    r = httpx.post(f"{BASE}/organizations/create", data={
        "template_name": "Empty Organization Template", "organization_name": name,
        "user_fullname": "Sdk User", "user_email": f"sdk-{uuid.uuid4().hex[:6]}@example.com",
        "create_key": CREATE_KEY, "user_ui_settings": '{"locale": "en"}'})
    assert r.status_code == 201, r.text
    org = r.json()["organization"]
    assert org["organization_group"].startswith(BASE)
    c = org_client(admin, org["url"])

    ws = c.create_new_workspace({"name": "Inbound", "organization": org["url"]})
    schema = c.create_new_schema({"name": "Invoice", "content": [{
        "category": "section", "id": "basic", "label": "Basic", "children": [
            {"category": "datapoint", "id": "document_id", "label": "Invoice number", "type": "string"}]}]})
    queue = c.create_new_queue({"name": "Invoices", "workspace": ws.url, "schema": schema.url})
    inbox = c.create_new_inbox({"name": "Invoices inbox", "email_prefix": "sdk-invoices", "queues": [queue.url]})
    assert inbox.email.startswith("sdk-invoices-")
    assert c.retrieve_queue(queue.id).inbox == inbox.url
    hook = c.create_new_hook({"name": "Notify", "type": "webhook", "queues": [queue.url],
                              "events": ["annotation_status.changed"], "config": {"url": "https://example.com/h"}})
    assert c.retrieve_queue(queue.id).hooks == [hook.url]
    defaults = [t for t in c.list_email_templates() if t.queue == queue.url]
    assert len(defaults) == 5
    tmpl = c.create_new_email_template({"name": "Ask for PO", "queue": queue.url, "type": "custom",
                                        "subject": "PO?", "message": "<p>PO?</p>"})
    assert tmpl.organization == org["url"]
    connector = c.create_new_connector({"name": "ERP", "service_url": "https://erp.example.com"})
    assert c.retrieve_connector(connector.id).service_url == "https://erp.example.com"
    rule = c.create_new_rule({"name": "Flag", "queues": [queue.url], "trigger_condition": "True", "actions": []})
    assert c.retrieve_rule(rule.id).organization == org["url"]
    assert c.retrieve_workspace(ws.id).queues == [queue.url]

    with pytest.raises(APIClientError) as conflict:
        c.delete_workspace(ws.id)
    assert conflict.value.status_code == 409


def test_wrong_password_is_rejected():
    with pytest.raises(APIClientError) as e:
        list(SyncRossumAPIClient(base_url=BASE, credentials=UserCredentials(USER, "wrong")).list_workspaces())
    assert e.value.status_code == 401


def test_bare_token_works(admin):
    key = httpx.post(f"{BASE}/auth/login", data={"username": USER, "password": PASSWORD}).json()["key"]
    c = SyncRossumAPIClient(base_url=BASE, credentials=Token(key))
    assert TEMPLATE in [o.name for o in c.list_organizations()]


def test_concurrent_schema_modification_is_412(template):
    schema = next(iter(template.list_schemas()))
    stale = schema.modified_at
    template.request_json("patch", f"schemas/{schema.id}", json={"name": schema.name})
    with pytest.raises(APIClientError) as e:
        template.request_json("patch", f"schemas/{schema.id}", json={"name": schema.name, "modified_at": stale})
    assert e.value.status_code == 412
