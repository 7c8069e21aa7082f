//! The two replicas: started, killed, stopped and continued, and restarted like a kubelet
//! would when they exit by themselves.

use std::process::Stdio;

use super::super::super::operator::free_port;
use super::*;

impl Trial {
    pub(super) fn spawn(&mut self, i: usize) -> Result<(), Failed> {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(fail("opening the log"))?;
        let r = &mut self.replicas[i];
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgops"))
            .args(["run", "--namespace", &self.ns])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--vendor-rate-limit", "200"])
            .args(["--lease-namespace", &self.env.ops])
            .args(["--lease-name", &self.lease])
            .args([
                "--lease-duration-seconds",
                &self.opts.lease_seconds.to_string(),
            ])
            .args(["--allowed-endpoints", "rossum=http://127.0.0.1:*"])
            .env("POD_NAME", &r.identity)
            .env("KUBECONFIG", &self.env.cluster.kubeconfig)
            .env("RUST_LOG", "warn,orgops=info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(fail("starting orgops run"))?;
        let pid = child.id().unwrap_or(0);
        r.child = Some(child);
        r.port = port;
        r.stopped_until = None;
        r.restart_at = None;
        let id = r.identity.clone();
        self.note(format!("start {id} pid {pid}"));
        Ok(())
    }

    pub(super) async fn wait_ready(&mut self) -> Result<(), Failed> {
        let deadline = Instant::now() + Duration::from_secs(30);
        for r in &self.replicas {
            let url = format!("http://127.0.0.1:{}/readyz", r.port);
            loop {
                if let Ok(resp) = reqwest::get(&url).await
                    && resp.status().is_success()
                {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("{} did not become ready", r.identity));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    pub(super) fn signal(pid: u32, sig: &str) {
        let _ = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status();
    }

    pub(super) async fn kill(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        if let Some(mut child) = r.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        r.stopped_until = None;
    }

    /// Continues stopped replicas whose time is up, restarts dead ones whose time is up, and
    /// notices replicas that exited by themselves.
    pub(super) async fn maintain(&mut self) {
        let now = Instant::now();
        for i in 0..self.replicas.len() {
            let r = &mut self.replicas[i];
            if let Some(until) = r.stopped_until
                && until <= now
            {
                if let Some(pid) = r.child.as_ref().and_then(|c| c.id()) {
                    Self::signal(pid, "-CONT");
                }
                r.stopped_until = None;
                let id = r.identity.clone();
                self.note(format!("CONT {id}"));
            }
            let r = &mut self.replicas[i];
            if let Some(child) = r.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                r.child = None;
                r.restart_at = Some(now + Duration::from_millis(500));
                let id = r.identity.clone();
                self.result.chaos.exits += 1;
                self.note(format!("{id} exited by itself: {status}"));
            }
            let r = &self.replicas[i];
            if r.child.is_none()
                && r.restart_at.is_some_and(|t| t <= now)
                && let Err(e) = self.spawn(i)
            {
                self.note(e);
            }
        }
    }

    pub(super) async fn leader(&self) -> Option<usize> {
        let lease = Api::<Lease>::namespaced(self.client.clone(), &self.env.ops)
            .get_opt(&self.lease)
            .await
            .ok()??;
        let holder = lease.spec?.holder_identity?;
        self.replicas.iter().position(|r| r.identity == holder)
    }

    /// A running, not stopped replica (the leader with probability 0.7), and whether it leads.
    pub(super) async fn victim(&mut self) -> Option<(usize, bool)> {
        let alive: Vec<usize> = (0..self.replicas.len())
            .filter(|&i| {
                self.replicas[i].child.is_some() && self.replicas[i].stopped_until.is_none()
            })
            .collect();
        // Mostly one replica at a time, so that the other works through the faults.
        if alive.len() < self.replicas.len() && self.rng.f64() > 0.1 || alive.is_empty() {
            return None;
        }
        let leader = self.leader().await;
        let i = match leader {
            Some(l) if alive.contains(&l) && self.rng.f64() < 0.7 => l,
            _ => alive[self.rng.usize(..alive.len())],
        };
        Some((i, leader == Some(i)))
    }
}
