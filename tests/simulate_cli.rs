//! `orgops simulate --vendor V`: the printed contract scripts rely on (a first line
//! `<Vendor> simulator listening on <base URL>`, then `name: value` lines with the test
//! credentials and seeded org ids), for each vendor, and the error for an unknown vendor.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `orgops simulate` with `args` and reads its printed lines until `last` appears.
async fn simulate(args: &[&str], last: &str) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orgops"))
        .arg("simulate")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("orgops starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("readable stdout") {
            let done = line.starts_with(last);
            seen.push(line);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the simulator prints its lines");
    (child, seen)
}

/// `name: value` pairs of every line after the first.
fn pairs(lines: &[String]) -> Vec<(String, String)> {
    lines[1..]
        .iter()
        .map(|l| {
            let (k, v) = l
                .split_once(": ")
                .unwrap_or_else(|| panic!("not `name: value`: {l:?}"));
            assert!(!k.starts_with(' ') && !v.is_empty(), "{l:?}");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn value<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name:?} line"))
}

#[tokio::test]
async fn openlattice_prints_its_url_tokens_and_template_org_and_they_work() {
    let (mut child, lines) = simulate(
        &["--vendor", "openlattice", "--port", "0"],
        "template org name:",
    )
    .await;
    let url = lines[0]
        .strip_prefix("OpenLattice simulator listening on ")
        .unwrap_or_else(|| panic!("first line: {:?}", lines[0]));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let p = pairs(&lines);
    let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "admin token",
            "admin subject",
            "user token",
            "user subject",
            "template org id",
            "template org name"
        ]
    );
    let org = value(&p, "template org id");
    let http = reqwest::Client::new();
    let get = |token: &str| {
        http.get(format!("{url}/datastore/organizations/{org}"))
            .bearer_auth(token)
            .send()
    };
    let admin = get(value(&p, "admin token")).await.unwrap();
    assert_eq!(admin.status().as_u16(), 200);
    let body: serde_json::Value = admin.json().await.unwrap();
    assert_eq!(body["title"], "Template org");
    assert_eq!(
        get(value(&p, "user token"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    child.kill().await.ok();
}

#[tokio::test]
async fn dataloop_prints_its_api_base_credentials_and_orgs_and_they_work() {
    let (mut child, lines) = simulate(
        &[
            "--vendor",
            "dataloop",
            "--port",
            "0",
            "--token-lifetime",
            "600",
        ],
        "target org name:",
    )
    .await;
    let url = lines[0]
        .strip_prefix("Dataloop simulator listening on ")
        .unwrap_or_else(|| panic!("first line: {:?}", lines[0]));
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/api/v1"),
        "{url}"
    );
    let p = pairs(&lines);
    let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "gate url",
            "admin token",
            "admin api key",
            "admin email",
            "admin password",
            "user token",
            "user email",
            "user password",
            "template org id",
            "template org name",
            "target org id",
            "target org name"
        ]
    );
    assert_eq!(format!("{}/api/v1", value(&p, "gate url")), url);
    let http = reqwest::Client::new();
    let get =
        |path: String, token: String| http.get(format!("{url}{path}")).bearer_auth(token).send();
    let template = value(&p, "template org id");
    let target = value(&p, "target org id");
    for token in ["admin token", "admin api key"] {
        let r = get(format!("/orgs/{target}"), value(&p, token).to_string())
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{token}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["name"], value(&p, "target org name"));
    }
    // The token lifetime applies to the printed tokens.
    let claims = orgops::simulator::kit::auth::jwt_claims(value(&p, "admin token")).unwrap();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    let r = get(
        format!("/orgs/{template}"),
        value(&p, "user token").to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The admin's e-mail and password log in the way dtlpy's login_m2m does.
    let login = http
        .post(format!("{}/token?default", value(&p, "gate url")))
        .json(&serde_json::json!({
            "username": value(&p, "admin email"),
            "password": value(&p, "admin password"),
            "type": "user_credentials",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    let body: serde_json::Value = login.json().await.unwrap();
    let id_token = body["id_token"].as_str().unwrap().to_string();
    assert_eq!(
        get("/users/me".into(), id_token)
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    child.kill().await.ok();
}

#[tokio::test]
async fn renderedai_prints_its_endpoint_credentials_and_orgs_and_they_work() {
    let (mut child, lines) = simulate(
        &["--vendor", "renderedai", "--port", "0", "--no-limits"],
        "target org name:",
    )
    .await;
    let url = lines[0]
        .strip_prefix("Rendered.ai simulator listening on ")
        .unwrap_or_else(|| panic!("first line: {:?}", lines[0]));
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/graphql"),
        "{url}"
    );
    let p = pairs(&lines);
    let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "status url",
            "api key",
            "org api key",
            "workspace api key",
            "admin email",
            "admin password",
            "member email",
            "member password",
            "template org id",
            "template org name",
            "target org id",
            "target org name"
        ]
    );
    let http = reqwest::Client::new();
    let query = |key: String, q: &'static str| {
        http.post(url)
            .header("apikey", key)
            .json(&serde_json::json!({ "query": q }))
            .send()
    };
    let body: serde_json::Value = query(
        value(&p, "api key").to_string(),
        "{ getOrganizations { organizationId name } }",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let orgs = body["data"]["getOrganizations"].as_array().unwrap();
    for (id, name) in [
        ("template org id", "template org name"),
        ("target org id", "target org name"),
    ] {
        assert!(
            orgs.iter()
                .any(|o| o["organizationId"] == value(&p, id) && o["name"] == value(&p, name)),
            "{body}"
        );
    }
    // --no-limits: the 3.3.4 limits operations are not served.
    let body: serde_json::Value = query(
        value(&p, "org api key").to_string(),
        "{ getOrganizationLimits { limit } }",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        body["errors"][0]["message"],
        "Cannot query field \"getOrganizationLimits\" on type \"Query\"."
    );
    child.kill().await.ok();
}

#[tokio::test]
async fn rossum_keeps_its_first_line_and_prints_name_value_lines() {
    let (mut child, lines) =
        simulate(&["--vendor", "rossum", "--port", "0"], "template org id:").await;
    assert!(
        lines[0].starts_with("Rossum simulator listening on http://127.0.0.1:"),
        "{:?}",
        lines[0]
    );
    let p = pairs(&lines);
    assert_eq!(value(&p, "template org"), "Template org");
    assert!(value(&p, "template org id").parse::<u64>().is_ok());
    assert_eq!(value(&p, "admin username"), "admin@orgops.example");
    child.kill().await.ok();
}

#[tokio::test]
async fn an_unknown_vendor_is_an_error_naming_the_valid_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_orgops"))
        .args(["simulate", "--vendor", "nope", "--port", "0"])
        .output()
        .await
        .expect("orgops runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope") && err.contains("rossum, openlattice, dataloop"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = Command::new(env!("CARGO_BIN_EXE_orgops"))
        .args([
            "simulate",
            "--vendor",
            "openlattice",
            "--scale",
            "3",
            "--port",
            "0",
        ])
        .output()
        .await
        .expect("orgops runs");
    assert!(!out.status.success(), "--scale is Rossum's");

    let out = Command::new(env!("CARGO_BIN_EXE_orgops"))
        .args([
            "simulate",
            "--vendor",
            "rossum",
            "--token-lifetime",
            "5",
            "--port",
            "0",
        ])
        .output()
        .await
        .expect("orgops runs");
    assert!(!out.status.success(), "--token-lifetime is Dataloop's");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-lifetime"));
}
