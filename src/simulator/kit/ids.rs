//! UUID-shaped ids.
//!
//! orgops has no `uuid` dependency; a simulator only needs ids that look and compare like the
//! vendor's (RFC 4122 version 4 text form), which a seeded PRNG provides. They are not meant to
//! be unguessable.

/// A random version-4 UUID in its lower-case text form, e.g.
/// `0f8fad5b-d9cb-469f-a165-70867728950e`.
pub fn uuid_v4(rng: &mut fastrand::Rng) -> String {
    let mut b: [u8; 16] = rng.u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `s` is a UUID in text form (8-4-4-4-12 hex digits, any case, any version), the
/// check Java's `UUID.fromString` and the vendors' SDKs make.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_ids_are_uuids_with_version_and_variant() {
        let mut rng = fastrand::Rng::with_seed(7);
        let a = uuid_v4(&mut rng);
        let b = uuid_v4(&mut rng);
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert!(is_uuid(id), "{id}");
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    #[test]
    fn is_uuid_rejects_other_shapes() {
        assert!(is_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
        for bad in [
            "",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5bd9cb469fa16570867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950g",
            "0f8fad5b-d9cb-469f-a165-70867728950e-",
            "../../etc/passwd",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
    }
}
