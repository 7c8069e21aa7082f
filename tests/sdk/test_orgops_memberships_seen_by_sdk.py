"""What `orgops apply` does with OrgMemberships is visible through Rossum's own SDK.

Runs the orgops binary (ORGOPS_BIN, default target/debug/orgops) against the simulator of
./scripts/test, then reads users and memberships with rossum-api.
"""
import os
import pathlib
import subprocess
import tempfile
import uuid

from rossum_api import SyncRossumAPIClient
from rossum_api.dtos import UserCredentials

BASE = os.environ["ROSSUM_BASE_URL"]
USER = os.environ["ROSSUM_USERNAME"]
PASSWORD = os.environ["ROSSUM_PASSWORD"]
CREATE_KEY = os.environ["ROSSUM_CREATE_KEY"]
ORGOPS = os.environ.get("ORGOPS_BIN", str(pathlib.Path(__file__).resolve().parents[2] / "target/debug/orgops"))


def test_one_person_in_two_orgs_is_one_user_and_one_membership():
    tag = uuid.uuid4().hex[:6]
    george = f"george-{tag}@example.com"
    docs = [f"""apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: sdk}}
stringData: {{username: {USER}, password: {PASSWORD}, createKey: {CREATE_KEY}}}
""", f"""apiVersion: orgops.io/v1alpha1
kind: VendorConnection
metadata: {{name: rossum, namespace: sdk}}
spec: {{vendor: rossum, endpoint: "{BASE}", credentialsSecretRef: {{name: creds}}}}
"""]
    for dept in ("de", "fr"):
        docs.append(f"""apiVersion: orgops.io/v1alpha1
kind: Organization
metadata: {{name: {dept}, namespace: sdk}}
spec:
  vendor: rossum
  displayName: SDK {dept} {tag}
  connectionRef: {{name: rossum}}
  settings: {{rossum: {{firstUser: {{email: first-{dept}-{tag}@example.com}}}}}}
""")
        docs.append(f"""apiVersion: orgops.io/v1alpha1
kind: OrgMembership
metadata: {{name: george-{dept}, namespace: sdk}}
spec:
  organizationRef: {{name: {dept}}}
  user: {{email: {george}, firstName: George}}
  role: manager
""")
    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d) / "m.yaml"
        path.write_text("---\n".join(docs))
        run = subprocess.run([ORGOPS, "apply", "-f", str(path), "-q"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr

    admin = SyncRossumAPIClient(base_url=BASE, credentials=UserCredentials(USER, PASSWORD))
    group = next(iter(admin.list_organization_groups()))
    members = list(admin.request_paginated(f"organization_groups/{group.id}/users", username=george))
    assert len(members) == 1, members
    memberships = [m for m in admin.request_paginated(f"organization_groups/{group.id}/memberships")
                   if m["user"].endswith(f"/users/{members[0]['id']}")]
    assert len(memberships) == 1, memberships
    orgs = {o.name: o for o in admin.list_organizations() if o.name.endswith(tag)}
    assert set(orgs) == {f"SDK de {tag}", f"SDK fr {tag}"}
    # The user's primary org is one department, the membership grants the other.
    primary = members[0]["organization"].rsplit("/", 1)[1]
    granted = memberships[0]["organization"].rsplit("/", 1)[1]
    assert {primary, granted} == {str(o.id) for o in orgs.values()}


def test_every_organization_group_view_is_served_by_id():
    admin = SyncRossumAPIClient(base_url=BASE, credentials=UserCredentials(USER, PASSWORD))
    group = next(iter(admin.list_organization_groups()))
    users = list(admin.request_paginated(f"organization_groups/{group.id}/users"))
    assert users
    one = admin.request_json("GET", f"organization_groups/{group.id}/users/{users[0]['id']}")
    assert one == users[0]
    orgs = list(admin.request_paginated(f"organization_groups/{group.id}/organizations"))
    org = admin.request_json("GET", f"organization_groups/{group.id}/organizations/{orgs[0]['id']}")
    assert org == orgs[0]
