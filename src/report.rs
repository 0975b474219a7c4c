//! Writing outputs safely: every report is written to a temporary file in
//! the same folder and renamed into place, so a reader (or an interrupted
//! run) never sees a half-written file. The temporary files being written
//! are listed, so that a run stopped by a signal can remove them
//! ([`remove_unfinished`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files of the [`AtomicFile`]s not yet committed or dropped.
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // The list stays valid whatever a panicking holder was doing.
    UNFINISHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary file of every output still being written, for a
/// process about to exit on a signal (the binary's Ctrl-C handler): the
/// outputs themselves are untouched, as if the run had not written them.
/// Returns how many files it removed.
pub fn remove_unfinished() -> usize {
    unfinished()
        .drain(..)
        .filter(|tmp| std::fs::remove_file(tmp).is_ok())
        .count()
}

/// Writes `bytes` to `path` through a temporary file and a rename. Creates
/// the parent folder when needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// A CSV document built in memory and written atomically.
pub struct CsvDoc {
    writer: csv::Writer<Vec<u8>>,
}

impl CsvDoc {
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer
            .write_record(header)
            .expect("writing to memory cannot fail");
        CsvDoc { writer }
    }
    pub fn row<I, S>(&mut self, record: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.writer
            .write_record(record)
            .expect("writing to memory cannot fail");
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.writer
            .into_inner()
            .expect("writing to memory cannot fail")
    }
    pub fn write_to(self, path: &Path) -> io::Result<()> {
        write_atomic(path, &self.into_bytes())
    }
}

/// A file written as a stream and renamed into place by [`AtomicFile::commit`],
/// for outputs too large to build in memory first. Dropped without a commit,
/// the temporary file is removed and `path` is untouched.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path` (creating its folder when needed).
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)?;
        let file_name = path.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a file name", path.display()),
            )
        })?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let file = std::fs::File::create(&tmp)?;
        unfinished().push(tmp.clone());
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(io::BufWriter::new(file)),
        })
    }

    /// Flushes, syncs and renames the file into place.
    /// On an error the temporary file is removed and `path` is untouched.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("present until commit");
        let done = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::rename(&self.tmp, &self.path));
        if done.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        self.forget();
        done
    }

    /// Takes the temporary file off the list of unfinished ones.
    fn forget(&self) {
        unfinished().retain(|t| t != &self.tmp);
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("present until commit").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("present until commit").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
            self.forget();
        }
    }
}
