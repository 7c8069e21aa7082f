//! `crds/` must hold exactly what `orgops crds` generates from the Rust types.
//! Regenerate with `ORGOPS_UPDATE_CRDS=1 cargo test --test crds`.

use std::path::Path;

#[test]
fn crds_directory_matches_generated_yaml() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let update = std::env::var_os("ORGOPS_UPDATE_CRDS").is_some();
    for (file, yaml) in orgops::api::crdgen::crd_files().expect("CRDs serialise") {
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &yaml).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run ORGOPS_UPDATE_CRDS=1 cargo test --test crds",
                path.display()
            )
        });
        assert!(
            on_disk == yaml,
            "{} differs from the generated CRD; run ORGOPS_UPDATE_CRDS=1 cargo test --test crds",
            path.display()
        );
    }
}

#[test]
fn crds_carry_what_kubectl_users_rely_on() {
    let yaml = orgops::api::crdgen::crds_yaml().unwrap();
    for needle in [
        "shortNames:\n    - org\n",
        "shortNames:\n    - orgm\n",
        "- orgops",
        "rule: self == oldSelf",
        "status: {}",
        "jsonPath: .status.progress",
        "jsonPath: .status.conditions[?(@.type==\"Ready\")].status",
        "- Orphan\n",
        "- rossum\n",
    ] {
        assert!(yaml.contains(needle), "generated CRDs lack {needle:?}");
    }
}

#[test]
fn crds_command_prints_the_same_yaml() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orgops"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        orgops::api::crdgen::crds_yaml().unwrap()
    );
}
