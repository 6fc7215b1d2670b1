use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Callback, Context};
use crate::error::{Result, TrainerError};
use crate::metric::names;

/// Shows how training goes: on a terminal, indicatif bars (epochs; batches with loss, lr, it/s
/// and ETA; a spinner during validation); otherwise (output piped, or `CI` set) plain lines every
/// so many batches, without escape codes. In both, one summary line per epoch.
///
/// Other output should go through [`Progress::printer`] so that it never tears the bars.
pub struct Progress {
    output: Output,
    every: Option<usize>,
    started: Option<(Instant, usize)>,
    batches_done: usize,
}

enum Output {
    Bars {
        multi: MultiProgress,
        epochs: Option<ProgressBar>,
        batches: Option<ProgressBar>,
        validation: Option<ProgressBar>,
    },
    Plain(Box<dyn Write + Send>),
}

/// Prints lines above the bars without tearing them (plain `eprintln!` when there are none).
#[derive(Clone)]
pub struct ProgressPrinter(Option<MultiProgress>);

impl ProgressPrinter {
    /// Prints one line.
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.0 {
            Some(multi) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{}", line.as_ref()),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// Bars on stderr when it is a terminal and `CI` is not set; plain lines on stderr otherwise.
    pub fn new() -> Self {
        if Self::interactive() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            Self {
                output: Output::Bars {
                    multi,
                    epochs: None,
                    batches: None,
                    validation: None,
                },
                every: None,
                started: None,
                batches_done: 0,
            }
        } else {
            Self::plain(std::io::stderr())
        }
    }

    /// Plain lines to `writer`, whatever it is.
    pub fn plain(writer: impl Write + Send + 'static) -> Self {
        Self {
            output: Output::Plain(Box::new(writer)),
            every: None,
            started: None,
            batches_done: 0,
        }
    }

    /// Whether [`new`](Self::new) draws bars: stderr is a terminal and `CI` is not set.
    pub fn interactive() -> bool {
        std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
    }

    /// Plain mode: a line every `batches` batches (default: ten lines per epoch).
    pub fn every(mut self, batches: usize) -> Self {
        self.every = Some(batches.max(1));
        self
    }

    /// Prints lines without tearing the bars.
    pub fn printer(&self) -> ProgressPrinter {
        match &self.output {
            Output::Bars { multi, .. } => ProgressPrinter(Some(multi.clone())),
            Output::Plain(_) => ProgressPrinter(None),
        }
    }

    fn line(&mut self, text: &str) -> Result<()> {
        match &mut self.output {
            Output::Bars { multi, .. } => {
                let _ = multi.println(text);
                Ok(())
            }
            Output::Plain(writer) => writeln!(writer, "{text}")
                .and_then(|()| writer.flush())
                .map_err(|e| TrainerError::Callback {
                    callback: "progress".into(),
                    message: e.to_string(),
                }),
        }
    }

    /// Batches per second this session, and the seconds left for `remaining` batches.
    fn pace(&self, remaining: Option<usize>) -> (f64, Option<Duration>) {
        let Some((started, _)) = self.started else {
            return (0.0, None);
        };
        let seconds = started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            self.batches_done as f64 / seconds
        } else {
            0.0
        };
        let eta = remaining
            .filter(|_| rate > 0.0)
            .map(|r| Duration::from_secs_f64(r as f64 / rate));
        (rate, eta)
    }

    fn remaining_batches(ctx: &Context<'_>) -> Option<usize> {
        let per_epoch = ctx.batches_per_epoch?;
        let epochs = ctx.config.epochs?;
        let done = ctx.state.epoch * per_epoch + ctx.state.batch_in_epoch;
        Some((epochs * per_epoch).saturating_sub(done))
    }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn metric(values: Option<&crate::state::MetricValues>, name: &str) -> String {
    values
        .and_then(|m| m.get(name))
        .map_or("-".into(), |v| format!("{v:.4}"))
}

