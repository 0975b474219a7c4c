//! A Ctrl-C while outputs are being made leaves no temporary file (issue
//! 19, defect 6): the handler's removal and the making of a temporary file
//! are one critical section, and after the removal no new one is made. In
//! a file of its own: closing is for the whole process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gpuclaim::report::{AtomicFile, remove_unfinished_and_close};

#[test]
fn no_temporary_file_outlives_the_handler_removal() {
    let dir = std::env::temp_dir().join(format!("gpuclaim-interrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let removed = Arc::new(AtomicBool::new(false));
    let worker = {
        let (dir, removed) = (dir.clone(), removed.clone());
        // A run still making outputs when the signal comes: every output it
        // starts stays open, as at a process exit (no destructor runs).
        std::thread::spawn(move || {
            let mut open = Vec::new();
            let mut after = 0;
            for i in 0.. {
                match AtomicFile::create(&dir.join(format!("out-{i}.csv"))) {
                    Ok(f) => open.push(f),
                    Err(e) => return (open, Some(e.to_string())),
                }
                if removed.load(Ordering::SeqCst) {
                    after += 1;
                    if after == 50 {
                        break;
                    }
                }
            }
            (open, None)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    remove_unfinished_and_close();
    removed.store(true, Ordering::SeqCst);
    let (open, error) = worker.join().unwrap();
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // As at exit: the open outputs' destructors never run.
    std::mem::forget(open);
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(
        error.as_deref(),
        Some("the process is exiting (interrupted)")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
