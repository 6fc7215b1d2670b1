//! Several machines: each runs the same program with its own replicas, and their collective
//! servers meet through burn-collective's orchestrator over WebSocket.

use std::time::Duration;

/// Where a node of a multi-machine run stands and how it reaches the others.
///
/// Every node runs the same program with the same config and data; node `rank` takes the
/// shards `rank * replicas ..` of every epoch. Addresses are WebSocket URLs (`ws://HOST:PORT`):
/// burn-collective's client retries for ever on anything else, so other forms are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Nodes in the run (at least 1).
    pub nodes: usize,
    /// This node's place, from 0.
    pub rank: usize,
    /// The orchestrator (`trainer orchestrator --port P` on one machine): `ws://HOST:P`.
    pub orchestrator: String,
    /// Where the other nodes reach this one to fetch tensors: `ws://HOST:PORT`; this node
    /// listens on `PORT`.
    pub address: String,
    /// How long registering with the orchestrator may take before the run fails.
    pub register_timeout: Duration,
}

impl NodeConfig {
    /// Node `rank` of `nodes`, meeting at `orchestrator`, reachable at `address`; registering
    /// may take a minute.
    pub fn new(nodes: usize, rank: usize, orchestrator: &str, address: &str) -> Self {
        Self {
            nodes,
            rank,
            orchestrator: orchestrator.to_string(),
            address: address.to_string(),
            register_timeout: Duration::from_secs(60),
        }
    }

    /// Sets [`register_timeout`](Self::register_timeout).
    pub fn with_register_timeout(mut self, timeout: Duration) -> Self {
        self.register_timeout = timeout;
        self
    }

    /// The port this node listens on (the one of [`address`](Self::address)), or why the
    /// settings cannot work.
    pub fn validate(&self) -> Result<u16, String> {
        if self.nodes == 0 || self.rank >= self.nodes {
            return Err(format!(
                "node rank {} does not fit {} nodes (ranks 0 to {})",
                self.rank,
                self.nodes,
                self.nodes.saturating_sub(1)
            ));
        }
        websocket_port(&self.orchestrator, "orchestrator")?;
        websocket_port(&self.address, "node address")
    }
}

/// The global rank of a process's rank 0 and the count of replicas over all nodes, for
/// `replicas` replicas per node (one node without `nodes`).
pub(crate) fn global_ranks(nodes: Option<&NodeConfig>, replicas: usize) -> (usize, usize) {
    match nodes {
        Some(nodes) => (nodes.rank * replicas, nodes.nodes * replicas),
        None => (0, replicas),
    }
}

/// The port of a `ws://HOST:PORT` URL.
fn websocket_port(url: &str, what: &str) -> Result<u16, String> {
    let rest = url.strip_prefix("ws://").ok_or_else(|| {
        format!("the {what} `{url}` is not a WebSocket URL: write it as ws://HOST:PORT")
    })?;
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .ok_or_else(|| format!("the {what} `{url}` has no port: write it as ws://HOST:PORT"))?;
    match port.parse::<u16>() {
        Ok(port) if port > 0 && !host.is_empty() => Ok(port),
        _ => Err(format!(
            "the {what} `{url}` needs a host and a port from 1 to 65535 (ws://HOST:PORT)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_websocket_urls_with_a_port_and_ranks_in_range_pass() {
        let good = NodeConfig::new(2, 1, "ws://10.0.0.1:3000", "ws://10.0.0.2:3001");
        assert_eq!(good.validate(), Ok(3001));
        for (config, needle) in [
            (
                NodeConfig::new(2, 2, "ws://a:1", "ws://b:2"),
                "does not fit 2 nodes",
            ),
            (
                NodeConfig::new(0, 0, "ws://a:1", "ws://b:2"),
                "does not fit 0 nodes",
            ),
            (
                NodeConfig::new(2, 0, "http://a:1", "ws://b:2"),
                "not a WebSocket URL",
            ),
            (
                NodeConfig::new(2, 0, "a:1", "ws://b:2"),
                "not a WebSocket URL",
            ),
            (NodeConfig::new(2, 0, "ws://a:1", "ws://b"), "has no port"),
            (
                NodeConfig::new(2, 0, "ws://a:1", "ws://b:0"),
                "from 1 to 65535",
            ),
            (
                NodeConfig::new(2, 0, "ws://a:99999", "ws://b:2"),
                "from 1 to 65535",
            ),
            (NodeConfig::new(2, 0, "ws://:1", "ws://b:2"), "needs a host"),
        ] {
            let error = config.validate().unwrap_err();
            assert!(error.contains(needle), "{config:?}: {error}");
        }
    }
}
