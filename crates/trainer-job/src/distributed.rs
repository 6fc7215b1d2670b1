//! A job's `distributed` section: the job as one node of a data-parallel run over several
//! machines (one process per node, burn-collective's orchestrator between them).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use trainer_core::parallel::NodeConfig;

use crate::error::{JobError, Result};
use crate::spec::{Isolation, JobSpec};

/// Where this job stands among the nodes of a data-parallel run, and how it reaches them.
/// Every node runs the same spec but for `node_rank` and `node_address` (and its own run
/// folder); see `docs/job.md`, "Distributed".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributedSpec {
    /// Nodes in the run.
    pub nodes: usize,
    /// This node's place, from 0.
    pub node_rank: usize,
    /// The orchestrator (`trainer orchestrator --port P`): `ws://HOST:P`.
    pub orchestrator: String,
    /// Where the other nodes reach this one: `ws://HOST:PORT` (it listens on `PORT`).
    pub node_address: String,
    /// Seconds to wait for the other nodes (registering, each collective call) before the job
    /// fails (default 600).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
}

fn default_timeout() -> f64 {
    600.0
}

/// The longest timeout accepted: a day.
const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;

impl DistributedSpec {
    /// The node settings, with the timeout as the register timeout.
    pub fn node_config(&self) -> NodeConfig {
        NodeConfig::new(
            self.nodes,
            self.node_rank,
            &self.orchestrator,
            &self.node_address,
        )
        .with_register_timeout(self.timeout())
    }

    /// How long a collective call may wait for the other nodes.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds.clamp(0.0, MAX_TIMEOUT_SECONDS))
    }

    /// Checks the section against the rest of `spec`.
    pub(crate) fn validate(&self, spec: &JobSpec, origin: &str) -> Result<()> {
        let field = |name: &str| format!("distributed.{name}");
        if !(self.timeout_seconds > 0.0 && self.timeout_seconds <= MAX_TIMEOUT_SECONDS) {
            return Err(JobError::spec(
                origin,
                field("timeout_seconds"),
                format!(
                    "{}: give seconds above 0, at most {MAX_TIMEOUT_SECONDS}",
                    self.timeout_seconds
                ),
            ));
        }
        self.node_config()
            .validate()
            .map_err(|reason| JobError::spec(origin, "distributed", reason))?;
        if spec.isolation == Isolation::Subprocess {
            return Err(JobError::spec(
                origin,
                "distributed",
                "a distributed job runs its trainer in process: leave `isolation` out (or \
                 \"in_process\"), and do not pass --isolate",
            ));
        }
        Ok(())
    }

    /// What every node must share, as bytes for the start check: the trainer, seed,
    /// hyperparams, batch size, steps and node count (not the data paths, which may differ
    /// between machines, nor this node's rank and address).
    pub(crate) fn shared_settings(&self, spec: &JobSpec, trainer: &str) -> Vec<u8> {
        serde_json::json!({
            "trainer": trainer,
            "seed": spec.seed,
            "hyperparams": spec.hyperparams,
            "batch_size": spec.dataset.batch_size,
            "max_steps": spec.max_steps,
            "mock_batches": spec.mock_batches,
            "nodes": self.nodes,
            "replicas": spec.replicas,
        })
        .to_string()
        .into_bytes()
    }
}

/// How long a peer of a data-parallel job waits for the others (registering, each collective
/// call): `distributed.timeout_seconds`, else 600 s.
pub(crate) fn peer_timeout(spec: &JobSpec) -> Duration {
    spec.distributed.as_ref().map_or(
        Duration::from_secs_f64(default_timeout()),
        DistributedSpec::timeout,
    )
}

/// The most replicas a job runs in one process.
pub const MAX_REPLICAS: usize = 64;

