//! The built-in seed: users, a "Rendered.ai" content org that shares its channels with every
//! org, a template org to copy from and a target org to adopt, made through the same
//! operations (and so the same shapes) as API calls.
//!
//! The template org has organization rules; three volumes with tags; a private channel; two
//! workspaces (name, description, objective, tags) that reference the shared channels and the
//! template's volumes; files in the first two volumes ([`VOLUME_FILES`], nested keys,
//! deterministic bytes, one larger than a part); graphs whose JSON holds `"<volumeId>:/path"` values nested in node
//! values; workspace rules; a GAN model, an annotation map and a service; members of both
//! roles and a pending invitation; organization and workspace limits. The target org has its
//! admin and one workspace (the SDK needs one per key, design doc §1.4).

use serde_json::{Map, Value, json};

use super::state::{
    ANNOTATION_MAPS, CHANNELS, Caller, GAN_MODELS, INVITATIONS, ORG_SETTINGS, ORGS, SERVICES,
    Scope, State, WORKSPACE_SETTINGS, WORKSPACES, now_iso,
};

/// The seeded admin: `admin` of the template and target orgs.
pub const ADMIN_EMAIL: &str = "admin@sim.rendered.ai";
/// The admin's password (`signIn`).
pub const ADMIN_PASSWORD: &str = "sim-password";
/// The admin's user-scoped API key (no expiry).
pub const API_KEY: &str = "sim-api-key";
/// The admin's API key scoped to the template org (expires in 2099; 3.3.4 needs an expiry).
pub const ORG_API_KEY: &str = "sim-org-api-key";
/// The admin's API key scoped to the target org's workspace (expires in 2099).
pub const WORKSPACE_API_KEY: &str = "sim-workspace-api-key";
/// Expiry of the scoped keys.
pub const SCOPED_KEY_EXPIRY: &str = "2099-12-31T23:59:59.000Z";
/// The second user: a `member` of the template org.
pub const MEMBER_EMAIL: &str = "member@sim.rendered.ai";
/// The second user's password.
pub const MEMBER_PASSWORD: &str = "sim-member-password";
/// A third user, a `member` of the template org, who never signs in.
pub const ANALYST_EMAIL: &str = "analyst@sim.rendered.ai";
/// The address of the template org's pending invitation.
pub const INVITED_EMAIL: &str = "invited@sim.rendered.ai";
/// The content org that owns the shared channels.
pub const CONTENT_ORG_ID: &str = "0c0ffee0-5eed-4d1e-8a11-000000000001";
/// The content org's name.
pub const CONTENT_ORG_NAME: &str = "Rendered.ai";
/// The template org's id.
pub const TEMPLATE_ORG_ID: &str = "7e3b1c2a-94d5-4f0e-b8a6-2d9c41e0f5a7";
/// The template org's name.
pub const TEMPLATE_ORG_NAME: &str = "Template Org";
/// The target org's id.
pub const TARGET_ORG_ID: &str = "c5a8e2f1-3b7d-4c96-9e0a-6f1d2b8c4e53";
/// The target org's name.
pub const TARGET_ORG_NAME: &str = "Target Org";
/// Names of the shared channels (owned by the content org, visible to every org).
pub const SHARED_CHANNELS: &[&str] = &["example", "toybox"];
/// The template org's rules.
pub const TEMPLATE_RULES: &str =
    "Label every vehicle by make and model.\nNever render identifiable faces.";
/// The first template workspace's rules.
pub const WORKSPACE_RULES: &str = "Use the street backgrounds for daytime scenes only.";

/// Organization limits of the template org (setting, limit); the target's are half.
/// Files seeded in the template's volumes: (volume index: 0 Backgrounds, 1 Vehicle models;
/// key; size in bytes). The bytes are [`file_bytes`] of the key.
pub const VOLUME_FILES: &[(usize, &str, usize)] = &[
    (0, "backgrounds/street/day.png", 2_048),
    (0, "backgrounds/street/night.png", 1_500),
    (0, "backgrounds/sky/clear.jpg", 777),
    (0, "README.txt", 64),
    // Larger than the simulator's part size: uploaded in three parts.
    (1, "models/cars/sedan.blend", 150_000),
];

