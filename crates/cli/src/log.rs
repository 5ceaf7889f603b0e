//! Where proxcage's own messages go. With `--log FILE` (opened for append), a failing
//! invocation writes exactly one error line, in runc's text or JSON shape, which is what
//! containerd and podman read back; debug lines join it only with `--debug`. Without
//! `--log`, warnings and errors go to stderr.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{span, Event, Level, Metadata, Subscriber};

use crate::args::LogFormat;

/// The `--log` file, if any, and its format.
#[derive(Debug)]
pub struct LogSink {
    file: Option<Mutex<File>>,
    format: LogFormat,
}

impl LogSink {
    pub fn open(path: Option<&Path>, format: LogFormat) -> std::io::Result<LogSink> {
        let file = match path {
            Some(path) => Some(Mutex::new(open_log(path)?)),
            None => None,
        };
        Ok(LogSink { file, format })
    }

    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    /// One line in the sink's format, written with a single `write` (the file is opened
    /// with O_APPEND, so concurrent writers do not interleave within a line).
    pub fn line(&self, level: &str, msg: &str) -> String {
        let time = proxcage_store::now_rfc3339();
        match self.format {
            LogFormat::Json => {
                let line = serde_json::json!({ "level": level, "msg": msg, "time": time });
                format!("{line}\n")
            }
            LogFormat::Text => {
                let mut out = String::new();
                let _ = writeln!(out, "time={time:?} level={level} msg={msg:?}");
                out
            }
        }
    }

    fn write(&self, level: &str, msg: &str) {
        if let Some(file) = &self.file {
            let line = self.line(level, msg);
            if let Ok(mut f) = file.lock() {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }

    /// Reports the error that ends this invocation: to stderr and, with `--log`, as the
    /// one error line.
    pub fn error(&self, msg: &str) {
        eprintln!("proxcage: {msg}");
        self.write("error", msg);
    }
}

/// Routes `tracing` events: debug and up to the log file (or stderr) with `--debug`;
/// otherwise warnings to stderr when there is no log file, and nothing when there is
/// (containerd and podman expect only the error line there).
pub fn init(sink: &'static LogSink, debug: bool) {
    let max = match (debug, sink.has_file()) {
        (true, _) => Some(Level::DEBUG),
        (false, false) => Some(Level::WARN),
        (false, true) => None,
    };
    if let Some(max) = max {
        let _ = tracing::subscriber::set_global_default(SinkSubscriber { sink, max });
    }
}

/// A subscriber of events only: proxcage's messages are single events, and nothing of it
/// reads spans, so it keeps none (tracing-subscriber's registry, which does, cost a
/// sixth of the instructions of a short command to set up).
struct SinkSubscriber {
    sink: &'static LogSink,
    max: Level,
}

impl Subscriber for SinkSubscriber {
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max))
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut visitor = Message::default();
        event.record(&mut visitor);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            _ => "debug",
        };
        if self.sink.has_file() {
            self.sink.write(level, &visitor.0);
        } else {
            eprintln!("proxcage: {level}: {}", visitor.0);
        }
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// Opens the `--log` file for append as runc does (created 0644 if missing), but never
/// through a symbolic link at its last component, and only if it is a regular file: a
/// FIFO there would block every proxcage command until someone read it.
fn open_log(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_what_containerd_and_podman_parse() {
        let sink = LogSink::open(None, LogFormat::Json).unwrap();
        let line = sink.line("error", "container \"x\" does not exist");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"x\" does not exist");
        time::OffsetDateTime::parse(
            v["time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
    }

    #[test]
    fn text_line_is_logrus_shaped() {
        let sink = LogSink::open(None, LogFormat::Text).unwrap();
        let line = sink.line("error", "a \"b\"");
        assert!(
            line.starts_with("time=\"") && line.contains(" level=error msg=\"a \\\"b\\\"\"\n"),
            "{line}"
        );
    }
}
