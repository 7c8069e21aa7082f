//! A trial's manifests: Secret and connection, Organizations, OrgMemberships.

use super::*;

impl Trial {
    pub(super) async fn create_next(&mut self) -> Result<(), Failed> {
        let Some((what, i)) = self.pending.pop() else {
            return Ok(());
        };
        let name = match what {
            0 => {
                self.create_connection().await?;
                format!("connection {}", self.connection)
            }
            1 => {
                self.create_org(i).await?;
                self.orgs[i].created = true;
                format!("org {}", self.orgs[i].name)
            }
            _ => {
                self.create_member(i).await?;
                self.members[i].created = true;
                format!("orgm {}", self.members[i].name)
            }
        };
        self.note(format!("create {name}"));
        Ok(())
    }

    pub(super) async fn create_connection(&mut self) -> Result<(), Failed> {
        let pp = PostParams::default();
        let (secret_ns, secret_name) = if self.cluster_connection {
            (self.env.ops.clone(), format!("{}-admin", self.ns))
        } else {
            (self.ns.clone(), "rossum-admin".to_string())
        };
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": secret_name},
            "stringData": {"username": ADMIN, "password": PASSWORD, "createKey": CREATE_KEY}
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), &secret_ns)
            .create(&pp, &secret)
            .await
            .map_err(fail("creating the Secret"))?;
        if self.cluster_connection {
            let c: ClusterVendorConnection = serde_json::from_value(json!({
                "metadata": {"name": self.connection},
                "spec": {"vendor": "rossum", "endpoint": self.sim.base_url, "rateLimit": 200,
                         "allowedNamespaces": [self.ns],
                         "credentialsSecretRef": {"name": secret_name, "namespace": secret_ns}}
            }))
            .unwrap();
            Api::<ClusterVendorConnection>::all(self.client.clone())
                .create(&pp, &c)
                .await
                .map_err(fail("creating the ClusterVendorConnection"))?;
        } else {
            let c: VendorConnection = serde_json::from_value(json!({
                "metadata": {"name": self.connection},
                "spec": {"vendor": "rossum", "endpoint": self.sim.base_url, "rateLimit": 200,
                         "credentialsSecretRef": {"name": secret_name}}
            }))
            .unwrap();
            Api::<VendorConnection>::namespaced(self.client.clone(), &self.ns)
                .create(&pp, &c)
                .await
                .map_err(fail("creating the VendorConnection"))?;
        }
        Ok(())
    }

    pub(super) async fn create_org(&mut self, i: usize) -> Result<(), Failed> {
        let o = &self.orgs[i];
        let kind = if self.cluster_connection {
            "ClusterVendorConnection"
        } else {
            "VendorConnection"
        };
        let mut spec = json!({
            "vendor": "rossum", "displayName": o.names[0],
            "connectionRef": {"kind": kind, "name": self.connection},
            "deletionPolicy": o.policy,
        });
        if o.template {
            spec["template"] = json!({"displayName": TEMPLATE});
        }
        if let Some(email) = &o.first_user {
            spec["settings"] = json!({"rossum": {"firstUser": {"email": email}}});
        }
        let org: Organization = serde_json::from_value(json!({
            "apiVersion": "orgops.io/v1alpha1", "kind": "Organization",
            "metadata": {"name": o.name}, "spec": spec
        }))
        .unwrap();
        Api::<Organization>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &org)
            .await
            .map_err(fail(format!("creating {}", o.name)))?;
        Ok(())
    }

    pub(super) async fn create_member(&mut self, i: usize) -> Result<(), Failed> {
        let m = &self.members[i];
        let member: OrgMembership = serde_json::from_value(json!({
            "apiVersion": "orgops.io/v1alpha1", "kind": "OrgMembership",
            "metadata": {"name": m.name},
            "spec": {"organizationRef": {"name": self.orgs[m.org].name},
                     "user": {"email": m.email, "firstName": "Chaos"},
                     "role": m.role, "deletionPolicy": m.policy}
        }))
        .unwrap();
        Api::<OrgMembership>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &member)
            .await
            .map_err(fail(format!("creating {}", m.name)))?;
        Ok(())
    }
}
