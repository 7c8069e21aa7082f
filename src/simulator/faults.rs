//! Fault injection for simulators: a fraction of requests fail in the ways real SaaS APIs do.

use std::sync::Mutex;
use std::time::Duration;

/// One injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `503` before the request is processed.
    ServerError,
    /// `429` with `Retry-After` before the request is processed.
    Throttle,
    /// The connection closes before the request is processed.
    Reset,
    /// The request is processed after an extra delay.
    Slow,
    /// The request is processed, then the connection closes without a response.
    DropResponse,
}

/// Probabilities per fault, parsed from `5xx=0.05,429=0.05,reset=0.05,slow=0.05,drop=0.05`
/// (optionally `seed=N`), or a single number split evenly across all five.
#[derive(Debug)]
pub struct FaultSpec {
    /// `(fault, probability)` pairs.
    pub rates: Vec<(Fault, f64)>,
    /// Extra delay of [`Fault::Slow`].
    pub slow_delay: Duration,
    rng: Mutex<fastrand::Rng>,
}

impl Default for FaultSpec {
    fn default() -> Self {
        Self {
            rates: Vec::new(),
            slow_delay: Duration::from_millis(800),
            rng: Mutex::new(fastrand::Rng::with_seed(1)),
        }
    }
}

impl FaultSpec {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a spec; errors name the bad entry.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut out = Self::default();
        let spec = spec.trim();
        if spec.is_empty() {
            return Ok(out);
        }
        if let Ok(p) = spec.parse::<f64>() {
            check_probability("faults", p)?;
            for f in ALL {
                out.rates.push((f, p / ALL.len() as f64));
            }
            return Ok(out);
        }
        for part in spec.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("fault entry {part:?} is not key=value"))?;
            let key = key.trim();
            if key == "seed" {
                let seed: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("seed {value:?} is not a number"))?;
                out.rng = Mutex::new(fastrand::Rng::with_seed(seed));
                continue;
            }
            if key == "slow_ms" {
                let ms: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("slow_ms {value:?} is not a number"))?;
                out.slow_delay = Duration::from_millis(ms);
                continue;
            }
            let fault = match key {
                "5xx" | "500" | "503" | "error" => Fault::ServerError,
                "429" | "throttle" => Fault::Throttle,
                "reset" => Fault::Reset,
                "slow" => Fault::Slow,
                "drop" => Fault::DropResponse,
                other => {
                    return Err(format!(
                        "unknown fault {other:?}; use 5xx, 429, reset, slow, drop, seed, slow_ms"
                    ));
                }
            };
            let p: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("probability {value:?} of {key} is not a number"))?;
            check_probability(key, p)?;
            out.rates.push((fault, p));
        }
        let total: f64 = out.rates.iter().map(|(_, p)| p).sum();
        if total > 1.0 {
            return Err(format!(
                "fault probabilities add up to {total}, more than 1"
            ));
        }
        Ok(out)
    }

    /// Draws the fault for one request, if any.
    pub fn pick(&self) -> Option<Fault> {
        if self.rates.is_empty() {
            return None;
        }
        let x = self.rng.lock().map(|mut r| r.f64()).unwrap_or(1.0);
        let mut acc = 0.0;
        for (fault, p) in &self.rates {
            acc += p;
            if x < acc {
                return Some(*fault);
            }
        }
        None
    }

    /// Sum of all probabilities.
    pub fn total(&self) -> f64 {
        self.rates.iter().map(|(_, p)| p).sum()
    }
}

const ALL: [Fault; 5] = [
    Fault::ServerError,
    Fault::Throttle,
    Fault::Reset,
    Fault::Slow,
    Fault::DropResponse,
];

fn check_probability(key: &str, p: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!(
            "probability of {key} must be between 0 and 1, got {p}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_and_even_specs() {
        let s = FaultSpec::parse("5xx=0.1,drop=0.2,seed=7").unwrap();
        assert_eq!(
            s.rates,
            vec![(Fault::ServerError, 0.1), (Fault::DropResponse, 0.2)]
        );
        let even = FaultSpec::parse("0.25").unwrap();
        assert_eq!(even.rates.len(), 5);
        assert!((even.total() - 0.25).abs() < 1e-9);
        assert!(FaultSpec::parse("bogus=0.1").unwrap_err().contains("bogus"));
        assert!(FaultSpec::parse("5xx=2").is_err());
        assert!(FaultSpec::parse("5xx=0.6,drop=0.6").is_err());
    }

    #[test]
    fn pick_follows_the_rates() {
        let s = FaultSpec::parse("drop=0.3,seed=3").unwrap();
        let n = (0..10_000)
            .filter(|_| s.pick() == Some(Fault::DropResponse))
            .count();
        assert!((2_700..3_300).contains(&n), "{n}");
        assert_eq!(FaultSpec::none().pick(), None);
    }
}
