//! `ReportWriter`: the errors report customers get back, a CSV with one line per
//! rejected row (`line,column,reason,email`). Written as rows are rejected, never
//! held in memory, and only created once there is something to say.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use super::Rejection;

pub(crate) struct ReportWriter {
    path: PathBuf,
    /// `None` until the first line: a clean file leaves no report behind.
    out: Option<csv::Writer<BufWriter<File>>>,
}

impl ReportWriter {
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            out: None,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn rejection(&mut self, rejection: &Rejection) -> io::Result<()> {
        let line = rejection.line.to_string();
        self.line(
            &line,
            rejection.column.as_deref().unwrap_or(""),
            &rejection.reason,
            rejection.email.as_deref().unwrap_or(""),
        )
    }

    /// A problem with the file as a whole, at a place in it.
    pub(crate) fn fatal(
        &mut self,
        line: u64,
        column: Option<&str>,
        reason: &str,
    ) -> io::Result<()> {
        self.line(&line.to_string(), column.unwrap_or(""), reason, "")
    }

    /// A verdict on the whole file, at no place in it.
    pub(crate) fn note(&mut self, reason: &str) -> io::Result<()> {
        self.line("", "", reason, "")
    }

    fn line(&mut self, line: &str, column: &str, reason: &str, email: &str) -> io::Result<()> {
        let out = match &mut self.out {
            Some(out) => out,
            None => {
                if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                let file = BufWriter::with_capacity(64 * 1024, File::create(&self.path)?);
                // csv's own buffer is kept small: the BufWriter does the batching.
                let mut out = csv::WriterBuilder::new()
                    .buffer_capacity(1024)
                    .from_writer(file);
                out.write_record(["line", "column", "reason", "email"])?;
                self.out.insert(out)
            }
        };
        out.write_record([line, column, reason, email])?;
        Ok(())
    }

    /// Flushes the report; returns its path if one was written.
    pub(crate) fn finish(self) -> io::Result<Option<PathBuf>> {
        match self.out {
            None => Ok(None),
            Some(out) => {
                let file = out
                    .into_inner()
                    .map_err(|e| io::Error::other(e.to_string()))?;
                file.into_inner()
                    .map_err(|e| io::Error::other(e.to_string()))?
                    .sync_all()?;
                Ok(Some(self.path))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_report_is_created_for_a_clean_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.csv");
        assert_eq!(ReportWriter::new(&path).finish().expect("finish"), None);
        assert!(!path.exists());
    }

    #[test]
    fn rejections_are_written_as_csv_with_the_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.csv");
        let mut report = ReportWriter::new(&path);
        let rejection = Rejection {
            line: 3,
            column: Some("email".into()),
            email: Some("ann@".into()),
            reason: "the domain (after '@') is empty".into(),
        };
        report.rejection(&rejection).expect("write");
        report
            .fatal(7, Some("3"), "not valid UTF-8, really")
            .expect("write");
        assert_eq!(report.finish().expect("finish"), Some(path.clone()));
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "line,column,reason,email\n\
             3,email,the domain (after '@') is empty,ann@\n\
             7,3,\"not valid UTF-8, really\",\n"
        );
    }
}
