//! The pace of a logging window: optimizer steps and samples since it started, in this session
//! (a resumed run's window starts again at the resume), for the throughput metrics both the
//! supervised trainer and the job runtime report.

use std::time::Instant;

/// Counts steps and samples since the window started.
#[derive(Debug, Clone)]
pub struct Throughput {
    started: Instant,
    steps: usize,
    samples: u64,
}

impl Default for Throughput {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            steps: 0,
            samples: 0,
        }
    }
}

/// A finished window's pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Seconds the window lasted.
    pub seconds: f64,
    /// Optimizer steps in it.
    pub steps: usize,
    /// Items trained on in it.
    pub samples: u64,
}

impl Pace {
    /// Steps per second, when the window had steps and time.
    pub fn steps_per_second(&self) -> Option<f64> {
        (self.seconds > 0.0 && self.steps > 0).then(|| self.steps as f64 / self.seconds)
    }

    /// Items per second, when the window had steps and time.
    pub fn samples_per_second(&self) -> Option<f64> {
        (self.seconds > 0.0 && self.steps > 0).then(|| self.samples as f64 / self.seconds)
    }
}

impl Throughput {
    /// Counts one optimizer step.
    pub fn step(&mut self) {
        self.steps += 1;
    }

    /// Counts `samples` items trained on.
    pub fn samples(&mut self, samples: u64) {
        self.samples += samples;
    }

    /// Ends the window and starts the next one now.
    pub fn take(&mut self) -> Pace {
        let pace = Pace {
            seconds: self.started.elapsed().as_secs_f64(),
            steps: self.steps,
            samples: self.samples,
        };
        *self = Self::default();
        pace
    }

    /// Starts the window again now, forgetting what it counted.
    pub fn restart(&mut self) {
        *self = Self::default();
    }
}
