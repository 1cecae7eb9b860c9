//! Bounded `console.*` capture: lines beyond the limits are counted, never silently dropped.

/// Most an activation may log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub max_lines: usize,
    pub max_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_lines: 1000,
            max_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct LogBuffer {
    limits: LogLimits,
    lines: Vec<String>,
    bytes: usize,
    dropped: usize,
}

impl LogBuffer {
    pub(super) fn new(limits: LogLimits) -> Self {
        LogBuffer {
            limits,
            ..LogBuffer::default()
        }
    }

    pub(super) fn push(&mut self, level: &str, text: &str) {
        let line = format!("{level}: {text}");
        if self.dropped > 0
            || self.lines.len() >= self.limits.max_lines
            || self.bytes + line.len() > self.limits.max_bytes
        {
            self.dropped += 1;
            return;
        }
        self.bytes += line.len();
        self.lines.push(line);
    }

    /// The kept lines and how many were dropped; a marker line ends a cut log.
    pub(super) fn finish(self) -> (Vec<String>, usize) {
        let mut lines = self.lines;
        if self.dropped > 0 {
            lines.push(format!(
                "[ferrobase] log truncated: {} more lines dropped",
                self.dropped
            ));
        }
        (lines, self.dropped)
    }
}
