//! The chaos: vendor faults, SIGKILL and SIGSTOP of a replica, spec edits, deletions.

use super::*;

impl Trial {
    pub(super) fn set_random_faults(&mut self) {
        let mut parts = Vec::new();
        let kinds = ["5xx", "429", "reset", "slow", "drop"];
        let chosen: Vec<&str> = kinds
            .iter()
            .copied()
            .filter(|k| self.rng.f64() < if *k == "drop" { 0.7 } else { 0.4 })
            .collect();
        let chosen = if chosen.is_empty() {
            vec!["drop"]
        } else {
            chosen
        };
        let total = 0.05 + self.rng.f64() * 0.25;
        for k in &chosen {
            parts.push(format!("{k}={:.3}", total / chosen.len() as f64));
        }
        parts.push(format!("slow_ms={}", self.rng.u64(100..1500)));
        parts.push(format!("seed={}", self.rng.u64(..)));
        let spec = parts.join(",");
        match FaultSpec::parse(&spec) {
            Ok(f) => {
                self.sim.running.set_faults(f);
                self.result.chaos.fault_changes += 1;
                self.note(format!("faults {spec}"));
            }
            Err(e) => self.note(format!("bad fault spec {spec}: {e}")),
        }
    }

    pub(super) fn faults_off(&mut self) {
        self.sim.running.set_faults(FaultSpec::none());
        self.result.chaos.fault_changes += 1;
        self.note("faults off");
    }

    pub(super) async fn act(&mut self) -> Result<(), Failed> {
        let x = self.rng.f64() * 13.0;
        if x < 2.0 {
            if self.rng.f64() < 0.25 {
                self.faults_off();
            } else {
                self.set_random_faults();
            }
        } else if x < 4.0 {
            if let Some((i, leader)) = self.victim().await {
                self.kill(i).await;
                let back = self.rng.u64(100..2500);
                self.replicas[i].restart_at = Some(Instant::now() + Duration::from_millis(back));
                self.result.chaos.kills += 1;
                self.result.chaos.leader_kills += u32::from(leader);
                let id = self.replicas[i].identity.clone();
                self.note(format!(
                    "SIGKILL {id}{}, back in {back} ms",
                    if leader { " (leader)" } else { "" }
                ));
            }
        } else if x < 6.0 {
            if let Some((i, leader)) = self.victim().await {
                let ms = self.rng.u64(300..6000);
                if let Some(pid) = self.replicas[i].child.as_ref().and_then(|c| c.id()) {
                    Self::signal(pid, "-STOP");
                    self.replicas[i].stopped_until =
                        Some(Instant::now() + Duration::from_millis(ms));
                    self.result.chaos.stops += 1;
                    if ms > self.opts.lease_seconds * 1000 {
                        self.result.chaos.long_stops += 1;
                    }
                    let id = self.replicas[i].identity.clone();
                    self.note(format!(
                        "SIGSTOP {id}{} for {ms} ms",
                        if leader { " (leader)" } else { "" }
                    ));
                }
            }
        } else if x < 9.0 {
            self.edit().await?;
        } else if x < 10.5 {
            self.delete_one().await?;
        }
        Ok(())
    }

    pub(super) async fn edit(&mut self) -> Result<(), Failed> {
        if self.rng.f64() < 0.2 {
            let live: Vec<usize> = (0..self.members.len())
                .filter(|&i| self.members[i].created && self.members[i].deleted.is_none())
                .collect();
            if live.is_empty() {
                return Ok(());
            }
            let i = live[self.rng.usize(..live.len())];
            let role = ROLES[self.rng.usize(..ROLES.len())].to_string();
            let api = Api::<OrgMembership>::namespaced(self.client.clone(), &self.ns);
            let patch = json!({"spec": {"role": role}});
            api.patch(
                &self.members[i].name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(fail(format!("editing {}", self.members[i].name)))?;
            self.members[i].role = role.clone();
            self.result.chaos.edits += 1;
            let name = self.members[i].name.clone();
            self.note(format!("edit orgm {name}: role {role}"));
            return Ok(());
        }
        let live: Vec<usize> = (0..self.orgs.len())
            .filter(|&i| self.orgs[i].created && self.orgs[i].deleted.is_none())
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let i = live[self.rng.usize(..live.len())];
        let api = Api::<Organization>::namespaced(self.client.clone(), &self.ns);
        let (patch, what) = if self.rng.f64() < 0.6 {
            let name = format!("Chaos {} org {i} v{}", self.ns, self.orgs[i].names.len());
            self.orgs[i].names.push(name.clone());
            (
                json!({"spec": {"displayName": name}}),
                format!("displayName {name:?}"),
            )
        } else {
            self.orgs[i].suspend = !self.orgs[i].suspend;
            (
                json!({"spec": {"suspend": self.orgs[i].suspend}}),
                format!("suspend {}", self.orgs[i].suspend),
            )
        };
        api.patch(
            &self.orgs[i].name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(fail(format!("editing {}", self.orgs[i].name)))?;
        self.result.chaos.edits += 1;
        let name = self.orgs[i].name.clone();
        self.note(format!("edit org {name}: {what}"));
        Ok(())
    }

    pub(super) async fn delete_one(&mut self) -> Result<(), Failed> {
        self.seq += 1;
        let seq = self.seq;
        let dp = DeleteParams::default();
        if self.rng.f64() < 0.4 {
            let live: Vec<usize> = (0..self.orgs.len())
                .filter(|&i| self.orgs[i].created && self.orgs[i].deleted.is_none())
                .collect();
            // Keep at least one Organization.
            if live.len() < 2 {
                return Ok(());
            }
            let i = live[self.rng.usize(..live.len())];
            Api::<Organization>::namespaced(self.client.clone(), &self.ns)
                .delete(&self.orgs[i].name, &dp)
                .await
                .map_err(fail(format!("deleting {}", self.orgs[i].name)))?;
            self.orgs[i].deleted = Some(seq);
            let (name, policy) = (self.orgs[i].name.clone(), self.orgs[i].policy);
            self.note(format!("delete org {name} ({policy})"));
        } else {
            let live: Vec<usize> = (0..self.members.len())
                .filter(|&i| self.members[i].created && self.members[i].deleted.is_none())
                .collect();
            if live.is_empty() {
                return Ok(());
            }
            let i = live[self.rng.usize(..live.len())];
            Api::<OrgMembership>::namespaced(self.client.clone(), &self.ns)
                .delete(&self.members[i].name, &dp)
                .await
                .map_err(fail(format!("deleting {}", self.members[i].name)))?;
            self.members[i].deleted = Some(seq);
            let (name, policy) = (self.members[i].name.clone(), self.members[i].policy);
            self.note(format!("delete orgm {name} ({policy})"));
        }
        self.result.chaos.deletions += 1;
        Ok(())
    }
}
