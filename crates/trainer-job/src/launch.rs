use burn::tensor::backend::AutodiffBackend;
use trainer_gpu::{DeviceRequest, Launch, Selection};

use crate::cancel::CancelToken;
use crate::error::{JobError, Result};
use crate::registry::{Plugins, Registry};
use crate::runtime::JobOutcome;
use crate::settings::ResolvedJob;
use crate::spec::Isolation;

/// The exit status of a job that could not start (bad spec, setting or device).
pub const EXIT_UNSTARTED: i32 = 2;

struct JobLaunch<'a, P> {
    job: &'a ResolvedJob,
    request: String,
    cancel: &'a CancelToken,
    plugins: std::marker::PhantomData<P>,
}

impl<P: Plugins> Launch for JobLaunch<'_, P> {
    type Output = Result<JobOutcome>;

    fn launch<B: AutodiffBackend>(
        self,
        device: B::Device,
        replica_devices: Vec<B::Device>,
        _selection: &Selection,
    ) -> Self::Output {
        let mut registry = Registry::<B>::with_builtins();
        P::register(&mut registry);
        match self.job.spec.isolation {
            Isolation::InProcess => {
                registry.run(self.job, device, replica_devices, self.cancel, Vec::new())
            }
            Isolation::Subprocess => {
                registry.run_isolated(self.job, device, &self.request, self.cancel, Vec::new())
            }
        }
    }
}

/// Runs `job` on the device `request` picks (`TRAINER_DEVICE` overrides it), with the built-in
/// trainers and those `P` registers. A trainer name nobody registered is an error.
///
/// A job of several `replicas` puts replica k on `replica_requests[k - 1]` (one request per
/// replica after the first), or with none given on `request`'s device again: the CPU shared
/// by threads, or on wgpu a logical device of its own on the same adapter.
pub fn launch<P: Plugins>(
    job: &ResolvedJob,
    request: DeviceRequest,
    replica_requests: &[DeviceRequest],
    cancel: &CancelToken,
) -> Result<JobOutcome> {
    let others = job.spec.replicas - 1;
    let replica_requests = match replica_requests.len() {
        0 => vec![request; others],
        n if n == others => replica_requests.to_vec(),
        n => {
            return Err(JobError::Setting {
                name: "--replica-devices".into(),
                message: format!(
                    "{n} device(s) given, but the spec's `replicas` is {}: name one device for \
                     each replica after the first ({others})",
                    job.spec.replicas
                ),
            })
        }
    };
    let (selection, outcome) = trainer_gpu::launch_replicas(
        request,
        &replica_requests,
        JobLaunch::<P> {
            job,
            request: request.to_string(),
            cancel,
            plugins: std::marker::PhantomData,
        },
    )
    .map_err(|e| JobError::Device(e.to_string()))?;
    log::info!("job {} ran on {selection}", job.spec.run_id);
    outcome
}

struct ChildLaunch<'a, P> {
    job: &'a ResolvedJob,
    contract: &'a crate::isolate::Contract,
    plugins: std::marker::PhantomData<P>,
}

impl<P: Plugins> Launch for ChildLaunch<'_, P> {
    type Output = Result<()>;

    fn launch<B: AutodiffBackend>(
        self,
        device: B::Device,
        _replica_devices: Vec<B::Device>,
        _selection: &Selection,
    ) -> Self::Output {
        let mut registry = Registry::<B>::with_builtins();
        P::register(&mut registry);
        registry.serve(self.job, device, self.contract)
    }
}

/// Serves the contract at `path` as an isolated job's child process, with the built-in
/// trainers and those `P` registers, on the device the contract names.
pub fn serve_contract<P: Plugins>(path: &std::path::Path) -> Result<()> {
    let contract = crate::isolate::Contract::read(path)?;
    let job = contract.job()?;
    let request: DeviceRequest = contract
        .device
        .parse()
        .map_err(|e: trainer_gpu::GpuError| JobError::Device(e.to_string()))?;
    let ((), served) = trainer_gpu::launch(
        request,
        ChildLaunch::<P> {
            job: &job,
            contract: &contract,
            plugins: std::marker::PhantomData,
        },
    )
    .map(|(selection, served)| {
        log::info!("trainer process on {selection}");
        ((), served)
    })
    .map_err(|e| JobError::Device(e.to_string()))?;
    served
}
