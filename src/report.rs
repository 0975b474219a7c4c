//! Writing outputs safely: every report is written to a temporary file in
//! the same folder and renamed into place, so a reader (or an interrupted
//! run) never sees a half-written file. The temporary files being written
//! are listed, so that a run stopped by a signal can remove them
//! ([`remove_unfinished`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files of the [`AtomicFile`]s not yet committed or dropped,
/// and whether the process is exiting (no new one may be made).
static UNFINISHED: Mutex<Unfinished> = Mutex::new(Unfinished {
    files: Vec::new(),
    closed: false,
});

struct Unfinished {
    files: Vec<PathBuf>,
    closed: bool,
}

fn unfinished() -> std::sync::MutexGuard<'static, Unfinished> {
    // The list stays valid whatever a panicking holder was doing.
    UNFINISHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary file of every output still being written, for a
/// process about to exit on a signal (the binary's Ctrl-C handler): the
/// outputs themselves are untouched, as if the run had not written them.
/// Returns how many files it removed.
pub fn remove_unfinished() -> usize {
    unfinished()
        .files
        .drain(..)
        .filter(|tmp| std::fs::remove_file(tmp).is_ok())
        .count()
}

/// As [`remove_unfinished`], for a signal handler that exits next: also
/// refuses every later [`AtomicFile::create`], so that a thread still
/// working cannot make a temporary file after the removal and before the
/// exit. (Making a temporary file and listing it is one critical section,
/// so the removal sees every file made before it.)
pub fn remove_unfinished_and_close() -> usize {
    let mut list = unfinished();
    list.closed = true;
    list.files
        .drain(..)
        .filter(|tmp| std::fs::remove_file(tmp).is_ok())
        .count()
}

/// `1 row`, `2 rows`: a count with its noun in the right number, for
/// messages and summaries.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A number for a message: as written (`0.5`, `720`) unless very small or
/// very large, then in scientific notation (`1e-300`), so that a value given
/// as `1e-300` is not printed with three hundred digits.
pub fn number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() || (1e-4..1e15).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// Where text that should be UTF-8 is not: the valid text before the
/// first bad byte (so that the bad byte's line and column can be counted
/// like any other position's), that byte's offset, and what is there.
pub struct NotUtf8<'a> {
    pub valid: &'a str,
    pub offset: usize,
    pub what: String,
}

