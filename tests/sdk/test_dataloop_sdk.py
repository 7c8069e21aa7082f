"""Dataloop's official SDK (dtlpy 1.126.5) against the orgops Dataloop simulator, unchanged.

Run by ./scripts/test with the values `orgops simulate --vendor dataloop` prints:
DATALOOP_BASE_URL (the /api/v1 base), DATALOOP_GATE_URL, DATALOOP_TOKEN, DATALOOP_API_KEY,
DATALOOP_EMAIL, DATALOOP_PASSWORD (the admin: owner of both orgs, a superuser),
DATALOOP_USER_TOKEN, DATALOOP_USER_EMAIL (a plain member of the template org),
DATALOOP_TEMPLATE_ORG_ID and DATALOOP_TARGET_ORG_ID. A missing one is a KeyError: these tests
never skip.

dtlpy is pointed at the simulator the documented way (design doc vendors/dataloop.md §1): a
fresh DATALOOP_PATH before the import, add_environment + setenv, login_token. The tests share
dtlpy's global client and run in file order; each one that switches tokens switches back.
"""
import base64
import json
import os
import tempfile
import time
import uuid
from contextlib import contextmanager

# dtlpy keeps its cookie (environments, tokens) under DATALOOP_PATH, read at import time: a
# fresh directory keeps the tests away from a real ~/.dataloop.
os.environ["DATALOOP_PATH"] = tempfile.mkdtemp(prefix="dtlpy-sim-")

import pytest  # noqa: E402
import requests  # noqa: E402

import dtlpy as dl  # noqa: E402
from dtlpy import exceptions  # noqa: E402

BASE = os.environ["DATALOOP_BASE_URL"]
GATE = os.environ["DATALOOP_GATE_URL"]
TOKEN = os.environ["DATALOOP_TOKEN"]
API_KEY = os.environ["DATALOOP_API_KEY"]
EMAIL = os.environ["DATALOOP_EMAIL"]
PASSWORD = os.environ["DATALOOP_PASSWORD"]
USER_TOKEN = os.environ["DATALOOP_USER_TOKEN"]
USER_EMAIL = os.environ["DATALOOP_USER_EMAIL"]
TEMPLATE = os.environ["DATALOOP_TEMPLATE_ORG_ID"]
TARGET = os.environ["DATALOOP_TARGET_ORG_ID"]

# Test values of the seeded integrations' write-only options (see src/simulator/dataloop/seed.rs).
SEEDED_SECRETS = ["simulator-s3-secret", "simulator-sts-secret", "simulator-azure-secret",
                  "simulator-kv-secret", "simulator-registry-secret"]


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def forged_jwt(email, exp):
    """A well-formed JWT the simulator did not sign."""
    return "{}.{}.{}".format(b64({"alg": "HS256", "typ": "JWT"}),
                             b64({"email": email, "exp": exp, "iat": exp - 3600}),
                             b64({"sig": "forged"}))


