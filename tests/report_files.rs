//! Outputs appear complete or not at all (`gpuclaim::report`). A binary of
//! its own: `remove_unfinished` removes every unfinished output of the
//! process, so no other test may be writing files meanwhile.

use std::io::Write;
use std::path::{Path, PathBuf};

use gpuclaim::report::{AtomicFile, remove_unfinished, write_atomic};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gpuclaim-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn outputs_appear_complete_or_not_at_all() {
    // Committed: the file appears, with every byte.
    let d = dir("commit");
    let mut f = AtomicFile::create(&d.join("a.csv")).unwrap();
    f.write_all(b"x,y\n").unwrap();
    assert_eq!(names(&d), [format!(".a.csv.tmp-{}", std::process::id())]);
    f.commit().unwrap();
    assert_eq!(names(&d), ["a.csv"]);
    assert_eq!(std::fs::read(d.join("a.csv")).unwrap(), b"x,y\n");

    // A folder where the file should go: the rename fails, and the
    // temporary file goes with it.
    std::fs::create_dir(d.join("b.csv")).unwrap();
    let mut f = AtomicFile::create(&d.join("b.csv")).unwrap();
    f.write_all(b"x\n").unwrap();
    assert!(f.commit().is_err());
    assert_eq!(names(&d), ["a.csv", "b.csv"]);

    // Dropped without a commit: nothing.
    let mut f = AtomicFile::create(&d.join("c.csv")).unwrap();
    f.write_all(b"x\n").unwrap();
    drop(f);
    assert_eq!(names(&d), ["a.csv", "b.csv"]);

    // Interrupted (what the binary's Ctrl-C handler does): the unfinished
    // file goes, the finished ones stay, and a later commit fails.
    write_atomic(&d.join("done.csv"), b"1\n").unwrap();
    let mut f = AtomicFile::create(&d.join("open.csv")).unwrap();
    f.write_all(b"2\n").unwrap();
    f.flush().unwrap();
    assert_eq!(remove_unfinished(), 1);
    assert_eq!(names(&d), ["a.csv", "b.csv", "done.csv"]);
    assert!(f.commit().is_err());
    assert_eq!(names(&d), ["a.csv", "b.csv", "done.csv"]);
    assert_eq!(remove_unfinished(), 0);
    std::fs::remove_dir_all(&d).unwrap();
}
