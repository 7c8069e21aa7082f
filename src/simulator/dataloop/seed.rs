//! The built-in seed: users, a realistic template org to copy from, an empty target org to
//! adopt, set up through the same operations (and so the same shapes) as API calls.
//!
//! The template org has four projects (one the system project) with contributors of every
//! role (a bot among them) and group roles; three groups (one a subgroup of another); an
//! integration of each common type (`s3`, `aws-sts`, `gcs`, `azureblob`, `key_value`,
//! `private-registry`) whose write-only options are test values; drivers bound to those
//! integrations; ontologies with nested labels and attributes; recipes linking projects and
//! ontologies; datasets with a driver and a recipe; org members of every role and one pending
//! invitation. The target org has only its owner and its system project.

use serde_json::{Value, json};

use super::error::ApiError;
use super::state::{Caller, Out, State};

/// The seeded admin: owner of both orgs and a superuser (may change plans).
pub const ADMIN_EMAIL: &str = "admin@orgops.example";
/// The admin's password (`dl.login_m2m`).
pub const ADMIN_PASSWORD: &str = "dataloop-simulator-password";
/// The seeded plain user: a `member` of the template org, not a superuser.
pub const USER_EMAIL: &str = "user@orgops.example";
/// The plain user's password.
pub const USER_PASSWORD: &str = "dataloop-simulator-user-password";
/// The template org's id (fixed, so scripts and docs can name it).
pub const TEMPLATE_ORG_ID: &str = "3f6c1a52-8d4e-4b9a-9c27-5e1f0a7b2d41";
/// The template org's name.
pub const TEMPLATE_ORG_NAME: &str = "orgops-template";
/// The target org's id (the org a test adopts).
pub const TARGET_ORG_ID: &str = "a7d2e9c4-1b3f-4e86-8a5d-0c9b7f6e2a13";
/// The target org's name.
pub const TARGET_ORG_NAME: &str = "orgops-target";
/// Name of every org's system project.
pub const SYSTEM_PROJECT: &str = "System Project";
/// The bot contributor of one template project (skipped by copies, as bots are).
pub const BOT_EMAIL: &str = "bot.5c1d9a7e-2f4b-4d8a-b0e3-91a6c7d2f845@bot.dataloop.ai";
/// The address of the template org's pending invitation.
pub const INVITED_EMAIL: &str = "erin@orgops.example";

/// Seeded users: e-mail, given name, family name, password.
pub const USERS: &[(&str, &str, &str, Option<&str>)] = &[
    (ADMIN_EMAIL, "Olive", "Admin", Some(ADMIN_PASSWORD)),
    (USER_EMAIL, "Uma", "User", Some(USER_PASSWORD)),
    ("alice@orgops.example", "Alice", "Annotator", None),
    ("bob@orgops.example", "Bob", "Engineer", None),
    ("carol@orgops.example", "Carol", "Manager", None),
    ("dave@orgops.example", "Dave", "Worker", None),
    (BOT_EMAIL, "Ingest", "Bot", None),
];

/// Template org members besides the admin (its owner): e-mail, org role.
const TEMPLATE_MEMBERS: &[(&str, &str)] = &[
    (USER_EMAIL, "member"),
    ("alice@orgops.example", "member"),
    ("bob@orgops.example", "admin"),
    ("carol@orgops.example", "member"),
    ("dave@orgops.example", "worker"),
];

