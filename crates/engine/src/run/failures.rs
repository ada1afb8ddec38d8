//! The failed rows of a run, grouped by step and message with a few sample profile ids each: what the
//! run's record shows.

use chrono::Utc;
use sluice_store::{RunErrorGroup, MAX_SAMPLES};

/// Failures grouped by step and message, with a few sample profile ids each.
#[derive(Default)]
pub(crate) struct ErrorLog {
    pub groups: Vec<RunErrorGroup>,
}

/// Distinct messages kept per run; past it, failures are counted under one catch-all group.
const MAX_GROUPS: usize = 100;

impl ErrorLog {
    pub fn add(&mut self, step: &str, message: String, profile_id: &str) {
        let now = Utc::now();
        let idx = match self
            .groups
            .iter()
            .position(|g| g.step == step && g.message == message)
        {
            Some(i) => i,
            None if self.groups.len() < MAX_GROUPS => {
                self.groups.push(RunErrorGroup {
                    step: step.into(),
                    message,
                    count: 0,
                    sample_profiles: Vec::new(),
                    last_seen: now,
                });
                self.groups.len() - 1
            }
            None => {
                let other = "other errors (too many distinct messages to list)";
                match self.groups.iter().position(|g| g.message == other) {
                    Some(i) => i,
                    None => {
                        self.groups.push(RunErrorGroup {
                            step: step.into(),
                            message: other.into(),
                            count: 0,
                            sample_profiles: Vec::new(),
                            last_seen: now,
                        });
                        self.groups.len() - 1
                    }
                }
            }
        };
        let g = &mut self.groups[idx];
        g.count += 1;
        g.last_seen = now;
        if g.sample_profiles.len() < MAX_SAMPLES {
            g.sample_profiles.push(profile_id.to_string());
        }
    }
}