impl Callback for Progress {
    fn on_train_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.started = Some((Instant::now(), ctx.state.epoch));
        self.batches_done = 0;
        if let Output::Bars { multi, epochs, .. } = &mut self.output {
            let bar = multi.add(ProgressBar::new(ctx.config.epochs.unwrap_or(0) as u64));
            bar.set_style(
                ProgressStyle::with_template("epoch {pos}/{len} {wide_bar} {elapsed_precise}")
                    .expect("template"),
            );
            bar.set_position(ctx.state.epoch as u64);
            *epochs = Some(bar);
        }
        Ok(())
    }

    fn on_epoch_begin(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        if let Output::Bars { multi, batches, .. } = &mut self.output {
            let bar = multi.add(ProgressBar::new(ctx.batches_per_epoch.unwrap_or(0) as u64));
            bar.set_style(
                ProgressStyle::with_template(
                    "batch {pos}/{len} {wide_bar} {msg} {per_sec} eta {eta}",
                )
                .expect("template"),
            );
            if let Some(old) = batches.replace(bar) {
                old.finish_and_clear();
            }
        }
        Ok(())
    }

    fn on_batch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        self.batches_done += 1;
        let message = || {
            format!(
                "loss {} lr {:.2e}",
                metric(ctx.metrics.train(), names::LOSS),
                ctx.learning_rate
            )
        };
        match &mut self.output {
            Output::Bars { batches, .. } => {
                if let Some(bar) = batches {
                    bar.set_position(ctx.state.batch_in_epoch as u64);
                    bar.set_message(message());
                }
                Ok(())
            }
            Output::Plain(_) => {
                let per_epoch = ctx.batches_per_epoch.unwrap_or(0);
                let every = self.every.unwrap_or((per_epoch / 10).max(1));
                if !ctx.state.batch_in_epoch.is_multiple_of(every) {
                    return Ok(());
                }
                let (rate, eta) = self.pace(Self::remaining_batches(ctx));
                let epochs = ctx.config.epochs.map_or(String::new(), |e| format!("/{e}"));
                let line = format!(
                    "epoch {}{epochs} batch {}/{per_epoch} step {} {} {rate:.1} it/s eta {}",
                    ctx.state.epoch + 1,
                    ctx.state.batch_in_epoch,
                    ctx.state.global_step,
                    message(),
                    eta.map_or("-".into(), clock),
                );
                self.line(&line)
            }
        }
    }

    fn on_validation_begin(&mut self, _ctx: &mut Context<'_>) -> Result<()> {
        if let Output::Bars {
            multi, validation, ..
        } = &mut self.output
        {
            let spinner = multi.add(ProgressBar::new_spinner());
            spinner.set_message("validating");
            spinner.enable_steady_tick(Duration::from_millis(120));
            *validation = Some(spinner);
        }
        Ok(())
    }

    fn on_validation_end(&mut self, _ctx: &mut Context<'_>) -> Result<()> {
        if let Output::Bars { validation, .. } = &mut self.output {
            if let Some(spinner) = validation.take() {
                spinner.finish_and_clear();
            }
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        if let Output::Bars {
            epochs: Some(bar), ..
        } = &self.output
        {
            bar.set_position(ctx.state.epoch as u64);
        }
        let Some(summary) = ctx.state.history.last() else {
            return Ok(());
        };
        let valid = summary.valid.as_ref();
        let (_, eta) = self.pace(Self::remaining_batches(ctx));
        let epochs = ctx.config.epochs.map_or(String::new(), |e| format!("/{e}"));
        let line = format!(
            "epoch {}{epochs}  train_loss {}  valid_loss {}  valid_acc {}  lr {:.2e}  {:.2}s  eta {}",
            summary.epoch,
            metric(Some(&summary.train), names::LOSS),
            metric(valid, names::LOSS),
            metric(valid, names::ACCURACY),
            summary.learning_rate,
            summary.seconds,
            eta.map_or("-".into(), clock),
        );
        self.line(&line)
    }

    fn on_train_end(&mut self, _ctx: &mut Context<'_>) -> Result<()> {
        if let Output::Bars {
            epochs,
            batches,
            validation,
            ..
        } = &mut self.output
        {
            for bar in [epochs.take(), batches.take(), validation.take()]
                .into_iter()
                .flatten()
            {
                bar.finish_and_clear();
            }
        }
        Ok(())
    }
}