fn json_of(out: Result<Out, ApiError>, what: &str) -> Result<Value, String> {
    match out {
        Ok(Out::Json(v)) => Ok(v),
        Ok(Out::NoContent) => Ok(Value::Null),
        Err(e) => Err(format!("seeding {what}: {} {}", e.status, e.message)),
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

/// A label as the gate keeps it: a child's `tag` is its full dotted path (`Vehicle.Car`, as
/// dtlpy's `add_label` writes it), its `displayLabel` the last part.
fn label(tag: &str, color: &str, children: Vec<Value>) -> Value {
    let display = tag.rsplit('.').next().unwrap_or(tag);
    json!({"value": {"tag": tag, "color": color, "attributes": [], "displayLabel": display},
           "children": children})
}

/// Loads the seed into an empty state; the counters are zero afterwards.
pub fn load(st: &mut State) -> Result<(), String> {
    for (email, first, last, password) in USERS {
        st.add_user(email, Some(first), Some(last), *password);
    }
    if let Some(u) = st.users.get_mut(ADMIN_EMAIL) {
        u.superuser = true;
    }
    st.create_org(TEMPLATE_ORG_ID, TEMPLATE_ORG_NAME, "premium", ADMIN_EMAIL);
    st.create_org(TARGET_ORG_ID, TARGET_ORG_NAME, "freemium", ADMIN_EMAIL);
    if let Some(u) = st.users.get_mut(ADMIN_EMAIL) {
        u.active_org = Some(TEMPLATE_ORG_ID.to_string());
    }
    for (email, role) in TEMPLATE_MEMBERS {
        st.join_org(TEMPLATE_ORG_ID, email, role)?;
    }
    let admin = Caller {
        email: ADMIN_EMAIL.into(),
        superuser: true,
    };
    let t = TEMPLATE_ORG_ID;
    json_of(
        st.add_members(
            &admin,
            t,
            &json!({"emails": [INVITED_EMAIL], "role": "member"}),
        ),
        "the invitation",
    )?;

    // Groups.
    let mut groups = Vec::new();
    for (name, members) in [
        (
            "Annotators",
            &["alice@orgops.example", "dave@orgops.example"][..],
        ),
        ("ML engineers", &["bob@orgops.example", USER_EMAIL][..]),
        ("Reviewers", &["carol@orgops.example"][..]),
    ] {
        let g = json_of(
            st.create_group(&admin, &json!({"name": name, "orgId": t})),
            name,
        )?;
        let gid = id_of(&g);
        for m in members {
            json_of(
                st.add_group_member(&admin, &gid, &json!({"user_id": m})),
                name,
            )?;
        }
        groups.push(gid);
    }
    json_of(
        st.add_subgroup(&admin, &groups[0], &json!({"sub_group_id": groups[2]})),
        "subgroup",
    )?;

    // Integrations, one of each common type (options are test values, never served).
    let mut integrations = std::collections::HashMap::new();
    for (kind, name, options, metadata) in [
        (
            "s3",
            "acme-s3",
            json!({"key": "AKIAORGOPSSIMULATOR1", "secret": "simulator-s3-secret"}),
            json!(null),
        ),
        (
            "aws-sts",
            "acme-aws-sts",
            json!({"key": "AKIAORGOPSSIMULATOR2", "secret": "simulator-sts-secret",
                   "roleArns": "arn:aws:iam::123456789012:role/dataloop-access"}),
            json!(null),
        ),
        (
            "gcs",
            "acme-gcs",
            json!({"content": "{\"type\":\"service_account\",\"project_id\":\"acme-vision\",\"private_key\":\"simulator\"}"}),
            json!(null),
        ),
        (
            "azureblob",
            "acme-azure",
            json!({"clientId": "7d1f3e2a-0000-4000-8000-000000000001",
                   "secret": "simulator-azure-secret",
                   "tenantId": "7d1f3e2a-0000-4000-8000-000000000002"}),
            json!(null),
        ),
        (
            "key_value",
            "acme-labeling-api-key",
            json!({"key": "LABELING_API_KEY", "value": "simulator-kv-secret"}),
            json!(null),
        ),
        (
            "private-registry",
            "acme-registry",
            json!({"name": "acme-registry",
                   "spec": {"password": "simulator-registry-secret", "username": "robot",
                            "server": "registry.acme.example", "email": "robot@acme.example"}}),
            json!({"provider": "custom", "authMethod": "basic"}),
        ),
    ] {
        let i = json_of(
            st.create_integration(
                &admin,
                t,
                &json!({"type": kind, "name": name, "options": options, "metadata": metadata}),
            ),
            name,
        )?;
        integrations.insert(name, id_of(&i));
    }

    // Projects: the system project of each org, then three template projects.
    st.insert_project(t, SYSTEM_PROJECT, ADMIN_EMAIL, true);
    st.insert_project(TARGET_ORG_ID, SYSTEM_PROJECT, ADMIN_EMAIL, true);
    let traffic = st.insert_project(t, "Traffic cameras", ADMIN_EMAIL, false);
    let retail = st.insert_project(t, "Retail shelves", ADMIN_EMAIL, false);
    let medical = st.insert_project(t, "Medical imaging", ADMIN_EMAIL, false);
    for (pid, email, role) in [
        (&traffic, "alice@orgops.example", "annotator"),
        (&traffic, "bob@orgops.example", "engineer"),
        (&traffic, "dave@orgops.example", "annotator"),
        (&retail, "alice@orgops.example", "annotator"),
        (&retail, "bob@orgops.example", "engineer"),
        (&retail, USER_EMAIL, "engineer"),
        (&retail, BOT_EMAIL, "annotator"),
        (&medical, "bob@orgops.example", "engineer"),
        (&medical, "carol@orgops.example", "annotationManager"),
    ] {
        json_of(
            st.add_project_member(&admin, pid, email, &json!({"role": role})),
            email,
        )?;
    }
    for (pid, gid, role) in [
        (&traffic, &groups[0], "annotator"),
        (&medical, &groups[1], "engineer"),
        (&medical, &groups[2], "annotationManager"),
    ] {
        json_of(
            st.set_project_group(&admin, pid, gid, &json!({"role": role}), true),
            "project group",
        )?;
    }

    // Drivers.
    let mut drivers = Vec::new();
    for (pid, name, kind, integration, payload) in [
        (
            &traffic,
            "traffic-raw",
            "s3",
            "acme-s3",
            json!({"bucketName": "acme-traffic-raw", "region": "us-east-1",
                   "storageClass": "", "path": "cameras/"}),
        ),
        (
            &traffic,
            "traffic-archive",
            "s3",
            "acme-aws-sts",
            json!({"bucketName": "acme-traffic-archive", "region": "eu-west-1",
                   "storageClass": "GLACIER_IR", "path": ""}),
        ),
        (
            &retail,
            "retail-images",
            "gcs",
            "acme-gcs",
            json!({"bucket": "acme-retail-images", "path": "shelves/"}),
        ),
        (
            &medical,
            "medical-dicom",
            "azureblob",
            "acme-azure",
            json!({"containerName": "dicom", "path": ""}),
        ),
    ] {
        let d = json_of(
            st.create_driver(
                &admin,
                &json!({
                    "integrationId": integrations[integration], "integrationType": kind,
                    "name": name, "metadata": {"system": {"projectId": pid}}, "type": kind,
                    "payload": payload, "allowExternalDelete": false, "creator": ADMIN_EMAIL,
                }),
            ),
            name,
        )?;
        drivers.push(id_of(&d));
    }

    // Ontologies with nested labels and attributes (v1 names and v2 definitions).
    let occluded = json!({"key": "occluded", "name": "Occluded", "type": "boolean",
                          "scope": ["*"], "optional": true});
    let traffic_ontology = json_of(
        st.create_ontology(
            &admin,
            &json!({
                "title": "Traffic objects",
                "projectIds": [traffic],
                "attributes": ["occluded", "truncated"],
                "metadata": {"attributes": [
                    occluded,
                    {"key": "vehicle_color", "name": "Color", "type": "options",
                     "values": ["red", "white", "black", "other"], "scope": ["Vehicle"]},
                ]},
                "roots": [
                    label("Vehicle", "#e6194b", vec![
                        label("Vehicle.Car", "#3cb44b", vec![]),
                        label("Vehicle.Truck", "#ffe119", vec![]),
                        label("Vehicle.Bus", "#4363d8", vec![
                            label("Vehicle.Bus.School bus", "#f58231", vec![]),
                        ]),
                    ]),
                    label("Pedestrian", "#911eb4", vec![]),
                    label("Traffic sign", "#46f0f0", vec![
                        label("Traffic sign.Stop", "#f032e6", vec![]),
                        label("Traffic sign.Yield", "#bcf60c", vec![]),
                    ]),
                ],
            }),
        ),
        "ontology",
    )?;
    let retail_ontology = json_of(
        st.create_ontology(
            &admin,
            &json!({
                "title": "Shelf products",
                "projectIds": [retail],
                "attributes": ["facing"],
                "metadata": {"attributes": [
                    {"key": "facing", "name": "Facing", "type": "options",
                     "values": ["front", "side", "back"], "scope": ["Product"]},
                ]},
                "roots": [
                    label("Product", "#008080", vec![
                        label("Product.Beverage", "#e6beff", vec![]),
                        label("Product.Snack", "#9a6324", vec![]),
                    ]),
                    label("Price tag", "#fffac8", vec![]),
                    label("Empty slot", "#800000", vec![]),
                ],
            }),
        ),
        "ontology",
    )?;
    let medical_ontology = json_of(
        st.create_ontology(
            &admin,
            &json!({
                "title": "Findings",
                "projectIds": [medical],
                "attributes": ["confidence"],
                "metadata": {"attributes": [
                    {"key": "confidence", "name": "Confidence", "type": "slider",
                     "range": {"min": 0, "max": 100, "step": 5}, "scope": ["Lesion"]},
                ]},
                "roots": [
                    label("Lesion", "#aaffc3", vec![
                        label("Lesion.Benign", "#808000", vec![]),
                        label("Lesion.Malignant", "#ffd8b1", vec![]),
                    ]),
                    label("Artifact", "#000075", vec![]),
                ],
            }),
        ),
        "ontology",
    )?;

    // Recipes linking projects and ontologies.
    let mut recipes = Vec::new();
    for (pid, title, ontology, description) in [
        (
            &traffic,
            "Traffic annotation",
            &traffic_ontology,
            "Box every vehicle, pedestrian and sign.",
        ),
        (
            &traffic,
            "Traffic QA",
            &traffic_ontology,
            "Second pass: fix labels and attributes.",
        ),
        (
            &retail,
            "Shelf audit",
            &retail_ontology,
            "Mark products, price tags and gaps.",
        ),
        (
            &medical,
            "Findings review",
            &medical_ontology,
            "Outline findings; a radiologist reviews.",
        ),
    ] {
        let r = json_of(
            st.create_recipe(
                &admin,
                &json!({
                    "title": title, "projectIds": [pid], "ontologyIds": [id_of(ontology)],
                    "description": description,
                    "uiSettings": {"allowObjectIdAutoAssign": true, "studioV2App": true},
                    "customActions": [{"name": "flag", "icon": "flag", "color": "#ff0000"}],
                }),
            ),
            title,
        )?;
        recipes.push(id_of(&r));
    }

    // Datasets (empty), one with a driver, each with a recipe.
    for (pid, name, driver, recipe) in [
        (&traffic, "traffic-2024", Some(&drivers[0]), &recipes[0]),
        (&retail, "shelves-raw", None, &recipes[2]),
    ] {
        let mut body = json!({"name": name, "projects": [pid], "createDefaultRecipe": false});
        if let Some(d) = driver {
            body["driver"] = json!(d);
        }
        let d = json_of(st.create_dataset(&admin, &body), name)?;
        json_of(
            st.update_dataset(
                &admin,
                &id_of(&d),
                &json!({"metadata": {"system": {"recipes": [recipe]}}}),
                true,
            ),
            name,
        )?;
    }

    st.reset_counters();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::state::{
        DATASETS, DRIVERS, GROUPS, INTEGRATIONS, MEMBERS, ONTOLOGIES, PROJECTS, RECIPES,
    };
    use super::*;

    #[test]
    fn the_seed_loads_and_counts_nothing() {
        let mut st = State::new(Some(3));
        load(&mut st).unwrap();
        assert_eq!(st.store.total_writes(), 0);
        let t = TEMPLATE_ORG_ID;
        assert_eq!(st.store.in_org(PROJECTS, t).len(), 4);
        assert_eq!(st.store.in_org(PROJECTS, TARGET_ORG_ID).len(), 1);
        assert_eq!(st.store.in_org(GROUPS, t).len(), 3);
        assert_eq!(st.store.in_org(INTEGRATIONS, t).len(), 6);
        assert_eq!(st.store.in_org(DRIVERS, t).len(), 4);
        assert_eq!(st.store.in_org(ONTOLOGIES, t).len(), 3);
        assert_eq!(st.store.in_org(RECIPES, t).len(), 4);
        assert_eq!(st.store.in_org(DATASETS, t).len(), 2);
        assert_eq!(
            st.store.in_org(MEMBERS, t).len(),
            7,
            "six members, one invitation"
        );
        assert_eq!(st.store.in_org(MEMBERS, TARGET_ORG_ID).len(), 1);
        assert!(st.is_active_member(t, USER_EMAIL));
        assert!(st.users[ADMIN_EMAIL].superuser && !st.users[USER_EMAIL].superuser);
    }
}
