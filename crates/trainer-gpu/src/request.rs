use std::str::FromStr;

use crate::error::GpuError;

/// The environment variable that overrides the device a program asks for.
///
/// Values: `cpu` (the best CPU backend compiled in: flex, else ndarray), `flex`, `ndarray`,
/// `wgpu` (the first wgpu adapter), `wgpu:N` (the N-th adapter, from 0, in the order
/// `trainer devices` lists them), `auto` (the first wgpu adapter if the `wgpu` feature is
/// compiled in and an adapter exists, else `cpu`).
pub const DEVICE_ENV: &str = "TRAINER_DEVICE";

/// Which device a program asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    /// The best CPU backend compiled in: flex, else ndarray.
    Cpu,
    /// The flex CPU backend.
    Flex,
    /// The ndarray CPU backend.
    NdArray,
    /// The wgpu adapter with this index (0: the first).
    Wgpu(usize),
    /// The first wgpu adapter if there is one, else [`Cpu`](Self::Cpu).
    #[default]
    Auto,
}

impl DeviceRequest {
    /// Parses a device name; `origin` names where it came from in the error.
    pub fn parse(value: &str, origin: &str) -> Result<Self, GpuError> {
        let unknown = || GpuError::UnknownDevice {
            value: value.to_string(),
            origin: origin.to_string(),
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::NdArray),
            "wgpu" | "gpu" => Ok(Self::Wgpu(0)),
            "auto" => Ok(Self::Auto),
            other => match other.strip_prefix("wgpu:") {
                Some(index) => index.parse().map(Self::Wgpu).map_err(|_| unknown()),
                None => Err(unknown()),
            },
        }
    }

    /// This request, unless [`DEVICE_ENV`] is set, in which case the variable's value.
    pub fn with_env_override(self) -> Result<Self, GpuError> {
        match std::env::var(DEVICE_ENV) {
            Ok(value) if !value.trim().is_empty() => {
                Self::parse(&value, &format!("the environment variable {DEVICE_ENV}"))
            }
            _ => Ok(self),
        }
    }
}

impl FromStr for DeviceRequest {
    type Err = GpuError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, "the device name")
    }
}

impl std::fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Flex => f.write_str("flex"),
            Self::NdArray => f.write_str("ndarray"),
            Self::Wgpu(0) => f.write_str("wgpu"),
            Self::Wgpu(n) => write!(f, "wgpu:{n}"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_name() {
        assert_eq!("cpu".parse::<DeviceRequest>().unwrap(), DeviceRequest::Cpu);
        assert_eq!(
            "NdArray".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::NdArray
        );
        assert_eq!(
            "flex".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Flex
        );
        assert_eq!(
            "wgpu".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Wgpu(0)
        );
        assert_eq!(
            "wgpu:2".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Wgpu(2)
        );
        assert_eq!(
            " auto ".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Auto
        );
        for request in [
            DeviceRequest::Cpu,
            DeviceRequest::Flex,
            DeviceRequest::NdArray,
            DeviceRequest::Wgpu(0),
            DeviceRequest::Wgpu(3),
            DeviceRequest::Auto,
        ] {
            assert_eq!(
                request.to_string().parse::<DeviceRequest>().unwrap(),
                request
            );
        }
    }

    #[test]
    fn rejects_unknown_names_naming_the_origin() {
        let err = DeviceRequest::parse("cuda", "--device")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`cuda`") && err.contains("--device"), "{err}");
        assert!(DeviceRequest::parse("wgpu:x", "flag").is_err());
        assert!(err.contains("flex") && err.contains("ndarray"), "{err}");
    }
}
