//! The block log's file: appends, rotation by size with a retention count
//! (`blocks.jsonl` -> `blocks.jsonl.1` -> ... -> `.keep`), and reopening on request (SIGUSR1,
//! after an external logrotate moved the file away). `-` writes to stdout.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct LogFile {
    path: Option<PathBuf>,
    out: BufWriter<Box<dyn Write + Send>>,
    written: u64,
    max_bytes: u64,
    keep: usize,
}

impl LogFile {
    /// Opens `path` for appending (creating its directory), or stdout for `-`.
    pub fn open(path: &str, max_bytes: u64, keep: usize) -> std::io::Result<LogFile> {
        let (path, out, written): (Option<PathBuf>, Box<dyn Write + Send>, u64) = if path == "-" {
            (None, Box::new(std::io::stdout()), 0)
        } else {
            let path = PathBuf::from(path);
            let file = open_append(&path)?;
            let written = file.metadata().map_or(0, |m| m.len());
            (Some(path), Box::new(file), written)
        };
        Ok(LogFile {
            path,
            out: BufWriter::with_capacity(1 << 16, out),
            written,
            max_bytes,
            keep,
        })
    }

    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        if self.max_bytes > 0
            && self.written + line.len() as u64 > self.max_bytes
            && self.written > 0
        {
            self.rotate()?;
        }
        self.out.write_all(line.as_bytes())?;
        self.written += line.len() as u64;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Closes and opens the path again (it may have been moved away).
    pub fn reopen(&mut self) -> std::io::Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        self.out.flush()?;
        let file = open_append(&path)?;
        self.written = file.metadata().map_or(0, |m| m.len());
        self.out = BufWriter::with_capacity(1 << 16, Box::new(file));
        Ok(())
    }

    /// Shifts `path.N` to `path.N+1` (dropping the oldest beyond `keep`) and starts afresh.
    fn rotate(&mut self) -> std::io::Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        self.out.flush()?;
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
        if self.keep == 0 {
            let _ = std::fs::remove_file(&path);
        } else {
            let _ = std::fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&path, numbered(1))?;
        }
        self.reopen()
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_keeping_the_newest() {
        let dir = std::env::temp_dir().join(format!("iocsink-logfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("blocks.jsonl");
        let mut log = LogFile::open(path.to_str().unwrap(), 100, 2).unwrap();
        for i in 0..20 {
            log.write_line(&format!(
                "{{\"n\":{i:02},\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}}\n"
            ))
            .unwrap();
        }
        log.flush().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert!(read(&path).contains("\"n\":19"), "newest in the live file");
        assert!(!read(&dir.join("blocks.jsonl.1")).is_empty());
        assert!(!read(&dir.join("blocks.jsonl.2")).is_empty());
        assert!(
            !dir.join("blocks.jsonl.3").exists(),
            "only `keep` rotated files"
        );
        assert!(std::fs::metadata(&path).unwrap().len() <= 100);
        // Reopen after an external move: writing goes on in a new file at the path.
        std::fs::rename(&path, dir.join("moved")).unwrap();
        log.reopen().unwrap();
        log.write_line("{\"n\":99}\n").unwrap();
        log.flush().unwrap();
        assert_eq!(read(&path), "{\"n\":99}\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