/// Checks the spec's `replicas` against the rest of it.
pub(crate) fn validate_replicas(spec: &JobSpec, origin: &str) -> Result<()> {
    if !(1..=MAX_REPLICAS).contains(&spec.replicas) {
        return Err(JobError::spec(
            origin,
            "replicas",
            format!("{}: give 1 to {MAX_REPLICAS}", spec.replicas),
        ));
    }
    if spec.replicas > 1 && spec.isolation == Isolation::Subprocess {
        return Err(JobError::spec(
            origin,
            "replicas",
            "replicas run the trainer in process, one thread each: leave `isolation` out (or \
             \"in_process\"), and do not pass --isolate",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::spec::JobSpec;

    fn spec(distributed: serde_json::Value, isolation: &str) -> crate::Result<JobSpec> {
        let text = serde_json::json!({
            "trainer_api_version": "v1", "run_id": "r", "trainer": "mlp-classifier",
            "max_steps": 10, "metric_every": 5, "checkpoint_every": 5, "isolation": isolation,
            "dataset": {"parquet_paths": ["d.parquet"], "batch_size": 4},
            "distributed": distributed,
        });
        JobSpec::parse(&text.to_string(), "test")
    }

    fn section(rank: usize, orchestrator: &str, timeout: f64) -> serde_json::Value {
        serde_json::json!({
            "nodes": 2, "node_rank": rank, "orchestrator": orchestrator,
            "node_address": "ws://127.0.0.1:4001", "timeout_seconds": timeout,
        })
    }

    #[test]
    fn replica_counts_out_of_range_or_with_a_subprocess_are_refused() {
        let with = |replicas: usize, isolation: &str| {
            let text = serde_json::json!({
                "trainer_api_version": "v1", "run_id": "r", "trainer": "mlp-classifier",
                "max_steps": 10, "metric_every": 5, "checkpoint_every": 5,
                "isolation": isolation, "replicas": replicas,
                "dataset": {"parquet_paths": ["d.parquet"], "batch_size": 4},
            });
            JobSpec::parse(&text.to_string(), "test")
        };
        assert_eq!(with(4, "in_process").unwrap().replicas, 4);
        assert!(with(1, "subprocess").is_ok());
        for (replicas, isolation, expected) in [
            (0, "in_process", "give 1 to 64"),
            (65, "in_process", "give 1 to 64"),
            (2, "subprocess", "in process"),
        ] {
            let error = with(replicas, isolation).unwrap_err().to_string();
            assert!(
                error.contains("`replicas`") && error.contains(expected),
                "{replicas} {isolation}: {error}"
            );
        }
    }

    #[test]
    fn a_valid_section_parses_with_its_default_timeout() {
        let mut value = section(1, "ws://10.0.0.1:4000", 1.0);
        value.as_object_mut().unwrap().remove("timeout_seconds");
        let parsed = spec(value, "in_process").unwrap().distributed.unwrap();
        assert_eq!((parsed.nodes, parsed.node_rank), (2, 1));
        assert_eq!(parsed.timeout().as_secs(), 600);
        assert_eq!(parsed.node_config().register_timeout.as_secs(), 600);
    }

    #[test]
    fn sections_that_cannot_work_are_refused_naming_the_field() {
        for (value, isolation, expected) in [
            (section(2, "ws://h:1", 5.0), "in_process", "node rank 2"),
            (section(0, "http://h:1", 5.0), "in_process", "ws://"),
            (section(0, "ws://h:1", 0.0), "in_process", "timeout_seconds"),
            (
                section(0, "ws://h:1", f64::MAX),
                "in_process",
                "timeout_seconds",
            ),
            (section(0, "ws://h:1", 5.0), "subprocess", "in process"),
            (
                serde_json::json!({"nodes": 2, "node_rank": 0, "orchestrator": "ws://h:1",
                    "node_address": "ws://h:2", "port": 3}),
                "in_process",
                "port",
            ),
        ] {
            let err = spec(value.clone(), isolation).unwrap_err().to_string();
            assert!(
                err.contains("distributed") && err.contains(expected),
                "{value}: {err}"
            );
        }
    }
}
