//! End to end for Rendered.ai: a real `orgops run` process, the Rendered.ai simulator and an API
//! server (the in-repo one, or `ORGOPS_E2E_KUBECONFIG`), driven with kubectl through the example
//! manifests: an adopted organization gets its rules, limits and the template's volumes,
//! workspaces and graphs (volume files re-pointed at the copies), an invited person becomes
//! Ready once they accept, and deleting the resources leaves the organization at Rendered.ai.

mod support;

use std::collections::BTreeSet;

use orgops::simulator::kit::handle::SimulatorHandle;
use orgops::simulator::renderedai::RenderedAiSimulator;
use orgops::simulator::renderedai::seed::{TARGET_ORG_ID, TARGET_ORG_NAME, TEMPLATE_ORG_ID};
use serde_json::Value;
use support::e2e::{
    apply, cluster_with_operator, connection, drift_passes_write_nothing, example, kubectl_ok, wait,
};

const DANA: &str = "dana@orgops.example";

/// The Rendered.ai example (deploy/examples/renderedai-synthetics.yaml) moved into `ns`,
/// re-synced every second, with a namespaced VendorConnection holding the simulator's API key.
fn manifests(ns: &str, endpoint: &str, api_key: &str) -> String {
    let org = example("renderedai-synthetics.yaml", ns, "renderedai").replace(
        "  deletionPolicy: Orphan",
        "  syncInterval: 1s\n  deletionPolicy: Orphan",
    );
    format!(
        "{}---\n{org}",
        connection(ns, "renderedai", endpoint, "apiKey", api_key)
    )
}

fn names(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(|o| o["name"].as_str().map(str::to_string))
        .collect()
}

fn ids(objects: &[Value], field: &str) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(|o| o[field].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderedai_org_is_adopted_copied_joined_and_released_with_kubectl() {
    let sim = RenderedAiSimulator::start(0, Default::default())
        .await
        .unwrap();
    let (c, ns, op) = cluster_with_operator("renderedai", "rai").await;
    apply(&c, &manifests(&ns, &sim.graphql_url, &sim.api_key)).await;

    // Adopted by its name, with the rules and limits of the spec, limits and usage in status.
    wait(&c, &ns, "org/synthetics", "condition=Ready").await;
    let org: Value = serde_json::from_str(
        &kubectl_ok(&c, &["get", "org", "synthetics", "-n", &ns, "-o", "json"]).await,
    )
    .unwrap();
    assert_eq!(org["status"]["externalId"], TARGET_ORG_ID);
    let at_vendor = sim.objects("organizations", TARGET_ORG_ID).unwrap();
    assert_eq!(at_vendor.len(), 1, "{at_vendor:?}");
    assert_eq!(at_vendor[0]["name"], TARGET_ORG_NAME);
    assert!(
        at_vendor[0]["rules"]
            .as_str()
            .is_some_and(|r| r.starts_with("Generate daytime street scenes only.")),
        "{at_vendor:?}"
    );
    let limits = sim.objects("organization_limits", TARGET_ORG_ID).unwrap();
    let workspaces_limit = limits
        .iter()
        .find(|l| l["setting"] == "Workspaces")
        .unwrap_or_else(|| panic!("{limits:?}"));
    assert_eq!(workspaces_limit["limit"], "8");
    // Usage counts the workspaces the copy made: the target's own and the template's two.
    let usage = &org["status"]["usage"]["limits"]["Workspaces"];
    assert_eq!(
        (&usage["limit"], usage["usage"].as_f64()),
        (&8.into(), Some(3.0)),
        "{org}"
    );

    // The template's volumes and workspaces, by name; the copies' graphs point at the copied
    // volumes, never at the template's.
    let template_volumes = sim.objects("volumes", TEMPLATE_ORG_ID).unwrap();
    let volumes = sim.objects("volumes", TARGET_ORG_ID).unwrap();
    assert!(names(&template_volumes).is_subset(&names(&volumes)));
    let workspaces = sim.objects("workspaces", TARGET_ORG_ID).unwrap();
    assert!(
        names(&sim.objects("workspaces", TEMPLATE_ORG_ID).unwrap()).is_subset(&names(&workspaces))
    );
    let graphs = sim.objects("graphs", TARGET_ORG_ID).unwrap();
    assert!(!graphs.is_empty(), "no graph copied");
    let (ours, theirs) = (
        ids(&volumes, "volumeId"),
        ids(&template_volumes, "volumeId"),
    );
    for graph in &graphs {
        let text = graph["graph"].as_str().unwrap_or_default();
        assert!(
            theirs.iter().all(|id| !text.contains(&format!("{id}:/"))),
            "a copied graph points at the template's volumes: {text}"
        );
        assert!(
            ours.iter().any(|id| text.contains(&format!("{id}:/"))),
            "a copied graph points at none of the copied volumes: {text}"
        );
    }
    // The API key never shows in status or events.
    let events = kubectl_ok(&c, &["get", "events", "-n", &ns, "-o", "json"]).await;
    for text in [&org.to_string(), &events] {
        assert!(!text.contains(&sim.api_key), "the API key leaked");
    }

    // Dana is invited, and Ready once she signs up and accepts.
    wait(
        &c,
        &ns,
        "orgm/dana-in-synthetics",
        "jsonpath={.status.phase}=Invited",
    )
    .await;
    sim.accept_invitation(TARGET_ORG_ID, DANA).unwrap();
    wait(
        &c,
        &ns,
        "orgm/dana-in-synthetics",
        "jsonpath={.status.phase}=Ready",
    )
    .await;
    let dana = sim
        .objects("members", TARGET_ORG_ID)
        .unwrap()
        .into_iter()
        .find(|m| m["email"] == DANA)
        .expect("Dana is a member");
    assert_eq!(dana["role"], "admin");

    // Drift re-checks (every second here) change nothing at the vendor: counted over two full
    // passes, not after a sleep.
    drift_passes_write_nothing(&op, &sim).await;

    // Removing the membership removes Dana; deleting the Organization (Orphan) releases the
    // adopted org, which stays at Rendered.ai with its copies.
    kubectl_ok(
        &c,
        &[
            "delete",
            "orgm",
            "dana-in-synthetics",
            "-n",
            &ns,
            "--timeout=60s",
        ],
    )
    .await;
    assert!(
        !sim.objects("members", TARGET_ORG_ID)
            .unwrap()
            .iter()
            .any(|m| m["email"] == DANA),
        "Dana is still a member"
    );
    kubectl_ok(
        &c,
        &["delete", "org", "synthetics", "-n", &ns, "--timeout=60s"],
    )
    .await;
    assert_eq!(sim.org_ids(TARGET_ORG_NAME), [TARGET_ORG_ID]);
    assert_eq!(
        sim.objects("workspaces", TARGET_ORG_ID).unwrap().len(),
        workspaces.len()
    );
}