/// The deterministic content of seeded file `key`, `size` bytes long.
pub fn file_bytes(key: &str, size: usize) -> Vec<u8> {
    let mut x: u64 = key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..size)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

const ORG_LIMITS: &[(&str, i64)] = &[
    ("Compute Time", 1000),
    ("Dataset Storage", 500),
    ("Instances", 4),
    ("Managed Channels", 5),
    ("Managed Volumes", 20),
    ("Members", 25),
    ("Volume Storage", 1000),
    ("Workspaces", 10),
];

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn id(v: Result<Value, super::error::GqlError>, what: &str) -> Result<String, String> {
    match v {
        Ok(Value::String(s)) => Ok(s),
        Ok(other) => Err(format!("seeding {what}: unexpected {other}")),
        Err(e) => Err(format!("seeding {what}: {}", e.message)),
    }
}

fn create_org(st: &mut State, org: &str, name: &str, rules: &str) -> Result<(), String> {
    st.store
        .create_uncounted(
            ORGS,
            Some(org.to_string()),
            org,
            json!({
                "organizationId": org, "name": name, "expired": false,
                "expirationDate": "2099-12-31T23:59:59.000Z", "rules": rules,
            }),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn channel(st: &mut State, org: &str, name: &str, shared: bool) -> Result<String, String> {
    let id = st.store.new_id();
    let now = now_iso();
    st.store
        .create_uncounted(
            CHANNELS,
            Some(id.clone()),
            org,
            json!({
                "channelId": id, "name": name,
                "description": format!("The {name} channel."),
                "organizationId": org, "volumes": [], "instance": "p2.xlarge", "timeout": 120,
                "interfaceVersion": 1, "status": "deployed", "preview": true,
                "createdAt": now, "createdBy": "support@rendered.ai", "updatedAt": now,
                "updatedBy": "support@rendered.ai", "shared": shared,
            }),
        )
        .map_err(|e| e.to_string())?;
    Ok(id)
}

fn owned(st: &mut State, kind: &str, id_key: &str, org: &str, fields: Value) -> Result<(), String> {
    let id = st.store.new_id();
    let now = now_iso();
    let mut v = json!({
        id_key: id, "organizationId": org, "tags": [],
        "createdAt": now, "createdBy": ADMIN_EMAIL, "updatedAt": now, "updatedBy": ADMIN_EMAIL,
    });
    if let (Some(m), Some(f)) = (v.as_object_mut(), fields.as_object()) {
        m.extend(f.clone());
    }
    st.store
        .create_uncounted(kind, Some(id), org, v)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A graph in the shape channels use: nodes whose values reference volume files as
/// `"<volumeId>:/path"`, some nested in lists and objects.
pub fn graph_json(background: &str, models: &str) -> String {
    json!({
        "version": 2,
        "nodes": {
            "Background": {
                "name": "Background", "nodeClass": "VolumeFile",
                "location": {"x": 10, "y": 20},
                "values": {"File": format!("{background}:/backgrounds/street.png")},
            },
            "Vehicles": {
                "name": "Vehicles", "nodeClass": "VolumeDirectory",
                "location": {"x": 200, "y": 20},
                "values": {
                    "Directory": format!("{models}:/cars/"),
                    "Extras": {"files": [format!("{models}:/trucks/truck.blend"), format!("{background}:/sky/dusk.hdr")]},
                },
            },
            "Render": {
                "name": "Render", "nodeClass": "Render",
                "location": {"x": 400, "y": 20},
                "values": {"Width": 1024, "Height": 768},
                "links": {"Objects": [{"sourceNode": "Vehicles", "outputPort": "Files"}]},
            },
        },
    })
    .to_string()
}

/// Loads the seed into an empty state; the counters are zero afterwards.
pub fn load(st: &mut State) -> Result<(), String> {
    let admin_id = st.add_user(ADMIN_EMAIL, "Sim Admin", Some(ADMIN_PASSWORD));
    st.add_user(MEMBER_EMAIL, "Sim Member", Some(MEMBER_PASSWORD));
    st.add_user(ANALYST_EMAIL, "Ana Analyst", None);
    let admin = Caller {
        user_id: admin_id,
        email: ADMIN_EMAIL.into(),
        scope: Scope::User,
        session: true,
    };
    create_org(st, CONTENT_ORG_ID, CONTENT_ORG_NAME, "")?;
    create_org(st, TEMPLATE_ORG_ID, TEMPLATE_ORG_NAME, TEMPLATE_RULES)?;
    create_org(st, TARGET_ORG_ID, TARGET_ORG_NAME, "")?;
    st.join_org(TEMPLATE_ORG_ID, ADMIN_EMAIL, "admin")?;
    st.join_org(TARGET_ORG_ID, ADMIN_EMAIL, "admin")?;
    st.join_org(TEMPLATE_ORG_ID, MEMBER_EMAIL, "member")?;
    st.join_org(TEMPLATE_ORG_ID, ANALYST_EMAIL, "member")?;
    let now = now_iso();
    let inv = st.store.new_id();
    st.store
        .create_uncounted(
            INVITATIONS,
            Some(inv.clone()),
            TEMPLATE_ORG_ID,
            json!({
                "invitationId": inv, "email": INVITED_EMAIL, "organizationId": TEMPLATE_ORG_ID,
                "workspaceId": null, "role": "member", "timestamp": now, "createdAt": now,
                "updatedAt": now,
            }),
        )
        .map_err(|e| e.to_string())?;

    let mut shared = Vec::new();
    for name in SHARED_CHANNELS {
        shared.push(channel(st, CONTENT_ORG_ID, name, true)?);
    }
    channel(st, TEMPLATE_ORG_ID, "template-private-channel", false)?;

    let t = TEMPLATE_ORG_ID;
    let mut volumes = Vec::new();
    for (name, description, tags) in [
        (
            "Backgrounds",
            "Street and sky backgrounds.",
            json!(["images", "backgrounds"]),
        ),
        (
            "Vehicle models",
            "Blender models of cars and trucks.",
            json!(["3d", "vehicles"]),
        ),
        ("Textures", "Surface textures.", json!([])),
    ] {
        volumes.push(id(
            st.create_volume(
                &admin,
                &args(
                    json!({"organizationId": t, "name": name, "description": description,
                             "permission": "write", "tags": tags}),
                ),
            ),
            name,
        )?);
    }
    for (volume, key, size) in VOLUME_FILES {
        st.put_volume_file(&volumes[*volume], key, &file_bytes(key, *size))?;
    }
    owned(
        st,
        GAN_MODELS,
        "modelId",
        t,
        json!({
            "name": "Day to dusk", "description": "Shifts daytime renders to dusk.", "flags": "--steps 50",
        }),
    )?;
    owned(
        st,
        ANNOTATION_MAPS,
        "mapId",
        t,
        json!({
            "name": "Vehicle classes", "description": "Maps object types to COCO classes.",
        }),
    )?;
    owned(
        st,
        SERVICES,
        "serviceId",
        t,
        json!({
            "name": "Caption writer", "sanitizedName": "caption-writer", "description": "Writes captions.",
            "type": "llm", "volumes": [], "instance": "t3.medium", "version": "1", "state": "ready",
            "serviceType": "agent", "persistentServiceId": null, "parentServiceId": null, "url": null,
        }),
    )?;

    let ws1 = id(
        st.create_workspace(
            &admin,
            &args(json!({
                "organizationId": t, "name": "Vehicle detection",
                "description": "Synthetic street scenes for vehicle detectors.",
                "objective": "Detect cars and trucks at dusk.", "tags": ["vehicles", "detection"],
                "channelIds": [shared[0]], "volumeIds": [volumes[0], volumes[1]], "code": "",
            })),
        ),
        "workspace 1",
    )?;
    let ws2 = id(
        st.create_workspace(
            &admin,
            &args(json!({
                "organizationId": t, "name": "Texture study",
                "description": "How textures change detector recall.",
                "objective": "Measure texture sensitivity.", "tags": ["research"],
                "channelIds": [shared[0], shared[1]], "volumeIds": [volumes[2]], "code": "",
            })),
        ),
        "workspace 2",
    )?;
    for (ws, name, graph, staged) in [
        (
            &ws1,
            "Dusk vehicles",
            graph_json(&volumes[0], &volumes[1]),
            false,
        ),
        (
            &ws1,
            "Dusk vehicles (staged)",
            graph_json(&volumes[0], &volumes[1]),
            true,
        ),
        (
            &ws2,
            "Textured boxes",
            graph_json(&volumes[2], &volumes[2]),
            false,
        ),
    ] {
        id(
            st.create_graph(
                &admin,
                &args(json!({
                    "workspaceId": ws, "channelId": shared[0], "graph": graph, "name": name,
                    "description": format!("{name}, as the template renders it."),
                    "staged": staged, "tags": ["template"],
                })),
            ),
            name,
        )?;
    }
    st.store
        .update_uncounted(WORKSPACES, &ws1, |v| v["rules"] = json!(WORKSPACE_RULES))
        .map_err(|e| e.to_string())?;
    let ids_of = |st: &State, kind: &str| -> Vec<String> {
        st.store
            .in_org(kind, t)
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect()
    };
    let (gans, maps, services) = (
        ids_of(st, GAN_MODELS),
        ids_of(st, ANNOTATION_MAPS),
        ids_of(st, SERVICES),
    );
    st.store
        .update_uncounted(WORKSPACES, &ws1, |v| {
            v["ganIds"] = json!(gans);
            v["mapIds"] = json!(maps);
            v["serviceIds"] = json!(services);
        })
        .map_err(|e| e.to_string())?;

    let target_ws = id(
        st.create_workspace(
            &admin,
            &args(json!({
                "organizationId": TARGET_ORG_ID, "name": "Default workspace",
                "description": "Made at sign-up.", "objective": "", "tags": [],
                "channelIds": [shared[0]], "volumeIds": [], "code": "",
            })),
        ),
        "target workspace",
    )?;

    for (setting, limit) in ORG_LIMITS {
        debug_assert!(ORG_SETTINGS.contains(setting));
        st.put_org_limit(TEMPLATE_ORG_ID, setting, *limit, false);
        st.put_org_limit(TARGET_ORG_ID, setting, (*limit / 2).max(1), false);
    }
    for ws in [&ws1, &ws2, &target_ws] {
        for (setting, limit) in WORKSPACE_SETTINGS.iter().zip([50, 20, 10]) {
            st.put_workspace_limit(ws, setting, limit, false);
        }
    }

    st.issue_api_key(
        ADMIN_EMAIL,
        "sim-user-key",
        Scope::User,
        None,
        Some(API_KEY),
        false,
    )?;
    st.issue_api_key(
        ADMIN_EMAIL,
        "sim-org-key",
        Scope::Organization(TEMPLATE_ORG_ID.into()),
        Some(SCOPED_KEY_EXPIRY),
        Some(ORG_API_KEY),
        false,
    )?;
    st.issue_api_key(
        ADMIN_EMAIL,
        "sim-workspace-key",
        Scope::Workspace(target_ws),
        Some(SCOPED_KEY_EXPIRY),
        Some(WORKSPACE_API_KEY),
        false,
    )?;
    st.store.reset_counters();
    Ok(())
}
