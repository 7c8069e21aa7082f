//! Authentication, as the apiserver does it for bearer tokens: the admin token of generated
//! kubeconfigs, the `enforce_rbac` identity, registered ServiceAccount tokens, and impersonation
//! (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`), which the real user must be
//! allowed to `impersonate`.

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::ADMIN_TOKEN;
use crate::attributes::Attributes;
use crate::rbac::Rbac;
use crate::status::ApiError;
use crate::store::Store;

/// The group whose members may do anything, whatever RBAC says.
pub const MASTERS: &str = "system:masters";
/// The group of every authenticated user.
pub const AUTHENTICATED: &str = "system:authenticated";
const SA_PREFIX: &str = "system:serviceaccount:";

/// Who a request comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// `system:serviceaccount:ns:name`, a user name, …
    pub username: String,
    /// The ServiceAccount's uid, or `""`.
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The admin of generated kubeconfigs: a member of `system:masters`.
    pub fn admin() -> Self {
        Self {
            username: "admin".into(),
            uid: String::new(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
        }
    }

    /// `username` with the groups the apiserver gives it: its ServiceAccount groups if it is a
    /// ServiceAccount, and `system:authenticated`.
    pub fn authenticated(username: &str, uid: &str) -> Self {
        let mut groups = service_account(username)
            .map(|(ns, _)| service_account_groups(ns))
            .unwrap_or_default();
        groups.push(AUTHENTICATED.into());
        Self {
            username: username.into(),
            uid: uid.into(),
            groups,
        }
    }

    /// The `UserInfo` object of TokenReview and SelfSubjectReview.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.username, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        v
    }
}

/// `(namespace, name)` of a ServiceAccount user name.
pub fn service_account(username: &str) -> Option<(&str, &str)> {
    username
        .strip_prefix(SA_PREFIX)?
        .split_once(':')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'))
}

fn service_account_groups(ns: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{ns}"),
    ]
}

/// The tokens the server knows besides the admin token.
#[derive(Debug, Default)]
pub struct Tokens {
    /// The `enforce_rbac` identity.
    pub legacy: Option<Rbac>,
    /// token → (namespace, name) of a ServiceAccount.
    service_accounts: HashMap<String, (String, String)>,
}

impl Tokens {
    /// Requests with `token` authenticate as the ServiceAccount `namespace/name`.
    pub fn add_service_account(&mut self, token: &str, namespace: &str, name: &str) {
        self.service_accounts
            .insert(token.into(), (namespace.into(), name.into()));
    }

    /// The user `token` authenticates as, if any. A ServiceAccount's uid is the stored
    /// object's (the object need not exist).
    pub fn authenticate(&self, token: &str, store: &Store) -> Option<UserInfo> {
        if token == ADMIN_TOKEN {
            return Some(UserInfo::admin());
        }
        if let Some(legacy) = self.legacy.as_ref().filter(|l| l.token() == token) {
            return Some(UserInfo::authenticated(legacy.user(), ""));
        }
        let (ns, name) = self.service_accounts.get(token)?;
        let uid = store
            .find("", "v1", "serviceaccounts")
            .and_then(|rt| store.get(rt, ns, name).ok())
            .and_then(|sa| {
                sa.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        Some(UserInfo::authenticated(
            &format!("{SA_PREFIX}{ns}:{name}"),
            &uid,
        ))
    }

    /// The user of a request: requests without credentials act as the admin (the server is
    /// a test fixture); a bearer token nobody issued is 401.
    pub fn user_of(&self, headers: &HeaderMap, store: &Store) -> Result<UserInfo, ApiError> {
        let Some(authorization) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return Ok(UserInfo::admin());
        };
        authorization
            .strip_prefix("Bearer ")
            .and_then(|t| self.authenticate(t.trim(), store))
            .ok_or_else(ApiError::unauthorized)
    }
}

/// The user a request acts as: `user` itself, or the one it impersonates. Each impersonated
/// name is authorized with `authorize` (verb `impersonate` on `users`, `groups`, `uids` or the
/// ServiceAccount), as the apiserver's impersonation filter does.
pub fn impersonate(
    user: UserInfo,
    headers: &HeaderMap,
    authorize: impl Fn(&UserInfo, &Attributes) -> Result<(), ApiError>,
) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let username = values("impersonate-user").into_iter().next();
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid").into_iter().next();
    let Some(username) = username else {
        if !groups.is_empty() || uid.is_some() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups or uid without impersonating a user",
            ));
        }
        return Ok(user);
    };
    let check = |resource: &str, namespace: &str, name: &str| {
        authorize(
            &user,
            &Attributes::resource("impersonate", "", resource, "", namespace, name),
        )
    };
    match service_account(&username) {
        Some((ns, name)) => check("serviceaccounts", ns, name)?,
        None => check("users", "", &username)?,
    }
    for g in &groups {
        check("groups", "", g)?;
    }
    if let Some(uid) = &uid {
        authorize(
            &user,
            &Attributes::resource("impersonate", "authentication.k8s.io", "uids", "", "", uid),
        )?;
    }
    let mut groups = groups;
    if groups.is_empty()
        && let Some((ns, _)) = service_account(&username)
    {
        groups = service_account_groups(ns);
    }
    if !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    Ok(UserInfo {
        username,
        uid: uid.unwrap_or_default(),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_accounts_get_their_groups() {
        let u = UserInfo::authenticated("system:serviceaccount:ops:orgops", "u1");
        assert_eq!(
            u.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ops",
                "system:authenticated"
            ]
        );
        assert_eq!(
            UserInfo::authenticated("jane", "").groups,
            ["system:authenticated"]
        );
        assert_eq!(service_account("system:serviceaccount:a:b:c"), None);
    }

    #[test]
    fn tokens_nobody_issued_are_unauthorized() {
        let store = Store::new();
        let mut tokens = Tokens::default();
        tokens.add_service_account("sa-token", "ops", "orgops");
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer sa-token".parse().unwrap());
        assert_eq!(
            tokens.user_of(&h, &store).unwrap().username,
            "system:serviceaccount:ops:orgops"
        );
        h.insert("authorization", "Bearer garbage".parse().unwrap());
        assert_eq!(tokens.user_of(&h, &store).unwrap_err().code, 401);
        h.insert(
            "authorization",
            format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
        );
        assert_eq!(tokens.user_of(&h, &store).unwrap(), UserInfo::admin());
    }

    #[test]
    fn impersonation_needs_the_impersonate_verb() {
        let mut h = HeaderMap::new();
        h.insert(
            "impersonate-user",
            "system:serviceaccount:ops:orgops".parse().unwrap(),
        );
        let seen = std::sync::Mutex::new(Vec::new());
        let as_sa = impersonate(UserInfo::admin(), &h, |_, a| {
            seen.lock().unwrap().push(a.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            as_sa,
            UserInfo::authenticated("system:serviceaccount:ops:orgops", "")
        );
        assert_eq!(
            seen.into_inner().unwrap(),
            [Attributes::resource(
                "impersonate",
                "",
                "serviceaccounts",
                "",
                "ops",
                "orgops"
            )]
        );
        let denied = impersonate(UserInfo::authenticated("jane", ""), &h, |_, _| {
            Err(ApiError::forbidden("no"))
        });
        assert_eq!(denied.unwrap_err().code, 403);
    }
}
