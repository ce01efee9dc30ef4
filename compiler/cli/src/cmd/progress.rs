//! Progress on long work, on stderr, only when stderr is a terminal (never in
//! pipes, files or CI logs): a spinner naming the stage and its elapsed time,
//! cleared when the stage ends.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A stage in progress; dropping it clears the line.
pub(crate) struct Stage(Option<ProgressBar>);

/// Show `what` (e.g. "rendering 1000 nodes") until the returned guard drops.
pub(crate) fn stage(what: impl Into<String>) -> Stage {
    if !std::io::stderr().is_terminal() {
        return Stage(None);
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.into());
    bar.enable_steady_tick(Duration::from_millis(100));
    Stage(Some(bar))
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}