/// `bytes` as text, or where and why they are not UTF-8.
pub fn utf8(bytes: &[u8]) -> Result<&str, NotUtf8<'_>> {
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        NotUtf8 {
            valid: bytes.utf8_chunks().next().map_or("", |c| c.valid()),
            offset,
            what: match (e.error_len(), bytes.get(offset)) {
                (Some(_), Some(b)) => format!("byte 0x{b:02X}"),
                _ => "the file ends inside a character".to_string(),
            },
        }
    })
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
///
/// A `path` that is a symbolic link is followed: the file it points to is
/// replaced, not the link. A `path` that exists and is neither a file nor a
/// folder (a device such as `/dev/stdout` or `/dev/null`, a named pipe) is
/// written directly, since renaming over it would replace it; a folder is
/// refused.
pub struct AtomicFile {
    path: PathBuf,
    /// The temporary file; `None` when writing `path` directly.
    tmp: Option<PathBuf>,
    file: Option<io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path` (creating its folder when needed).
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        if writes_directly(path)? {
            let file = std::fs::OpenOptions::new().write(true).open(path)?;
            return Ok(AtomicFile {
                path: path.to_path_buf(),
                tmp: None,
                file: Some(io::BufWriter::new(file)),
            });
        }
        let path = &follow_links(path)?;
        let dir = folder_of(path);
        create_folder(dir)?;
        let file_name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not the path of a file"))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        // Made and listed under the lock: a signal handler removing the
        // listed files either sees this one or runs before it exists.
        let file = {
            let mut list = unfinished();
            if list.closed {
                return Err(io::Error::other("the process is exiting (interrupted)"));
            }
            let file = std::fs::File::create(&tmp)?;
            list.files.push(tmp.clone());
            file
        };
        Ok(AtomicFile {
            path: path.clone(),
            tmp: Some(tmp),
            file: Some(io::BufWriter::new(file)),
        })
    }

    /// Flushes, syncs and renames the file into place (or, writing a
    /// device or pipe directly, flushes). On an error the temporary file
    /// is removed and `path` is untouched.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("present until commit");
        let file = file.into_inner().map_err(|e| e.into_error());
        let Some(tmp) = self.tmp.clone() else {
            return file.map(drop);
        };
        let done = file
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        self.forget();
        done
    }

    /// Takes the temporary file off the list of unfinished ones.
    fn forget(&self) {
        if let Some(tmp) = &self.tmp {
            unfinished().files.retain(|t| t != tmp);
        }
    }
}

/// Whether output `path` is written directly rather than through a
/// temporary file and a rename: a device or pipe, or a file reached
/// through `/dev/stdout`, `/dev/fd/N` or `/proc` (renaming over it would
/// replace the device, or the file but not the descriptor the caller
/// holds). A folder is refused.
fn writes_directly(path: &Path) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a folder; give the path of a file",
        )),
        Ok(meta) => Ok(!meta.is_file() || ["/dev/", "/proc/"].iter().any(|p| path.starts_with(p))),
        Err(_) => Ok(false),
    }
}

/// The folder a file `path` is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `path` with every symbolic link in its last component followed (the
/// link's target may not exist yet).
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Creates folder `dir` (and its parents) unless it exists; when `dir`, or
/// a parent, is a file, an error naming that file.
fn create_folder(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists || e.kind() == io::ErrorKind::NotADirectory {
            let in_the_way = dir.ancestors().find(|a| {
                !a.as_os_str().is_empty() && std::fs::metadata(a).is_ok_and(|m| !m.is_dir())
            });
            match in_the_way {
                Some(file) => io::Error::new(
                    e.kind(),
                    format!("{} is a file, not a folder", file.display()),
                ),
                None => io::Error::new(e.kind(), "is a file (or lies under one), not a folder"),
            }
        } else {
            e
        }
    })
}

/// Whether files could be written in folder `dir`, which may not exist
/// yet: its nearest existing ancestor must be a folder that takes a new
/// file. Creates nothing (a probe file is made and removed). For a run to
/// check where its outputs will go before it works rather than fail after.
pub fn check_folder(dir: &Path) -> io::Result<()> {
    let mut at = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    loop {
        match std::fs::metadata(at) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is a file, not a folder", at.display()),
                ));
            }
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                match at.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                    _ if at != Path::new(".") => at = Path::new("."),
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    // Unique to the call: threads of one process may check the same folder
    // at once, and one's removal must not take the other's probe.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = at.join(format!(".gpuclaim-probe-{}-{n}", std::process::id()));
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create files in {}: {e}", at.display()),
            )
        })
}

/// Whether `path` could be written as an output (see [`AtomicFile`]):
/// not a folder, and its folder takes a new file. Creates nothing.
pub fn check_file(path: &Path) -> io::Result<()> {
    if writes_directly(path)? {
        // Not opened (a pipe would wait for its reader): writing will tell.
        return Ok(());
    }
    check_folder(folder_of(&follow_links(path)?))
}

/// Whether two paths name the same file, existing or to be written: the
/// same once symbolic links and the folders' spellings (`./a/../b`) are
/// resolved. For an output that would replace an input, or two outputs
/// that would replace each other.
pub fn same_file(a: &Path, b: &Path) -> bool {
    fn resolved(path: &Path) -> Option<PathBuf> {
        let path = follow_links(path).ok()?;
        let name = path.file_name()?;
        match std::fs::canonicalize(folder_of(&path)) {
            Ok(dir) => Some(dir.join(name)),
            Err(_) => Some(path),
        }
    }
    match (resolved(a), resolved(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
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
        if self.file.take().is_some()
            && let Some(tmp) = &self.tmp
        {
            let _ = std::fs::remove_file(tmp);
            self.forget();
        }
    }
}

/// Standard output could not be written (a full disk behind `> FILE`, a
/// closed descriptor): an error like any other write's, where `print!`
/// would panic. The reason is part of the message and not the error's
/// `source()`: the binary prints the whole chain, which would repeat it.
#[derive(Debug, thiserror::Error)]
#[error("writing to standard output: {0}")]
pub struct StdoutError(pub io::Error);

impl From<io::Error> for StdoutError {
    fn from(e: io::Error) -> Self {
        StdoutError(e)
    }
}

/// Writes `args` to standard output and flushes it, returning what
/// `print!` would panic on. The [`out!`](crate::out) and
/// [`outln!`](crate::outln) macros call it.
pub fn print_out(args: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut stdout = io::stdout().lock();
    stdout.write_fmt(args)?;
    stdout.flush()?;
    Ok(())
}

/// `print!` that returns a [`StdoutError`] instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::report::print_out(format_args!($($arg)*))
    };
}

/// `println!` that returns a [`StdoutError`] instead of panicking.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::report::print_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::report::print_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `path` for a message or a report line: as `display()` shows it, with
/// control characters escaped (`\n`, `\u{1b}`), so that a file name can
/// neither start a line of its own (forging a `PASS` line) nor send escape
/// codes to the terminal.
pub fn shown(path: &Path) -> String {
    escape_controls(&path.display().to_string())
}

/// `text` with its control characters escaped as Rust writes them.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The most bytes each kind of input may have, stated in `--help`: far
/// more than any real one (the example scenarios are under 4 KB, the
/// openb trace 0.6 MB), and a bound on what a mistaken path (`/dev/zero`
/// is refused anyway, but a huge log is a regular file) can make a
/// command hold in memory.
pub mod input_limits {
    /// A scenario or counterexample file: 1 MiB.
    pub const SCENARIO_BYTES: u64 = 1 << 20;
    /// A sweep configuration file: 1 MiB.
    pub const SWEEP_BYTES: u64 = 1 << 20;
    /// A trace CSV (`simulate --trace`, a sweep's `[trace]`): 256 MiB.
    pub const TRACE_BYTES: u64 = 256 << 20;
    /// An allocators file (`--allocators`): 1 MiB.
    pub const ALLOCATORS_BYTES: u64 = 1 << 20;
    /// A nightly configuration (`nightly --config`): 1 MiB.
    pub const NIGHTLY_CONFIG_BYTES: u64 = 1 << 20;
    /// A recorded device history (`audit`): 256 MiB.
    pub const HISTORY_BYTES: u64 = 256 << 20;
    /// A fuzz input (`from-fuzz`): 1 MiB.
    pub const FUZZ_INPUT_BYTES: u64 = 1 << 20;
    /// A shard's manifest.toml (`merge`): 64 KiB.
    pub const MANIFEST_BYTES: u64 = 64 << 10;
}

/// Why an input file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A FIFO, a device, a socket or a folder: reading it could wait for a
    /// writer forever (a FIFO) or never end (`/dev/zero`).
    #[error("{path}: {kind}, not a regular file; {what} is read only from a regular file")]
    NotRegular {
        path: String,
        kind: &'static str,
        what: &'static str,
    },
    #[error("{path}: more than {max} bytes; {what} may have at most {max} bytes")]
    TooLarge {
        path: String,
        max: u64,
        what: &'static str,
    },
    /// The reason is part of the message and deliberately not the error's
    /// `source()`: the binary prints the whole chain, which would repeat it.
    #[error("{path}: {error}")]
    Io { path: String, error: io::Error },
}

impl InputError {
    /// The reason without the path, for errors that name the file their
    /// own way (`file:line: message`).
    pub fn reason(&self) -> String {
        match self {
            InputError::NotRegular { kind, what, .. } => {
                format!("{kind}, not a regular file; {what} is read only from a regular file")
            }
            InputError::TooLarge { max, what, .. } => {
                format!("more than {max} bytes; {what} may have at most {max} bytes")
            }
            InputError::Io { error, .. } => error.to_string(),
        }
    }

    /// The I/O error, if that is what it is.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            InputError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Opens `path` for reading if it is a regular file; `what` names the
/// kind of input for the message (`"a scenario file"`). The open does not
/// wait for a FIFO's writer, and the type is checked on the opened file,
/// not on a name that could change in between.
pub fn open_input(path: &Path, what: &'static str) -> Result<std::fs::File, InputError> {
    let io = |error| InputError::Io {
        path: shown(path),
        error,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Elsewhere the type is checked by name first (a FIFO would make
        // the open wait).
        let kind = file_kind(&std::fs::metadata(path).map_err(io)?.file_type());
        if let Some(kind) = kind {
            return Err(InputError::NotRegular {
                path: shown(path),
                kind,
                what,
            });
        }
    }
    let file = options.open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if let Some(kind) = file_kind(&meta.file_type()) {
        return Err(InputError::NotRegular {
            path: shown(path),
            kind,
            what,
        });
    }
    Ok(file)
}

/// What a file that is not regular is, or `None` for a regular file.
fn file_kind(t: &std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_char_device() || t.is_block_device() {
            return Some("a device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("a special file")
}

/// The bytes of the regular file `path`, at most `max_bytes` of them;
/// `what` names the kind of input for the message. Every command reads its
/// inputs through this (or [`open_input`] for ones it streams).
pub fn read_input(path: &Path, max_bytes: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    use std::io::Read;
    let file = open_input(path, what)?;
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|error| InputError::Io {
            path: shown(path),
            error,
        })?;
    if bytes.len() as u64 > max_bytes {
        return Err(InputError::TooLarge {
            path: shown(path),
            max: max_bytes,
            what,
        });
    }
    Ok(bytes)
}

/// Checks, without reading it, that `path` is a regular file of at most
/// `max_bytes`: for a reader that opens the file by name itself.
pub fn check_input(path: &Path, max_bytes: u64, what: &'static str) -> Result<(), InputError> {
    let file = open_input(path, what)?;
    let len = file
        .metadata()
        .map_err(|error| InputError::Io {
            path: shown(path),
            error,
        })?
        .len();
    if len > max_bytes {
        return Err(InputError::TooLarge {
            path: shown(path),
            max: max_bytes,
            what,
        });
    }
    Ok(())
}

/// Completes a set of outputs all or nothing: every file is flushed and
/// synced first, and only when all of them are complete is any renamed
/// into place. On an error before the renames (a full disk) every
/// temporary file is removed and no destination changes. The error names
/// the file it happened on.
pub fn commit_all(files: Vec<AtomicFile>) -> Result<(), (PathBuf, io::Error)> {
    let mut files = files;
    for f in &mut files {
        let synced = f.flush().and_then(|()| match &f.file {
            Some(w) if f.tmp.is_some() => w.get_ref().sync_all(),
            _ => Ok(()),
        });
        if let Err(e) = synced {
            return Err((f.path.clone(), e));
        }
    }
    for f in files {
        let path = f.path.clone();
        f.commit().map_err(|e| (path, e))?;
    }
    Ok(())
}

/// Whether `inner` is `outer` or lies under it, compared by components
/// after `.` is dropped (and, when both exist, by their real paths): a
/// file written at `outer` could not coexist with a folder at `inner`.
pub fn contains_path(outer: &Path, inner: &Path) -> bool {
    use std::path::Component;
    let plain = |p: &Path| -> PathBuf {
        p.components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect()
    };
    if plain(inner).starts_with(plain(outer)) {
        return true;
    }
    match (std::fs::canonicalize(outer), std::fs::canonicalize(inner)) {
        (Ok(o), Ok(i)) => i.starts_with(o),
        _ => false,
    }
}