def raw(method, path, **kwargs):
    """A request through dtlpy's own client (its auth, its URL building); (success, response)."""
    return dl.client_api.gen_request(req_type=method, path=path, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def simulator_env():
    dl.add_environment(environment=BASE, gate_url=GATE, alias="orgops-simulator",
                       verify_ssl=False, url=GATE + "/")
    dl.setenv(BASE)
    dl.login_token(TOKEN)
    yield
    dl.client_api.token = TOKEN


@contextmanager
def logged_in_as(token):
    dl.login_token(token)
    try:
        yield
    finally:
        dl.login_token(TOKEN)


# ---- auth ----

def test_login_token_api_key_and_users_me():
    assert dl.info()["user_email"] == EMAIL
    dl.login_api_key(API_KEY)
    assert dl.client_api.token == API_KEY
    assert dl.info()["user_email"] == EMAIL
    dl.login_token(TOKEN)
    ok, me = raw("get", "/users/me")
    assert ok and me.json()["email"] == EMAIL and me.json()["id"] == EMAIL
    assert TEMPLATE in me.json()["orgs"] and TARGET in me.json()["orgs"]


def test_a_token_the_gate_did_not_sign_is_refused_and_the_old_one_kept():
    with pytest.raises(ValueError, match="Invalid API key"):
        dl.login_token(forged_jwt(EMAIL, int(time.time()) + 3600))
    assert dl.client_api.token == TOKEN


def test_login_m2m_and_refresh_token_renewal():
    assert dl.login_m2m(email=EMAIL, password=PASSWORD, force=True) is True
    m2m = dl.client_api.token
    refresh = dl.client_api.refresh_token
    assert m2m != TOKEN and refresh
    assert dl.info()["user_email"] == EMAIL
    assert [o.id for o in dl.organizations.list()]
    # A token dtlpy sees as expired is renewed with the refresh token before the call.
    dl.client_api.token = forged_jwt(EMAIL, int(time.time()) - 10)
    dl.client_api.refresh_token = refresh
    assert TARGET in [o.id for o in dl.organizations.list()]
    renewed = dl.client_api.token
    assert renewed not in (m2m, TOKEN)
    assert dl.info()["user_email"] == EMAIL
    dl.login_token(TOKEN)


def test_login_m2m_with_a_wrong_password_fails():
    assert dl.login_m2m(email=EMAIL, password="not-the-password", force=True) is False
    dl.login_token(TOKEN)
    assert dl.info()["user_email"] == EMAIL


def test_an_expired_token_is_token_expired_before_any_request():
    dl.client_api.token = forged_jwt(EMAIL, int(time.time()) - 120)
    try:
        with pytest.raises(exceptions.TokenExpired):
            dl.organizations.list()
    finally:
        dl.login_token(TOKEN)
    # And the gate itself refuses it with a JSON 401.
    r = requests.get(BASE + "/orgs",
                     headers={"authorization": "Bearer " + forged_jwt(EMAIL, int(time.time()) - 120)})
    assert r.status_code == 401
    assert r.json()["name"] == "Unauthorized" and r.json()["status"] == 401


# ---- organizations ----

def test_organizations_list_and_get():
    orgs = {o.id: o for o in dl.organizations.list()}
    assert {TEMPLATE, TARGET} <= set(orgs)
    t = dl.organizations.get(organization_id=TEMPLATE)
    assert t.name == orgs[TEMPLATE].name
    assert t.plan in ("premium", "freemium")
    assert t.owner == EMAIL and t.creator == EMAIL
    assert t.account["org"] == TEMPLATE and t.account["id"]
    assert isinstance(t.created_at, int) and t.created_at > 1_600_000_000_000
    assert EMAIL in [m["email"] for m in t.members]
    by_name = dl.organizations.get(organization_name=t.name)
    assert by_name.id == TEMPLATE


def test_an_unknown_org_is_not_found():
    with pytest.raises(exceptions.NotFound):
        dl.organizations.get(organization_id=str(uuid.uuid4()))
    with pytest.raises(exceptions.NotFound):
        dl.organizations.get(organization_name="no such org " + uuid.uuid4().hex)
    ok, r = raw("get", "/orgs/" + str(uuid.uuid4()))
    assert not ok and r.status_code == 404
    assert r.json()["name"] == "NotFound" and r.json()["message"]


def test_list_members_with_roles_and_a_pending_invitation():
    members = dl.organizations.list_members(organization_id=TEMPLATE)
    by_email = {m.email: m for m in members if m.email}
    assert by_email[EMAIL].role == "owner" and by_email[EMAIL].id == EMAIL
    assert by_email[USER_EMAIL].role == "member"
    owners = dl.organizations.list_members(organization_id=TEMPLATE, role=dl.MemberOrgRole.OWNER)
    assert [m.email for m in owners] == [EMAIL]
    pending = [m for m in members if m.email is None]
    assert pending and all(m.role in ("owner", "admin", "member", "worker") for m in pending)
    ok, r = raw("get", "/orgs/{}/members".format(TEMPLATE))
    rows = [m for m in r.json() if m.get("status") == "pending"]
    assert rows and all(m["inviteEmail"] and m["email"] is None for m in rows)
    assert {m["id"] for m in rows} == {m.id for m in pending}


def test_add_update_and_delete_a_member_invitation():
    email = "sdk-{}@orgops.example".format(uuid.uuid4().hex[:8])
    assert dl.organizations.add_member(email=email, role=dl.MemberOrgRole.MEMBER,
                                       organization_id=TARGET) is True

    def invite():
        ok, r = raw("get", "/orgs/{}/members".format(TARGET))
        assert ok
        rows = [m for m in r.json() if m.get("inviteEmail") == email]
        assert len(rows) <= 1
        return rows[0] if rows else None

    row = invite()
    assert row["status"] == "pending" and row["role"] == "member" and row["email"] is None
    with pytest.raises(exceptions.Conflict):
        dl.organizations.add_member(email=email.upper(), role=dl.MemberOrgRole.WORKER,
                                    organization_id=TARGET)
    updated = dl.organizations.update_member(email=email, role=dl.MemberOrgRole.WORKER,
                                             organization_id=TARGET)
    assert isinstance(updated, list) and updated[0]["role"] == "worker"
    assert invite()["role"] == "worker"
    with pytest.raises(ValueError):
        dl.organizations.add_member(email=email, role="boss", organization_id=TARGET)
    with pytest.raises(exceptions.Forbidden):
        dl.organizations.delete_member(user_id=row["id"], organization_id=TARGET)
    assert dl.organizations.delete_member(user_id=row["id"], organization_id=TARGET,
                                          sure=True, really=True) is True
    assert invite() is None
    with pytest.raises(exceptions.NotFound):
        dl.organizations.delete_member(user_id=row["id"], organization_id=TARGET,
                                       sure=True, really=True)


def test_update_member_changes_an_active_member_role():
    out = dl.organizations.update_member(email=USER_EMAIL, role=dl.MemberOrgRole.WORKER,
                                         organization_id=TEMPLATE)
    assert out[0]["email"] == USER_EMAIL and out[0]["role"] == "worker"
    roles = {m.email: m.role for m in dl.organizations.list_members(organization_id=TEMPLATE)}
    assert roles[USER_EMAIL] == "worker"
    dl.organizations.update_member(email=USER_EMAIL, role=dl.MemberOrgRole.MEMBER,
                                   organization_id=TEMPLATE)
    with pytest.raises(exceptions.NotFound):
        dl.organizations.update_member(email="nobody@orgops.example",
                                       role=dl.MemberOrgRole.MEMBER, organization_id=TEMPLATE)


def test_the_org_owner_cannot_be_removed():
    with pytest.raises(exceptions.BadRequest):
        dl.organizations.delete_member(user_id=EMAIL, organization_id=TARGET,
                                       sure=True, really=True)


def test_groups_and_integrations_never_show_secrets():
    groups = dl.organizations.list_groups(organization_id=TEMPLATE)
    assert {"Annotators", "ML engineers", "Reviewers"} <= {g["name"] for g in groups}
    assert all(g["org"] == TEMPLATE and isinstance(g["members"], list) for g in groups)
    integrations = dl.organizations.list_integrations(organization_id=TEMPLATE)
    types = {i["type"] for i in integrations}
    assert {"s3", "aws-sts", "gcs", "azureblob", "key_value", "private-registry"} <= types
    for i in integrations:
        assert "options" not in i and i["org"] == TEMPLATE
        assert any(m["name"] == "status" for m in i["metadata"])
    text = json.dumps(integrations) + json.dumps(raw("get", "/orgs/" + TEMPLATE)[1].json())
    assert not [s for s in SEEDED_SECRETS if s in text]
    available = dl.organizations.list_integrations(organization_id=TEMPLATE, only_available=True)
    s3 = [a for a in available if a["type"] == "s3"][0]
    assert {"key", "secret"} <= {o["name"] for o in s3["options"]}


def test_plan_update_needs_a_superuser_and_a_known_plan():
    org = dl.organizations.get(organization_id=TARGET)
    before = org.plan
    other = "premium" if before == "freemium" else "freemium"
    assert dl.organizations.update(plan=other, organization=org) is org
    assert dl.organizations.get(organization_id=TARGET).plan == other
    dl.organizations.update(plan=before, organization_id=TARGET)
    assert dl.organizations.get(organization_id=TARGET).plan == before
    # dtlpy refuses an unknown plan itself; the gate answers 400 to one sent anyway.
    with pytest.raises(ValueError):
        dl.organizations.update(plan="gold", organization_id=TARGET)
    ok, r = raw("patch", "/orgs/{}/plan".format(TARGET), json_req={"plan": "gold"})
    assert not ok and r.status_code == 400
    with pytest.raises(exceptions.BadRequest):
        dl.client_api.check_response(ok, r)
    # A plain user is no superuser.
    t = dl.organizations.get(organization_id=TEMPLATE)
    with logged_in_as(USER_TOKEN):
        assert dl.info()["user_email"] == USER_EMAIL
        with pytest.raises(exceptions.Forbidden):
            dl.organizations.update(plan=dl.OrganizationsPlans.FREEMIUM, organization=t)
    assert dl.organizations.get(organization_id=TEMPLATE).plan == t.plan


def test_cache_action_apply_and_destroy():
    org = dl.organizations.get(organization_id=TARGET)

    def state():
        ok, r = raw("post", "/services/fs-cache?mode=get",
                    json_req={"org": {"id": org.id, "name": org.name}})
        assert ok
        return r.json()["state"]

    # dtlpy's enum defaults render as "CacheAction.APPLY" in its URL under Python >= 3.11
    # (format() of a str-mixin Enum), so the modes go in as the strings the wire carries.
    assert dl.organizations.cache_action(organization=org, mode="apply", pod_type="medium") is True
    assert state() == "READY"
    assert dl.organizations.cache_action(organization_id=TARGET, mode="destroy") is True
    assert state() != "READY"


# ---- projects and what a template copy writes ----

@pytest.fixture(scope="module")
def project():
    """A project created the dtlpy way (form body, lands in the active org), moved to the
    target org as the vendor's own tests move projects."""
    name = "sdk-project-" + uuid.uuid4().hex[:6]
    p = dl.projects.create(project_name=name)
    assert p.name == name and p.org["id"] == TEMPLATE and p.creator == EMAIL
    ok, r = raw("patch", "/projects/{}/org".format(p.id), data={"org_id": TARGET})
    assert ok, r.text
    p = dl.projects.get(project_id=p.id)
    assert p.org["id"] == TARGET
    yield p
    dl.projects.delete(project_id=p.id, sure=True, really=True)


def test_projects_list_get_update_and_members(project):
    names = [p.name for p in dl.projects.list()]
    assert project.name in names and "Traffic cameras" in names
    system = [p for p in dl.organizations.get(organization_id=TEMPLATE).projects.list()
              if p.system_project]
    assert len(system) == 1
    assert dl.projects.get(project_name=project.name).id == project.id
    project.name = project.name + "-renamed"
    project.update()
    assert dl.projects.get(project_id=project.id).name == project.name
    members = dl.projects.add_member(email=USER_EMAIL, project_id=project.id,
                                     role=dl.MemberRole.ANNOTATOR)
    row = [m for m in members if m["email"] == USER_EMAIL][0]
    assert row["role"] == "annotator" and row["membershipEntityId"] == project.id
    with pytest.raises(exceptions.Conflict):
        dl.projects.add_member(email=USER_EMAIL, project_id=project.id,
                               role=dl.MemberRole.ANNOTATOR)
    dl.projects.update_member(email=USER_EMAIL, project_id=project.id,
                              role=dl.MemberRole.DEVELOPER)
    engineers = dl.projects.list_members(project=project, role=dl.MemberRole.DEVELOPER)
    assert [m.email for m in engineers] == [USER_EMAIL]
    owners = dl.projects.list_members(project=project, role=dl.MemberRole.OWNER)
    assert [m.email for m in owners] == [EMAIL]
    left = dl.projects.remove_member(email=USER_EMAIL, project_id=project.id)
    assert USER_EMAIL not in [m["email"] for m in left]


def test_an_unknown_project_is_not_found():
    with pytest.raises(exceptions.NotFound):
        dl.projects.get(project_id=str(uuid.uuid4()))
    with pytest.raises(exceptions.NotFound):
        dl.projects.get(project_name="no such project " + uuid.uuid4().hex)


def test_integration_and_driver(project):
    org = dl.organizations.get(organization_id=TARGET)
    integration = org.integrations.create(integrations_type=dl.IntegrationType.S3,
                                          name="sdk-s3", options={"key": "AKIASDKTEST",
                                                                  "secret": "sdk-only-secret"})
    assert integration.type == "s3" and integration.org == TARGET
    got = org.integrations.get(integrations_id=integration.id)
    assert got.name == "sdk-s3"
    listed = json.dumps(org.integrations.list())
    assert integration.id in listed and "sdk-only-secret" not in listed
    driver = project.drivers.create(name="sdk-driver", driver_type=dl.ExternalStorage.S3,
                                    integration_id=integration.id, bucket_name="sdk-bucket",
                                    integration_type=dl.IntegrationType.S3, region="eu-west-1",
                                    path="images/")
    assert isinstance(driver, dl.S3Driver)
    assert driver.bucket_name == "sdk-bucket" and driver.region == "eu-west-1"
    assert driver.integration_id == integration.id and driver.creator == EMAIL
    assert [d.id for d in project.drivers.list()] == [driver.id]
    assert project.drivers.get(driver_name="sdk-driver").id == driver.id
    assert project.drivers.delete(driver_name="sdk-driver", sure=True, really=True) is True
    assert project.drivers.list() == []
    with pytest.raises(exceptions.NotFound):
        project.drivers.get(driver_id=driver.id)
    assert org.integrations.delete(integrations_id=integration.id, sure=True, really=True) is True


def test_ontology_with_nested_labels_and_attributes(project):
    labels = [dl.Label(tag="Vehicle", color=(230, 25, 75),
                       children=[dl.Label(tag="Vehicle.Car", color=(60, 180, 75))]),
              dl.Label(tag="Pedestrian", color="#911eb4")]
    ontology = project.ontologies.create(labels=labels, title="sdk ontology",
                                         attributes=["occluded"])
    assert ontology.title == "sdk ontology" and ontology.attributes == ["occluded"]
    assert [l.tag for l in ontology.labels] == ["Vehicle", "Pedestrian"]
    assert [c.tag for c in ontology.labels[0].children] == ["Vehicle.Car"]
    got = project.ontologies.get(ontology_id=ontology.id)
    assert got.metadata["system"]["projectIds"] == [project.id]
    # add_label upserts through PATCH /ontologies/{id}/labels; a nested one by its dotted tag.
    got.add_label(label_name="Bicycle", color=(0, 0, 255))
    got.add_label(label_name="Vehicle.Truck", color=(0, 128, 0), update_ontology=True)
    fetched = project.ontologies.get(ontology_id=ontology.id)
    assert [l.tag for l in fetched.labels] == ["Vehicle", "Pedestrian", "Bicycle"]
    assert [c.tag for c in fetched.labels[0].children] == ["Vehicle.Car", "Vehicle.Truck"]
    # update() puts the whole entity back.
    fetched.labels = [l for l in fetched.labels if l.tag != "Pedestrian"]
    updated = fetched.update()
    assert [l.tag for l in updated.labels] == ["Vehicle", "Bicycle"]
    assert [l.tag for l in project.ontologies.get(ontology_id=ontology.id).labels] == [
        "Vehicle", "Bicycle"]
    assert ontology.id in [o.id for o in project.ontologies.list()]
    assert project.ontologies.delete(ontology_id=ontology.id) is True
    with pytest.raises(exceptions.NotFound):
        project.ontologies.get(ontology_id=ontology.id)


def test_recipes_link_ontologies_and_page(project):
    ontology = project.ontologies.create(labels=[dl.Label(tag="Thing", color=(1, 2, 3))],
                                         title="recipe ontology")
    recipes = [project.recipes.create(project_ids=[project.id], ontology_ids=[ontology.id],
                                      recipe_name="sdk recipe {}".format(i)) for i in range(3)]
    assert all(r.ontology_ids == [ontology.id] and r.project_ids == [project.id] for r in recipes)
    # Pages of two: dtlpy walks pageOffset until hasNextPage is false.
    filters = dl.Filters(resource=dl.FiltersResource.RECIPE, page_size=2)
    pages = project.recipes.list(filters=filters)
    assert pages.items_count == 3 and pages.total_pages_count == 2
    seen = [r.id for page in pages for r in page]
    assert seen == [r.id for r in recipes]
    got = project.recipes.get(recipe_id=recipes[0].id)
    got.title = "sdk recipe renamed"
    assert project.recipes.update(got).title == "sdk recipe renamed"
    clone = project.recipes.clone(recipe=got, shallow=True)
    assert clone.id != got.id and clone.ontology_ids == [ontology.id]
    deep = project.recipes.clone(recipe=got, shallow=False)
    assert deep.ontology_ids and deep.ontology_ids != [ontology.id]
    for r in recipes + [clone, deep]:
        assert project.recipes.delete(recipe_id=r.id) is True
    with pytest.raises(exceptions.NotFound):
        project.recipes.get(recipe_id=recipes[0].id)


def test_empty_datasets(project):
    dataset = project.datasets.create(dataset_name="sdk-dataset")
    assert dataset.name == "sdk-dataset" and dataset.items_count == 0
    assert dataset.metadata["system"]["recipes"], "a default recipe"
    assert [d.id for d in project.datasets.list()] == [dataset.id]
    assert project.datasets.get(dataset_id=dataset.id).name == "sdk-dataset"
    assert project.datasets.delete(dataset_id=dataset.id, sure=True, really=True) is True
    assert project.datasets.list() == []


def test_the_seeded_template_reads_as_a_copy_needs_it():
    projects = {p.name: p for p in dl.organizations.get(organization_id=TEMPLATE).projects.list()}
    traffic = projects["Traffic cameras"]
    assert {"Retail shelves", "Medical imaging"} <= set(projects)
    drivers = traffic.drivers.list()
    integrations = {i["id"]: i for i in dl.organizations.list_integrations(organization_id=TEMPLATE)}
    assert drivers and all(d.integration_id in integrations for d in drivers)
    ontologies = traffic.ontologies.list()
    vehicle = [l for l in ontologies[0].labels if l.tag == "Vehicle"][0]
    assert "Vehicle.Car" in [c.tag for c in vehicle.children]
    assert ontologies[0].attributes
    recipes = [r for page in traffic.recipes.list() for r in page]
    assert recipes and all(r.ontology_ids[0] in [o.id for o in ontologies] for r in recipes)
    roles = {m.email: m.role for m in dl.projects.list_members(project=projects["Retail shelves"])}
    assert "annotator" in roles.values() and any(e.endswith("@bot.dataloop.ai") for e in roles)
