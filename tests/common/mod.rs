//! What the tests that run the gpuclaim binary with a deadline share.

#![allow(dead_code)] // each test file uses what it needs

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The built binary, or `None` (said on stderr) when the `cli` feature is off.
pub fn bin() -> Option<&'static str> {
    let b = option_env!("CARGO_BIN_EXE_gpuclaim");
    if b.is_none() {
        eprintln!("SKIPPED: the gpuclaim binary is not built (feature `cli` off)");
    }
    b
}

/// A fresh, empty folder for one test: `gpuclaim-PREFIX-PID-NAME`.
pub fn scratch(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gpuclaim-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cmd` (its standard error piped; its standard output as the caller
/// set it, or inherited), killing it (and failing) if it takes more than
/// 60 s. The pipes are read while it runs, so a child that writes more
/// than a pipe holds is not mistaken for one that hangs.
pub fn run_bounded(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still ran after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}
