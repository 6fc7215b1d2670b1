use burn::tensor::backend::AutodiffBackend;
use trainer_gpu::{DeviceRequest, Launch, Selection};

use crate::cancel::CancelToken;
use crate::error::{JobError, Result};
use crate::registry::{Plugins, Registry};
use crate::runtime::JobOutcome;
use crate::settings::ResolvedJob;

/// The exit status of a job that could not start (bad spec, setting or device).
pub const EXIT_UNSTARTED: i32 = 2;

struct JobLaunch<'a, P> {
    job: &'a ResolvedJob,
    cancel: &'a CancelToken,
    plugins: std::marker::PhantomData<P>,
}

impl<P: Plugins> Launch for JobLaunch<'_, P> {
    type Output = Result<JobOutcome>;

    fn launch<B: AutodiffBackend>(self, device: B::Device, _selection: &Selection) -> Self::Output {
        let mut registry = Registry::<B>::with_builtins();
        P::register(&mut registry);
        registry.run(self.job, device, self.cancel, Vec::new())
    }
}

/// Runs `job` on the device `request` picks (`TRAINER_DEVICE` overrides it), with the built-in
/// trainers and those `P` registers. A trainer name nobody registered is an error.
pub fn launch<P: Plugins>(
    job: &ResolvedJob,
    request: DeviceRequest,
    cancel: &CancelToken,
) -> Result<JobOutcome> {
    let (selection, outcome) = trainer_gpu::launch(
        request,
        JobLaunch::<P> {
            job,
            cancel,
            plugins: std::marker::PhantomData,
        },
    )
    .map_err(|e| JobError::Device(e.to_string()))?;
    log::info!("job {} ran on {selection}", job.spec.run_id);
    outcome
}
